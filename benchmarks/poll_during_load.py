"""An aggregator polling while a long load runs: does it see every change, and how far
behind the clock are the lists it gets?

Loads N generated records, starts the server as in production, then loads an update of
all N while a harvester polls every half second, each poll a complete ListIdentifiers
`from=` the previous poll's first responseDate, and once more after the load has
finished. Prints the changes seen (they must be all N), the load's time, how far each
poll's cut-off was behind the clock during the load, and the polls' own durations.
Figures are printed, never asserted.

    python3 benchmarks/poll_during_load.py 100000 [--keep]

Everything runs on 127.0.0.1; every process started is stopped, also on error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from lxml import etree

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import records  # noqa: E402
from run import free_port, stop, wait_for  # noqa: E402

OAI = "{http://www.openarchives.org/OAI/2.0/}"


def poll(session: requests.Session, url: str, since: str | None) -> tuple[str, dict[str, str]]:
    params = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"}
    if since is not None:
        params["from"] = since
    listed: dict[str, str] = {}
    first = None
    while True:
        root = etree.fromstring(session.get(url, params=params, timeout=600).content)
        first = first or root.findtext(f"{OAI}responseDate")
        if root.find(f"{OAI}error") is not None:
            break
        for header in root.iter(f"{OAI}header"):
            listed[header.findtext(f"{OAI}identifier")] = header.findtext(f"{OAI}datestamp")
        token = root.find(f".//{OAI}resumptionToken")
        if token is None or not token.text:
            break
        params = {"verb": "ListIdentifiers", "resumptionToken": token.text}
    assert first is not None
    return first, listed


def write(path: Path, count: int, note: str | None) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records(count):
            if note and not record.get("deleted"):
                record["metadata"].append({"field": "dc.description", "value": note})
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="oaipmh-poll-"))
    env = {**os.environ, "OAIPMH_DATABASE_URL": f"sqlite:///{folder}/oai.sqlite3",
           "OAIPMH_TOKEN_SECRET": "x" * 40}  # fmt: skip
    command = [sys.executable, "-m", "oaipmh_server"]
    server: subprocess.Popen[bytes] | None = None
    load: subprocess.Popen[bytes] | None = None
    try:
        write(folder / "first.jsonl", arguments.count, None)
        write(folder / "update.jsonl", arguments.count, "Corrected.")
        subprocess.run([*command, "load", "--no-progress", str(folder / "first.jsonl")],
                       env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        port = free_port()
        server = subprocess.Popen([*command, "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        wait_for(port, server)
        url = f"http://127.0.0.1:{port}/oai"
        session = requests.Session()
        since, _ = poll(session, url, None)
        time.sleep(1)  # the benchmark's pacing: a poll every half second (measured, not synced)
        started = time.monotonic()
        load = subprocess.Popen([*command, "load", "--no-progress", str(folder / "update.jsonl")],
                                env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        seen: dict[str, str] = {}
        lags: list[float] = []
        durations: list[float] = []
        polls = 0
        while load.poll() is None:
            asked = time.monotonic()
            wall = datetime.now(UTC)
            since, listed = poll(session, url, since)
            durations.append(time.monotonic() - asked)
            lags.append((wall - parse(since)).total_seconds())
            seen.update(listed)
            polls += 1
            time.sleep(max(0.0, 0.5 - (time.monotonic() - asked)))
        loaded = time.monotonic() - started
        assert load.returncode == 0, "the update load failed"
        time.sleep(1.1)  # the list freeze: what changed in the last second shows after it
        since, listed = poll(session, url, since)
        seen.update(listed)
        expected = {r["id"] for r in records(arguments.count) if not r.get("deleted")}
        lost = expected - {identifier.split(":", 2)[2] for identifier in seen}
        figures: dict[str, Any] = {
            "records": arguments.count,
            "update_load_seconds": round(loaded, 1),
            "polls_during_load": polls,
            "changes_expected": len(expected),
            "changes_seen": len(expected) - len(lost),
            "changes_lost": len(lost),
            "cutoff_lag_seconds_max": round(max(lags, default=0), 1),
            "cutoff_lag_seconds_median": round(statistics.median(lags), 1) if lags else 0,
            "poll_seconds_median": round(statistics.median(durations), 3) if durations else 0,
            "poll_seconds_max": round(max(durations, default=0), 3),
        }
        print(json.dumps(figures, indent=2))
    finally:
        if load is not None and load.poll() is None:
            load.terminate()
            load.wait(30)
        if server is not None:
            stop(server)
        if arguments.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
