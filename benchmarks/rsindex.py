"""Time ResourceSync's and the sitemap's indexes against a ListIdentifiers page, at N records.

In-process (the Flask test client, no HTTP), on a SQLite store: generates and loads N
records (generate.py, `oaipmh-server load --no-progress`) into DATABASE unless it already
holds records, so a million records are loaded once and reused across runs. Then asks, in
turn for `--rounds` rounds (so the machine's drift spreads over all of them): a
ListIdentifiers first page (it gives completeListSize) and its second
page (by the first one's resumption token), the resource list index, the change list
index and /sitemap.xml; then a few times one resource list (oai_dc, its first range) and one change
list (the index's first). The first request of each index after the app opens is printed
apart ("cold": it may compute what later ones reuse). Figures are printed, never asserted.

    python3 benchmarks/rsindex.py 1000000 /var/tmp/rs.sqlite3 [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from flask.testing import FlaskClient
from lxml import etree

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import records, sets_file  # noqa: E402

from oaipmh_server.web.app import create_app  # noqa: E402

SM = {"sm": "http://www.sitemaps.org/schemas/sitemap/0.9"}
LIST_IDENTIFIERS = "/oai/request?verb=ListIdentifiers&metadataPrefix=oai_dc"
INDEXES = {
    "ListIdentifiers page": LIST_IDENTIFIERS,
    "ListIdentifiers page (by token)": "",  # the second page, by the first one's token
    "resource list index": "/resources/resourcelist.xml",
    "change list index": "/resources/changelist.xml",
    "/sitemap.xml index": "/sitemap.xml",
}


def stored(database: Path) -> int:
    if not database.exists():
        return 0
    with sqlite3.connect(database) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def load(count: int, database: Path) -> None:
    """Generate `count` records and load them into `database` (minutes at a million)."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "records.jsonl"
        sets_file(Path(folder) / "sets.json")
        with source.open("w", encoding="utf-8") as out:
            for record in records(count):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        env = {**os.environ, "OAIPMH_DATABASE_URL": f"sqlite:///{database}"}
        command = [sys.executable, "-m", "oaipmh_server", "load", "--no-progress",
                   str(Path(folder) / "sets.json"), str(source)]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        print(f"loaded {count:,} records in {time.perf_counter() - started:.0f} s")


def timed(get: Callable[[str], bytes], path: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    body = get(path)
    return (time.perf_counter() - started) * 1000, body


def first_loc(body: bytes, path: str) -> str:
    """The first list an index names (`path` itself when it is a list, not an index)."""
    loc = etree.fromstring(body).findtext("sm:sitemap/sm:loc", namespaces=SM)
    if loc is None:
        return path
    parts = urlsplit(loc)
    return f"{parts.path}?{parts.query}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("database", type=Path)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--list-rounds", type=int, default=3)
    arguments = parser.parse_args()
    if stored(arguments.database) == 0:
        load(arguments.count, arguments.database)
    print(f"store: {arguments.database} ({stored(arguments.database):,} records)")

    app = create_app({"database_url": f"sqlite:///{arguments.database}", "base_url": ""})
    try:
        measure(app.test_client(), arguments)
    finally:
        app.extensions["oaipmh"].store.close()


def measure(client: FlaskClient, arguments: argparse.Namespace) -> None:
    """Each index timed against a ListIdentifiers page, in turn for --rounds rounds; then
    one resource list and one change list; the table printed."""

    def get(path: str) -> bytes:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.data[:300])
        return response.data

    token = re.search(rb"<resumptionToken[^>]*>([^<]+)<", get(LIST_IDENTIFIERS))
    assert token is not None, "fewer records than a ListIdentifiers page holds"
    INDEXES["ListIdentifiers page (by token)"] = "/oai/request?" + urlencode(
        {"verb": "ListIdentifiers", "resumptionToken": token.group(1).decode()}
    )
    cold = {name: timed(get, path)[0] for name, path in INDEXES.items()}
    warm: dict[str, list[float]] = {name: [] for name in INDEXES}
    bodies: dict[str, bytes] = {}
    for _ in range(arguments.rounds):
        for name, path in INDEXES.items():
            took, bodies[name] = timed(get, path)
            warm[name].append(took)
    lists = {
        "one resource list (oai_dc, 50,000)": first_loc(bodies["resource list index"], ""),
        "one change list (first of the index)": first_loc(
            bodies["change list index"], INDEXES["change list index"]
        ),
    }
    listed: dict[str, list[float]] = {name: [] for name in lists}
    for _ in range(arguments.list_rounds):
        for name, path in lists.items():
            listed[name].append(timed(get, path)[0])

    print(f"{'request':40} {'first (ms)':>11} {'median (ms)':>12} {'min (ms)':>9}  rounds")
    for name in INDEXES:
        print(f"{name:40} {cold[name]:11.1f} {statistics.median(warm[name]):12.1f} "
              f"{min(warm[name]):9.1f}  {len(warm[name])}")  # fmt: skip
    for name, times in listed.items():
        print(f"{name:40} {'':11} {statistics.median(times):12.1f} {min(times):9.1f}  "
              f"{len(times)}")  # fmt: skip
    for page in ("ListIdentifiers page", "ListIdentifiers page (by token)"):
        ratio = statistics.median(warm[page])
        print(f"median / {page}'s median: " + ", ".join(
            f"{name} {statistics.median(warm[name]) / ratio:.1f}"
            for name in INDEXES if not name.startswith("ListIdentifiers")
        ))  # fmt: skip


if __name__ == "__main__":
    main()
