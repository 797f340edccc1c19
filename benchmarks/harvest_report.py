"""Time `oaipmh-server harvests` over a generated day of a busy server's access log.

    python3 benchmarks/harvest_report.py [N] [--keep]

Writes N access lines (default 1,000,000) as the server writes them, spread over one day: 60
list chains under way at any moment, from 120 harvesters (40 user agents, known aggregators
among them, at 3 addresses each), a tenth of them full harvests of a million-record
repository (10,000 pages of 100), the others incremental (1 to 50 pages); 1 % of pages
turned away with 503 and asked again, 2 % of chains abandoned halfway, a GetRecord or
Identify for every tenth line, and a line that is not JSON for every thousandth. Then runs
the command on the file (JSON and table output, each a process of its own) and prints the
time, lines/s, the ratio to a floor measured in the same run (reading every line and
parsing it with the standard library's json, nothing else) and the command's peak RSS;
and the same for the log gzip-compressed.
"""

from __future__ import annotations

import gzip
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DAY = datetime(2026, 12, 1, tzinfo=UTC)
AGENTS = [
    "OpenAIRE harvester/2.0", "Mozilla/5.0 (compatible; CORE/0.6; +https://core.ac.uk)",
    "BASE (Bielefeld Academic Search Engine) OAI-Harvester", "Googlebot-IA/2.1",
    "Europe PMC OAI harvester", "pyoai", "python-requests/2.32.3",
    *[f"Harvester{n}/1.{n} (+https://aggregator{n}.example.org/bot)" for n in range(33)],
]  # fmt: skip


class Chain:
    def __init__(self, rng: random.Random, number: int) -> None:
        self.agent = rng.randrange(len(AGENTS))
        self.client = f"198.51.{self.agent}.{rng.randrange(3) + 1}"
        self.id = f"{number:08x}"
        full = rng.random() < 0.1
        self.size = 1_000_000 if full else rng.randrange(1, 5_000)
        self.stop_at = self.size if rng.random() > 0.02 else self.size // 2
        self.cursor = 0
        self.arguments: dict[str, str] = {"verb": "ListRecords", "metadataPrefix": "oai_dc"}
        if not full:
            self.arguments["from"] = "2026-11-30T00:00:00Z"

    def page(self, rng: random.Random) -> dict[str, Any]:
        """The next request's access line (a 503 now and then, the page asked again next)."""
        line: dict[str, Any] = {
            "client": self.client, "agent": AGENTS[self.agent], "method": "GET", "path": "/oai",
        }  # fmt: skip
        arguments = self.arguments if self.cursor == 0 else {
            "verb": "ListRecords",
            "resumptionToken": f"{self.id}{rng.getrandbits(600):0150x}"[:160],
        }  # fmt: skip
        if self.cursor and rng.random() < 0.01:
            return {**line, "status": 503, "verb": None, "arguments": arguments, "records": 0,
                    "errors": [], "harvest": {"id": self.id, "cursor": self.cursor}, "ms": 0.4}  # fmt: skip
        count = min(100, self.size - self.cursor)
        harvest = {"id": self.id, "cursor": self.cursor, "count": count, "size": self.size,
                   "more": self.cursor + count < self.size}  # fmt: skip
        self.cursor += count
        return {**line, "status": 200, "verb": "ListRecords", "arguments": arguments,
                "records": count, "errors": [], "harvest": harvest, "ms": 12.5}  # fmt: skip

    @property
    def done(self) -> bool:
        return self.cursor >= self.stop_at


def generate(path: Path, count: int) -> None:
    rng = random.Random(26)
    chains: list[Chain] = []
    made = 0
    step = 86400 / count
    with path.open("w") as out:
        for n in range(count):
            moment = (DAY + timedelta(seconds=n * step)).isoformat(timespec="milliseconds")
            moment = moment.replace("+00:00", "Z")
            if n % 1000 == 999:
                out.write(
                    "[2026-12-01 03:04:05 +0000] [812] [WARNING] Worker with pid 9 was slow\n"
                )
                continue
            if n % 10 == 5:
                line: dict[str, Any] = {
                    "client": "203.0.113.9", "agent": AGENTS[n % len(AGENTS)], "method": "GET",
                    "path": "/oai", "status": 200, "verb": "GetRecord",
                    "arguments": {"verb": "GetRecord", "metadataPrefix": "oai_dc",
                                  "identifier": f"oai:repository.example.org:10722/{n}"},
                    "records": 1, "errors": [], "harvest": None, "ms": 3.2,
                }  # fmt: skip
            else:
                while len(chains) < 60:
                    made += 1
                    chains.append(Chain(rng, made))
                chain = chains[rng.randrange(len(chains))]
                line = chain.page(rng)
                if chain.done:
                    chains.remove(chain)
            out.write(json.dumps({"time": moment, **line}) + "\n")


def timed(arguments: list[str]) -> tuple[float, float]:
    """Seconds, and the peak RSS (MB) of the largest child so far, of the command."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "oaipmh_server", "harvests", *arguments],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    count = int(next((a for a in sys.argv[1:] if a.isdigit()), "1000000"))
    folder = Path(tempfile.mkdtemp(prefix="harvest-report-"))
    try:
        log = folder / "access.log"
        started = time.perf_counter()
        generate(log, count)
        size = log.stat().st_size / 1e6
        print(
            f"generated {count:,} lines ({size:,.0f} MB) in {time.perf_counter() - started:.1f} s"
        )
        with log.open("rb") as source, gzip.open(folder / "access.log.gz", "wb", 1) as target:
            shutil.copyfileobj(source, target)
        # The floor on this machine now (it is shared: compare ratios within one run):
        # reading every line and parsing it with the standard library's json, nothing else.
        started = time.perf_counter()
        with log.open() as lines:
            for text in lines:
                if text.startswith("{"):
                    json.loads(text)
        floor = time.perf_counter() - started
        print(f"floor, json.loads of every line: {floor:.1f} s, {count / floor:,.0f} lines/s")
        for label, arguments in (
            ("json", ["--format", "json", str(log)]),
            ("table", [str(log)]),
            ("json, gzip-compressed log", ["--format", "json", str(folder / "access.log.gz")]),
        ):
            seconds, peak = timed(arguments)
            print(f"harvests ({label}): {seconds:.1f} s, {count / seconds:,.0f} lines/s, "
                  f"{seconds / floor:.2f} × the floor, peak RSS so far {peak:.0f} MB")  # fmt: skip
    finally:
        if "--keep" in sys.argv:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
