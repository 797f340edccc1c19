"""Load COUNT generated records into one SQLite store chunk by chunk, then time pages deep in it.

Issue 25 asks whether a store of ten million records still loads and serves as one of a
million does. The records are generate.py's, streamed: each chunk is written to a temporary
JSON Lines file, loaded by `oaipmh-server load` (a process, as an operator runs it) into the
same growing store, and deleted, so the disk holds the store and one chunk, never the whole
input. Chunk 1 loads into an empty store and chunk N into (N-1) chunks: their per-record
times, taken in one run, are the comparison. Per chunk it prints the wall time, the CPU time
of the load and its workers (getrusage of the children: unlike wall time it does not grow
when other work on the machine takes the cores), records/s, and the database's size (main
file and WAL) per record.

The store is one nobody harvests while it grows, so `[datestamps] keep_accessioned` is on:
every chunk's records keep their dc.date.accessioned, which rise with their index across
chunks (checked as they are written, with the ids), and the store is dated as one loaded in
a single go would be. A load that clamps a date stops the run.

Then it serves the store (`oaipmh-server serve`, gunicorn, `--workers`) and times list pages
at depths 0 %, 50 % and 100 % of a full ListRecords and ListIdentifiers harvest (oai_dc,
100 records a page): the first token page, the page at the middle, and the last page of live
records (after them the list ends with the tombstones, which new deleted records get dated
at the time of their load; that last page is timed too, apart). A deep page is asked for by
the token a harvest reaching it would hold: the harvest's first token, issued by the server,
with its position and cursor moved to the record before that page and signed again with the
secret the run gives the server (its first page's own token, rebuilt the same way, must
come out identical, and each page must start with the record expected), so no harvest of
ten million records is needed to get there. Each page is asked for `--rounds` times, all
pages in turn within a round, and the medians compared: deep/first.

    python3 benchmarks/scale.py 10000000 [--chunk 1000000] [--workers 2] [--rounds 30]
                                         [--folder DIR] [--deadline HH:MM] [--keep]
    python3 benchmarks/scale.py 0 --again /tmp/oaipmh-scale-… (the pages of a kept store)

`--deadline` (UTC): no chunk starts that would not end by then at the previous chunk's
pace; the pages are then timed in the store as loaded (a partial run says so).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import records, sets_file  # noqa: E402
from run import serve, stop  # noqa: E402

from oaipmh_server.record_source import Position  # noqa: E402
from oaipmh_server.tokens import decode_token, encode_token  # noqa: E402

PAGE = 100
SECRET = "scale benchmark: a fixed secret so the run can sign deep tokens"
TOKEN = re.compile(rb"<resumptionToken[^>]*>([^<]+)</resumptionToken>")
IDENTIFIER = re.compile(rb"<identifier>([^<]+)</identifier>")
# The full list's order, the (datestamp, local id) keyset the server pages by.
NTH = "SELECT datestamp, local_id FROM records ORDER BY datestamp, local_id LIMIT 1 OFFSET ?"


def checked(stream: Iterator[dict[str, object]]) -> Iterator[dict[str, object]]:
    """The generator's records, checked on the way: ids rising (so unique) and accessioned
    dates never going back, across chunk boundaries too."""
    last_number, last_stamp = -1, ""
    for record in stream:
        number = int(str(record["id"]).split("/")[1])
        if number <= last_number:
            sys.exit(f"generate.py: id {record['id']} after 10722/{last_number}")
        last_number = number
        for value in record.get("metadata", ()):  # type: ignore[attr-defined]
            if value["field"] == "dc.date.accessioned":
                if value["value"] < last_stamp:
                    sys.exit(f"generate.py: {record['id']} accessioned before {last_stamp}")
                last_stamp = value["value"]
        yield record


def database_bytes(path: Path) -> int:
    """The store on disk: the main file and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class Chunk:
    records: int
    before: int
    wall: float
    cpu: float
    size: int  # the database's, after the chunk
    source: int  # the chunk's JSON Lines file


def room_for(chunks: list[Chunk], size: int, folder: Path, reserve: float) -> bool:
    """Whether the disk can take the next chunk of `size` records, at the last chunk's
    bytes a record: its file, and the store's growth twice (a load writes it all to the
    write-ahead log first; the checkpoint at commit then copies it into the database file
    while the log still holds it), and `reserve` GB more."""
    last = chunks[-1]
    grown = last.size - (chunks[-2].size if len(chunks) > 1 else 0)
    need = size * (last.source + 2 * grown) / last.records + reserve * 1e9
    return shutil.disk_usage(folder).free > need


def load_chunks(arguments: argparse.Namespace, folder: Path, env: dict[str, str]) -> list[Chunk]:
    database = folder / "scale.sqlite3"
    sets = folder / "sets.json"
    sets_file(sets)
    stream = checked(records(arguments.count))
    chunks: list[Chunk] = []
    loaded = 0
    while loaded < arguments.count:
        size = min(arguments.chunk, arguments.count - loaded)
        if arguments.deadline is not None and chunks:
            pace = chunks[-1].wall / chunks[-1].records
            if datetime.now(UTC) + timedelta(seconds=pace * size * 1.1) > arguments.deadline:
                print(f"deadline: chunk {len(chunks) + 1} would not end by "
                      f"{arguments.deadline:%H:%M} UTC; {loaded} records loaded of "
                      f"{arguments.count} (a partial run)", flush=True)  # fmt: skip
                break
        if chunks and not room_for(chunks, size, folder, arguments.reserve):
            print(f"disk: chunk {len(chunks) + 1} might not fit; {loaded} records loaded of "
                  f"{arguments.count} (a partial run)", flush=True)  # fmt: skip
            break
        source = folder / f"chunk-{len(chunks) + 1}.jsonl"
        generating = time.perf_counter()
        with source.open("w", encoding="utf-8") as out:
            for record in islice(stream, size):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        generating = time.perf_counter() - generating
        system = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
        cpu, started = children_cpu(), time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "oaipmh_server", "load", "--no-progress", str(sets), str(source)],
            env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu
        system = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime - system
        source_size = source.stat().st_size
        source.unlink()
        if done.returncode != 0:
            sys.exit(f"chunk {len(chunks) + 1}: the load failed:\n{done.stderr[-2000:]}")
        said = " ".join(done.stdout.split())
        if "dated at load time" in said:
            sys.exit(f"chunk {len(chunks) + 1}: dates were clamped ({said})")
        chunk = Chunk(size, loaded, wall, cpu, database_bytes(database), source_size)
        chunks.append(chunk)
        loaded += size
        print(f"chunk {len(chunks)} (records {chunk.before + 1:,}–{loaded:,}): "
              f"wall {wall:.1f} s, {size / wall:,.0f} records/s, {wall / size * 1e6:.0f} µs a record; "
              f"CPU {cpu:.1f} s (system {system:.1f} s), {cpu / size * 1e6:.0f} µs a record; "
              f"database {chunk.size / 1e9:.2f} GB, {chunk.size / loaded:,.0f} bytes a record "
              f"({said}); generated in {generating:.1f} s, {source_size / 1e9:.2f} GB; "
              f"at {datetime.now(UTC):%H:%M:%S} UTC", flush=True)  # fmt: skip
        if len(chunks) == 1:
            free = shutil.disk_usage(folder).free
            print(f"at {chunk.size / size:,.0f} bytes a record, {arguments.count:,} records take "
                  f"{chunk.size / size * arguments.count / 1e9:.1f} GB; {free / 1e9:.1f} GB free "
                  f"besides the {chunk.size / 1e9:.1f} GB taken", flush=True)  # fmt: skip
    if len(chunks) > 1:
        first, last = chunks[0], chunks[-1]
        print(f"chunk {len(chunks)} / chunk 1, per record: wall "
              f"{(last.wall / last.records) / (first.wall / first.records):.2f}, CPU "
              f"{(last.cpu / last.records) / (first.cpu / first.records):.2f}; bytes a record "
              f"{(last.size / (last.before + last.records)) / (first.size / first.records):.2f}")  # fmt: skip
    if len(chunks) > 2:  # the first one loads into an empty store: also from the second
        second, last = chunks[1], chunks[-1]
        print(f"chunk {len(chunks)} / chunk 2, per record: wall "
              f"{(last.wall / last.records) / (second.wall / second.records):.2f}, CPU "
              f"{(last.cpu / last.records) / (second.cpu / second.records):.2f}")  # fmt: skip
    return chunks


def nth(store: sqlite3.Connection, offset: int) -> Position:
    """The full list's record at `offset` (from 0): its keyset position."""
    stamp, local_id = store.execute(NTH, (offset,)).fetchone()
    return Position(datetime.fromisoformat(stamp).replace(tzinfo=UTC), local_id)


def sample_pages(url: str, database: Path, rounds: int, began: datetime) -> None:
    store = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    total = store.execute("SELECT count(*) FROM records").fetchone()[0]
    # Tombstones are dated by their loads, after every live record's accessioned date (the
    # generator's are years before the run): the list's end, counted on its index. Checked
    # at the boundary below, and by the pages' first records.
    dated_by_loads = store.execute(
        "SELECT count(*) FROM records WHERE datestamp >= ?", (f"{began:%Y-%m-%d %H:%M:%S}",)
    ).fetchone()[0]
    live = total - dated_by_loads
    at = NTH.replace("datestamp, local_id FROM", "deleted FROM")
    ends = {live - 1: 0, live: 1, total - 1: 1} if live < total else {live - 1: 0}
    flags = {offset: store.execute(at, (offset,)).fetchone()[0] for offset in ends}
    assert flags == ends, ("the tombstones are not the list's end", flags)
    print(f"store: {total:,} records, {live:,} live", flush=True)
    depths = {  # a page's first record, at a page boundary of the harvest
        "0 %": PAGE,
        "50 %": live // 2 // PAGE * PAGE,
        "100 % (last live page)": (live - PAGE) // PAGE * PAGE,
        "last page": (total - 1) // PAGE * PAGE,
    }
    positions = {o: nth(store, o) for d in depths.values() for o in (d - 1, d)}
    session = requests.Session()
    session.headers["Accept-Encoding"] = "identity"
    asked: dict[tuple[str, str], dict[str, str]] = {}
    first_pages: dict[str, list[float]] = {}
    for verb in ("ListRecords", "ListIdentifiers"):
        started = time.perf_counter()
        body = session.get(
            url, params={"verb": verb, "metadataPrefix": "oai_dc"}, timeout=600
        ).content
        first_pages[verb] = [time.perf_counter() - started]
        issued = TOKEN.search(body)
        assert issued is not None, body[:500]
        state = decode_token(issued.group(1).decode(), SECRET, verb)
        rebuilt = encode_token(
            dataclasses.replace(state, position=positions[PAGE - 1], cursor=PAGE), SECRET
        )
        assert rebuilt == issued.group(1).decode(), (state, "a rebuilt token differs")
        for depth, offset in depths.items():
            token = encode_token(
                dataclasses.replace(state, position=positions[offset - 1], cursor=offset),
                SECRET,
            )
            params = {"verb": verb, "resumptionToken": token}
            page = session.get(url, params=params, timeout=600).content
            ids = IDENTIFIER.findall(page)
            expected = positions[offset].local_id
            assert ids and ids[0].decode().endswith(":" + expected), (depth, page[:800])
            assert len(ids) == min(PAGE, total - offset), (depth, len(ids))
            asked[verb, depth] = params
    times: dict[tuple[str, str], list[float]] = {key: [] for key in asked}
    for _ in range(rounds):
        for verb in ("ListRecords", "ListIdentifiers"):  # the first page: its list's size
            started = time.perf_counter()
            session.get(url, params={"verb": verb, "metadataPrefix": "oai_dc"}, timeout=600)
            first_pages[verb].append(time.perf_counter() - started)
        for key, params in asked.items():
            started = time.perf_counter()
            session.get(url, params=params, timeout=600).content  # noqa: B018
            times[key].append(time.perf_counter() - started)
    for verb in ("ListRecords", "ListIdentifiers"):
        medians = {depth: statistics.median(times[verb, depth]) for depth in depths}
        base = medians["0 %"]
        cells = ", ".join(
            f"{depth} (record {offset + 1:,}) {medians[depth] * 1000:.1f} ms"
            f"{'' if depth == '0 %' else f' = {medians[depth] / base:.2f}'}"
            for depth, offset in depths.items()
        )
        print(f"{verb}, medians of {rounds} rounds: {cells}", flush=True)
        print(f"{verb} deep/first: {medians['100 % (last live page)'] / base:.2f} "
              f"(50 %: {medians['50 %'] / base:.2f}); first page without a token (it gives "
              f"completeListSize): first {first_pages[verb][0] * 1000:.0f} ms, then median "
              f"{statistics.median(first_pages[verb][1:] or first_pages[verb]) * 1000:.1f} ms",
              flush=True)  # fmt: skip
    store.close()


def deadline(text: str) -> datetime:
    """HH:MM UTC, today."""
    hour, minute = (int(part) for part in text.split(":"))
    return datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="records (with --again: ignored)")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="records a load")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30, help="times each page is asked for")
    parser.add_argument(
        "--folder", type=Path, help="where the store goes (default: a temporary folder)"
    )
    parser.add_argument(
        "--deadline", type=deadline, help="HH:MM UTC: start no chunk that would end later"
    )
    parser.add_argument("--reserve", type=float, default=3.0,
                        help="GB of disk to leave free: start no chunk that might take them")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the folder and the store")
    parser.add_argument("--again", type=Path, metavar="FOLDER",
                        help="time the pages of a store kept by --keep, loading nothing")  # fmt: skip
    arguments = parser.parse_args()
    if arguments.again is not None:
        folder = arguments.again
    else:
        if arguments.folder is not None:
            arguments.folder.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="oaipmh-scale-", dir=arguments.folder))
        (folder / "oaipmh.toml").write_text("[datestamps]\nkeep_accessioned = true\n", "utf-8")
    config = folder / "oaipmh.toml"
    # Written before the first load: every datestamp a load gave (not an accessioned date
    # kept) is after it.
    began = datetime.fromtimestamp(int(config.stat().st_mtime), UTC)
    database = folder / "scale.sqlite3"
    env = {
        **os.environ,
        "OAIPMH_CONFIG": str(config),
        "OAIPMH_DATABASE_URL": f"sqlite:///{database}",
        "OAIPMH_PAGE_SIZE": str(PAGE),
        "OAIPMH_TOKEN_SECRET": SECRET,
    }
    server = None
    try:
        if arguments.again is None:
            load_chunks(arguments, folder, env)
        server, port = serve(env, arguments.workers)
        sample_pages(f"http://127.0.0.1:{port}/oai", database, arguments.rounds, began)
    finally:
        if server is not None:
            stop(server)
        if arguments.keep or arguments.again is not None:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
