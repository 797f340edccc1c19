"""Where a list page's time goes, in process: a whole harvest through the app (Flask's test
client, no HTTP, no gunicorn), with the SQL it sends counted per page and a profile.

Loads N generated records into a fresh store (SQLite, or a throw-away PostgreSQL cluster
as run.py's), or reads the store at `--url`, then harvests ListRecords and
ListIdentifiers to their end and prints, per page: the statements SQLAlchemy sends, the
connections checked out of the pool, the transactions begun and the resets when a
connection goes back (on PostgreSQL the driver's round trips are these and the pings,
which SQLAlchemy's events do not show: its server log does, with
log_min_duration_statement = 0); the milliseconds of each store call, this process's CPU
a page; with `--profile`, cProfile's top functions in CPU time (on a busy machine, wall
time is mostly waiting for the CPU). Figures are printed, never asserted.

    python3 benchmarks/page_profile.py 100000 [--backend postgresql] [--url URL] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import database_url  # noqa: E402
from sqlalchemy import event  # noqa: E402

from oaipmh_server.web.app import create_app  # noqa: E402

# The store's calls a list makes; each is timed.
STORE_CALLS = ("list_cutoff", "count_records", "list_records", "list_headers", "token_secret")


def load(url: str, count: int, folder: Path) -> None:
    """Generate and load `count` records as run.py does (`oaipmh-server load`)."""
    import json as json_module
    import os
    import subprocess

    from generate import records, sets_file

    source = folder / "records.jsonl"
    sets_file(folder / "sets.json")
    with source.open("w", encoding="utf-8") as out:
        for record in records(count, False):
            out.write(json_module.dumps(record, ensure_ascii=False) + "\n")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "oaipmh_server", "load", str(folder / "sets.json"), str(source)],
        env={**os.environ, "OAIPMH_DATABASE_URL": url}, check=True, capture_output=True,
    )  # fmt: skip
    print(f"loaded {count} records in {time.perf_counter() - started:.1f} s")


def instrument(store: Any) -> tuple[Counter[str], dict[str, float]]:
    """Count what the store sends and time its calls."""
    counts: Counter[str] = Counter()
    seconds: dict[str, float] = dict.fromkeys(STORE_CALLS, 0.0)
    engine = store.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(*_: Any) -> None:
        counts["statements"] += 1

    @event.listens_for(engine, "begin")
    def _begin(*_: Any) -> None:
        counts["begins"] += 1

    @event.listens_for(engine.pool, "checkout")
    def _checkout(*_: Any) -> None:
        counts["checkouts"] += 1

    @event.listens_for(engine.pool, "reset")
    def _reset(*_: Any) -> None:
        counts["resets"] += 1

    for name in STORE_CALLS:
        method = getattr(store, name)

        def timed(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                seconds[_name] += time.perf_counter() - started

        setattr(store, name, timed)
    return counts, seconds


def harvest(client: Any, verb: str) -> tuple[int, int, float, float]:
    """(records, pages, seconds, this process's CPU seconds) of a whole list."""
    import re

    token_pattern = re.compile(rb"<resumptionToken[^>]*>([^<]+)</resumptionToken>")
    query: dict[str, str] = {"verb": verb, "metadataPrefix": "oai_dc"}
    records = pages = 0
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        body = client.get("/oai", query_string=query).data
        pages += 1
        records += body.count(b"<header")
        found = token_pattern.search(body)
        if found is None:
            break
        query = {"verb": verb, "resumptionToken": found.group(1).decode()}
    return records, pages, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--url", help="profile this loaded store instead (no load)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--verbs", default="ListRecords,ListIdentifiers")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="oaipmh-profile-"))
    cluster = None
    try:
        url = arguments.url
        if url is None:
            url, cluster = database_url(arguments.backend, folder)
            load(url, arguments.count, folder)
        app = create_app({"database_url": url, "page_size": 100})
        store = app.extensions["oaipmh"].store
        counts, seconds = instrument(store)
        client = app.test_client()
        for verb in arguments.verbs.split(","):
            harvest(client, verb)  # warm: the pool, prepared statements, caches
            counts.clear()
            seconds.update(dict.fromkeys(seconds, 0.0))
            profiler = cProfile.Profile(time.process_time) if arguments.profile else None
            if profiler:
                profiler.enable()
            records, pages, took, cpu = harvest(client, verb)
            if profiler:
                profiler.disable()
            per_page = {k: round(v / pages, 2) for k, v in sorted(counts.items())}
            store_ms = {k: round(v / pages * 1000, 3) for k, v in seconds.items() if v}
            print(f"{verb}: {records} records, {pages} pages, {took:.2f} s = "
                  f"{records / took:.0f} records/s, {took / pages * 1000:.2f} ms a page "
                  f"({cpu / pages * 1000:.2f} ms of this process's CPU)")  # fmt: skip
            print(f"  per page: {json.dumps(per_page)}")
            print(f"  store calls, ms a page: {json.dumps(store_ms)} "
                  f"(store {sum(seconds.values()) / took:.0%} of the time)")  # fmt: skip
            if profiler:
                stats = pstats.Stats(profiler, stream=sys.stdout)
                stats.sort_stats("tottime").print_stats(25)
        store.close()
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
