"""Time the HTML pages at N generated records: a record page, a set's first and last page
(keyset: the last should cost what the first does), the home page and the sitemap.

Loads N records as run.py does, serves them with `oaipmh-server serve` (gunicorn), and
asks each page many times with a plain HTTP client, first and deep set pages in turn
(so the machine's drift cancels out). Figures are printed, never asserted.

    python3 benchmarks/pages.py 100000 [--workers 2] [--rounds 200] [--keep]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import TREE, records, sets_file  # noqa: E402
from run import serve, stop  # noqa: E402

SET = TREE[0][0]  # a community: a quarter of the records
PAGE = 50  # pages.SET_PAGE_SIZE


def timed(connection: http.client.HTTPConnection, path: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    return (time.perf_counter() - started) * 1000, response.status, len(body)


def summary(latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        "median_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 2),
    }


def stamp(text: str) -> str:
    """A datestamp as SQLite stores it → as a set page's address carries it."""
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="oaipmh-pages-bench-"))
    database = folder / "bench.sqlite3"
    env = {**os.environ, "OAIPMH_DATABASE_URL": f"sqlite:///{database}"}
    server = None
    try:
        source = folder / "records.jsonl"
        with source.open("w", encoding="utf-8") as out:
            for record in records(arguments.count):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        sets = folder / "sets.json"
        sets_file(sets)  # places the records' collections in their communities
        loaded = subprocess.run(
            [sys.executable, "-m", "oaipmh_server", "load", "--no-progress", str(sets), str(source)],
            env=env, capture_output=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if loaded.returncode != 0:
            sys.exit(f"the load failed:\n{loaded.stderr.decode()[-2000:]}")

        with sqlite3.connect(database) as db:
            live = [row[0] for row in db.execute("SELECT local_id FROM records WHERE NOT deleted")]
            # The set's last page of live records: the position just before its last PAGE
            # live records. (Its very last pages are tombstones, dated by the load, which
            # a page lists without reading their fields: not the page to time.)
            deep = db.execute(
                "SELECT m.datestamp, m.local_id FROM memberships m "
                "JOIN records r ON r.local_id = m.local_id "
                "WHERE m.set_spec = ? AND NOT r.deleted "
                "ORDER BY m.datestamp DESC, m.local_id DESC LIMIT 1 OFFSET ?",
                (SET, PAGE),
            ).fetchone()
            in_set = db.execute(
                "SELECT count(*) FROM memberships WHERE set_spec = ?", (SET,)
            ).fetchone()[0]

        server, port = serve(env, arguments.workers)
        connection = http.client.HTTPConnection("127.0.0.1", port)
        rng = random.Random(42)

        for _ in range(20):  # warm both workers
            timed(connection, "/records/" + quote(rng.choice(live), safe="/"))
        records_ms = []
        for _ in range(arguments.rounds):
            ms, status, _ = timed(connection, "/records/" + quote(rng.choice(live), safe="/"))
            assert status == 200, status
            records_ms.append(ms)
        print(f"record page (random live records, {arguments.rounds}): {summary(records_ms)}")

        first_path = f"/sets/{SET}"
        deep_path = first_path  # a set of one page: its last page is its first
        if deep is not None:
            deep_path += "?" + urlencode({"after": stamp(deep[0]), "id": deep[1]})
        first_ms, deep_ms = [], []
        for _ in range(arguments.rounds):
            ms, status, _ = timed(connection, first_path)
            assert status == 200
            first_ms.append(ms)
            ms, status, _ = timed(connection, deep_path)
            assert status == 200
            deep_ms.append(ms)
        first, last = summary(first_ms), summary(deep_ms)
        ratio = last["median_ms"] / first["median_ms"]
        print(f"set page {SET} ({in_set} records) first: {first}; last: {last}; "
              f"last/first {ratio:.2f}")  # fmt: skip

        for path in (first_path, deep_path):
            connection.request("GET", path)
            body = connection.getresponse().read().decode()
            linked = body.count('<a href="/records/')
            print(f"{path}: {body.count('(deleted)')} deleted, {linked} records linked")
        ms, status, _ = timed(connection, "/")
        print(f"home page, counting (first request of a worker): {ms:.1f} ms")
        home = [timed(connection, "/")[0] for _ in range(arguments.rounds)]
        print(f"home page (counts cached): {summary(home)}")

        ms, status, size = timed(connection, "/sitemap.xml")
        print(f"sitemap index: {ms:.1f} ms, {size} bytes")
        first_start = min(live) if live else ""
        ms, status, size = timed(connection, "/sitemaps/records.xml?start=" + quote(first_start))
        print(f"one sitemap (up to 50,000 URLs): {ms:.1f} ms, {size} bytes")
        connection.close()
    finally:
        if server is not None:
            stop(server)
        if arguments.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
