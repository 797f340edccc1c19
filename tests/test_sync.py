"""`load --sync` (the paths are the whole repository: what they no longer hold is
withdrawn, guarded against an empty or cut-short export) and `load --changes` (which
records a load changed), on both backends: JSON, SAF folders, zips and CSV."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine

from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError
from oaipmh_server.ingest.load import Sync
from oaipmh_server.store import SqlStore
from oaipmh_server.store.schema import records_table

from .cli import Ran, invoke
from .conftest import SECRET, load_into, make_app, refused_unchanged
from .db import fetch
from .oai import NS, tree

FIRST = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NIGHTLY = datetime(2024, 3, 2, 2, 0, tzinfo=UTC)
SEED_ITEM = Path(__file__).parent / "fixtures" / "dspace-seed" / "saf" / "item_000"
SEED_CSV = Path(__file__).parent / "fixtures" / "dspace-seed" / "metadata-export.csv"
REPO = "oai:repository.example.org:"


def record(local_id: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    metadata = [
        {"field": "dc.title", "value": title or f"Title of {local_id}"},
        {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"},
    ]
    return {"id": local_id, "sets": ["col_1_5"], "metadata": metadata, **extra}


def export(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    return path


def states(url: str) -> dict[str, tuple[bool, datetime]]:
    """Each stored record: (deleted, datestamp)."""
    rows = fetch(
        url, select(records_table.c.local_id, records_table.c.deleted, records_table.c.datestamp)
    )
    return {lid: (bool(deleted), stamp.replace(tzinfo=UTC)) for lid, deleted, stamp in rows}


def twenty(url: str, tmp_path: Path) -> list[dict[str, Any]]:
    """A repository of twenty records, loaded; their JSON."""
    records = [record(f"r{n:02d}") for n in range(20)]
    load_into(url, export(tmp_path / "first.jsonl", records), clock=lambda: FIRST)
    return records


@pytest.mark.parametrize("backend", ["sqlite"])  # SQLite's trace and query plans
def test_a_sync_load_counts_on_indexes_only(empty_database_url: str, tmp_path: Path) -> None:
    """A --sync load (every night, at any size) counts the records on indexes, never by
    reading the table: its guard's count of the live records is all records less the
    deleted ones, each counted on an index (counting `WHERE NOT deleted` read every row:
    0.35 s at 1,000,000 records, warm)."""
    records = twenty(empty_database_url, tmp_path)
    sent: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(sent.append)

    event.listen(Engine, "connect", trace)
    try:
        load_into(empty_database_url, export(tmp_path / "n.jsonl", records[2:]), sync=Sync())
    finally:
        event.remove(Engine, "connect", trace)
    engine = create_engine(empty_database_url)
    with engine.connect() as conn:
        plans = {
            s: " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}"))
            for s in sent
            if s.lstrip().upper().startswith("SELECT") and "?" not in s
        }
    engine.dispose()
    counts = {s: plan for s, plan in plans.items() if "count(" in s.lower()}
    assert counts, plans
    assert {s: p for s, p in counts.items() if "SCAN records" in p and "INDEX" not in p} == {}


@pytest.mark.parametrize("workers", [0, 2], ids=["one process", "workers"])
def test_sync_withdraws_what_the_export_no_longer_holds(
    empty_database_url: str, tmp_path: Path, workers: int
) -> None:
    """Two items withdrawn in DSpace (10 %: the guard's default allows it), one edited,
    one new, one deleted in the export itself: the withdrawn become tombstones dated by
    the load, kept in their sets; the summary and the changes say which."""
    records = twenty(empty_database_url, tmp_path)
    nightly = [r for r in records if r["id"] not in ("r03", "r11")]
    nightly[0] = record("r00", "A corrected title")
    nightly[1] = {"id": "r01", "deleted": True}
    nightly.append(record("r20"))
    told: list[tuple[str, str]] = []
    summary = load_into(
        empty_database_url, export(tmp_path / "nightly.jsonl", nightly), clock=lambda: NIGHTLY,
        sync=Sync(), changes=lambda kind, local_id: told.append((kind, local_id)),
        workers=workers,
    )  # fmt: skip
    assert (summary.added, summary.updated, summary.unchanged) == (1, 1, 16)
    assert (summary.deleted, summary.withdrawn) == (1, 2)
    assert summary.line() == (
        "added 1, updated 1, unchanged 16, deleted 1, withdrawn 2, clamped 1, rejected 0"
    )
    assert sorted(told) == [
        ("added", "r20"), ("deleted", "r01"), ("updated", "r00"),
        ("withdrawn", "r03"), ("withdrawn", "r11"),
    ]  # fmt: skip
    stored = states(empty_database_url)
    assert {lid for lid, (deleted, _) in stored.items() if deleted} == {"r01", "r03", "r11"}
    assert stored["r03"] == stored["r11"] == (True, NIGHTLY)
    assert stored["r05"] == (False, datetime(2015, 7, 21, 2, 23, 32, tzinfo=UTC))
    client = make_app(empty_database_url).test_client()
    header = tree(
        client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={REPO}r03")
    ).find(".//oai:header", NS)
    assert header.get("status") == "deleted"
    assert [s.text for s in header.iterfind("oai:setSpec", NS)] == ["col_1_5"]
    # The same export again: nothing more to withdraw, nothing changed.
    again = load_into(
        empty_database_url,
        tmp_path / "nightly.jsonl",
        sync=Sync(),
        changes=lambda *a: told.append(a),
    )
    assert (again.withdrawn, again.unchanged, len(told)) == (0, 19, 5)


def test_without_sync_nothing_is_withdrawn_and_the_summary_is_as_it_was(
    empty_database_url: str, tmp_path: Path
) -> None:
    records = twenty(empty_database_url, tmp_path)
    summary = load_into(empty_database_url, export(tmp_path / "part.jsonl", records[:5]))
    assert summary.line() == ("added 0, updated 0, unchanged 5, deleted 0, clamped 0, rejected 0")
    assert not any(deleted for deleted, _ in states(empty_database_url).values())


def test_sync_refuses_to_withdraw_more_than_its_share_unless_allowed(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Three of twenty gone (15 %) is above the default 10 %: refused, naming the number,
    and nothing of the load is written; allowed with --sync-allow-deletes 3 (not 2), or
    with a higher [load] sync_max_deleted."""
    records = twenty(empty_database_url, tmp_path)
    truncated = export(tmp_path / "nightly.jsonl", [*records[:17], record("new")])
    for allowed, beyond in ((None, ""), (2, " and than the 2 allowed")):
        assert refused_unchanged(empty_database_url, truncated, sync=Sync(allowed)) == [
            "--sync: would withdraw 3 of the 20 records stored (15.0 %), more than [load] "
            f"sync_max_deleted (10 %){beyond}: an empty or cut-short export? If that many are "
            "gone, give --sync-allow-deletes 3"
        ]
    assert (
        load_into(empty_database_url, truncated, sync=Sync(3), clock=lambda: NIGHTLY).withdrawn == 3
    )


def test_the_guard_is_a_setting(empty_database_url: str, tmp_path: Path) -> None:
    records = twenty(empty_database_url, tmp_path)
    summary = load_into(
        empty_database_url, export(tmp_path / "half.jsonl", records[:10]), sync=Sync(),
        sync_max_deleted=50,
    )  # fmt: skip
    assert summary.withdrawn == 10
    assert load_settings(environ={}).sync_max_deleted == 10
    config = tmp_path / "site.toml"
    config.write_text("[load]\nsync_max_deleted = 2.5\n")
    assert load_settings(environ={"OAIPMH_CONFIG": str(config)}).sync_max_deleted == 2.5
    config.write_text("[load]\nsync_max_deleted = 101\n")
    with pytest.raises(
        ConfigError, match=r"load\.sync_max_deleted: must be a percentage, 0 to 100"
    ):
        load_settings(environ={"OAIPMH_CONFIG": str(config)})


def test_an_empty_export_withdraws_nothing(empty_database_url: str, tmp_path: Path) -> None:
    twenty(empty_database_url, tmp_path)
    empty = export(tmp_path / "empty.jsonl", [])
    assert refused_unchanged(empty_database_url, empty, sync=Sync()) == [
        "--sync: would withdraw 20 of the 20 records stored (100.0 %), more than [load] "
        "sync_max_deleted (10 %): an empty or cut-short export? If that many are gone, give "
        "--sync-allow-deletes 20"
    ]


def saf_export(folder: Path, handles: list[str]) -> Path:
    """DSpace's SAF export of the seed item under each handle."""
    for number, handle in enumerate(handles):
        item = folder / f"item_{number:03d}"
        shutil.copytree(SEED_ITEM, item)
        (item / "handle").write_text(handle + "\n")
    return folder


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_sync_with_a_saf_export_and_its_csv(
    empty_database_url: str, tmp_path: Path, zipped: bool
) -> None:
    """A SAF export (as a folder or DSpace's `export -z` zip) and a metadata CSV row for an
    item outside it (a load holds each record once): the item in neither is withdrawn, the
    CSV's is changed and kept."""
    first = ["1/1", "1/2", "1/3", "1/4", "1/5"]
    load_into(empty_database_url, saf_export(tmp_path / "first", first))
    nightly: Path = saf_export(tmp_path / "nightly", ["1/1", "1/2", "1/4"])
    if zipped:
        archive = tmp_path / "nightly.zip"
        with zipfile.ZipFile(archive, "w") as zipped_export:
            for path in sorted(nightly.rglob("*")):
                zipped_export.write(path, path.relative_to(nightly).as_posix())
        nightly = archive
    csv = tmp_path / "metadata-export.csv"
    csv.write_text(
        "id,collection,dc.identifier.uri,dc.title[en]\n"
        "9d2f0a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6,1/5,https://hdl.handle.net/1/5,A new title\n"
    )
    told: list[str] = []
    summary = load_into(
        empty_database_url, nightly, csv, sync=Sync(1),
        changes=lambda k, i: told.append(f"{k} {i}"),
    )  # fmt: skip
    assert (summary.unchanged, summary.updated, summary.withdrawn) == (3, 1, 1)
    assert told == ["updated 1/5", "withdrawn 1/3"]
    assert states(empty_database_url)["1/3"][0] is True


def test_sync_with_only_a_csv_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    """A default metadata CSV holds the columns it exports: it cannot show which items
    are gone. Beside a whole export it is fine."""
    twenty(empty_database_url, tmp_path)
    assert refused_unchanged(
        empty_database_url, SEED_CSV, sync=Sync(), missing_accessioned="ingest_time"
    ) == [
        "--sync: only metadata CSV rows: a CSV holds the items and columns it exports, not the "
        "whole repository, so it cannot show which items are gone; give the SAF or JSON "
        "export (a CSV's rows beside it count as records the load holds)"
    ]


# --- the command ------------------------------------------------------------------------------


def run_cli(*args: str, url: str) -> Ran:
    """The command in process (tests/cli.py): the same exit status and output."""
    return invoke(*args, env={"OAIPMH_DATABASE_URL": url})


def test_the_load_command_writes_its_changes_and_syncs(
    empty_database_url: str, tmp_path: Path
) -> None:
    records = [record(f"r{n:02d}") for n in range(10)]
    first = export(tmp_path / "first.jsonl", records)
    changes = tmp_path / "changes.txt"
    done = run_cli("load", "--changes", str(changes), str(first), url=empty_database_url)
    assert done.returncode == 0, done.stderr
    assert changes.read_text() == "".join(f"added r{n:02d}\n" for n in range(10))
    assert "Loaded 10 records: added 10," in done.stdout
    nightly = export(tmp_path / "nightly.jsonl", [record("r00", "New"), *records[1:9]])
    done = run_cli("load", "--sync", "--changes", "-", str(nightly), url=empty_database_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "updated r00\nwithdrawn r09\n"  # the changes alone
    assert "Loaded 9 records: added 0, updated 1, unchanged 8, deleted 0, withdrawn 1," in (
        done.stderr
    )
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".changes-")] == []


def test_a_failed_load_leaves_the_changes_file_as_it_was(
    empty_database_url: str, tmp_path: Path
) -> None:
    records = [record(f"r{n:02d}") for n in range(10)]
    load_into(empty_database_url, export(tmp_path / "first.jsonl", records))
    changes = tmp_path / "changes.txt"
    changes.write_text("yesterday's\n")
    cut = export(tmp_path / "cut.jsonl", [record("r00", "New"), *records[1:5]])
    failed = run_cli("load", "--sync", "--changes", str(changes), str(cut), url=empty_database_url)
    assert failed.returncode == 1
    assert "--sync: would withdraw 5 of the 10 records stored (50.0 %)" in failed.stderr
    assert "nothing was loaded" in failed.stderr and "Traceback" not in failed.stderr
    assert changes.read_text() == "yesterday's\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["changes.txt", "cut.jsonl", "first.jsonl"]
    allowed = run_cli(
        "load", "--sync", "--sync-allow-deletes", "5", "--changes", str(changes), str(cut),
        url=empty_database_url,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert changes.read_text().splitlines() == [
        "updated r00",
        *(f"withdrawn r{n:02d}" for n in range(5, 10)),
    ]


def test_load_options_are_checked_before_anything_is_loaded(
    empty_database_url: str, tmp_path: Path
) -> None:
    SqlStore(empty_database_url, token_secret=SECRET).close()
    records = export(tmp_path / "r.jsonl", [record("r00")])
    alone = run_cli("load", "--sync-allow-deletes", "3", str(records), url=empty_database_url)
    assert alone.returncode == 2 and "--sync-allow-deletes is a limit of --sync" in alone.stderr
    nowhere = tmp_path / "no such folder" / "changes.txt"
    failed = run_cli("load", "--changes", str(nowhere), str(records), url=empty_database_url)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert f"--changes {nowhere}: cannot write there" in failed.stderr
    assert states(empty_database_url) == {}


def _full_disk_at(monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    """The disk holding --changes FILE fills: its temporary file's `what` ("write", as a
    line is written during the load, or "close", as the lines still buffered are written
    after the commit) fails as the kernel says it then: ENOSPC (after closing the file)."""
    made = tempfile.NamedTemporaryFile

    def beside(*args: Any, **kwargs: Any) -> Any:
        handle = made(*args, **kwargs)
        real = getattr(handle, what)

        def full(*given: Any) -> Any:
            if what == "close":
                real()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        setattr(handle, what, full)
        return handle

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", beside)


def test_a_disk_that_fills_during_the_load_stops_it_in_one_line(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The changes are written as the load decides them: a full disk there is the load's
    end, said as a folder that cannot take the file is (not a traceback), nothing loaded
    and no temporary file left beside FILE."""
    records = export(tmp_path / "r.jsonl", [record(f"r{n:02d}") for n in range(3)])
    changes = tmp_path / "changes.txt"
    _full_disk_at(monkeypatch, "write")
    failed = run_cli("load", "--changes", str(changes), str(records), url=empty_database_url)
    assert (failed.returncode, failed.stderr) == (
        1,
        f"Error: --changes {changes}: cannot write there (No space left on device); "
        "nothing was loaded\n",
    )
    assert states(empty_database_url) == {}
    assert sorted(f.name for f in tmp_path.iterdir()) == ["r.jsonl"]


def test_a_disk_full_after_the_commit_leaves_no_temporary_file(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last lines are written when the file is closed, after the commit: the load
    stands and says the list could not be written, and the partial list is removed (a
    hidden `.changes-…` file would otherwise stay in the folder for good)."""
    records = export(tmp_path / "r.jsonl", [record(f"r{n:02d}") for n in range(3)])
    changes = tmp_path / "changes.txt"
    changes.write_text("yesterday's\n")
    _full_disk_at(monkeypatch, "close")
    done = run_cli("load", "--changes", str(changes), str(records), url=empty_database_url)
    assert (done.returncode, done.stderr) == (
        1,
        f"Error: the load committed, but --changes {changes} could not be written: "
        "No space left on device\n",
    )
    assert sorted(states(empty_database_url)) == ["r00", "r01", "r02"]
    assert changes.read_text() == "yesterday's\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["changes.txt", "r.jsonl"]


def test_changes_given_as_a_symbolic_link_are_written_where_it_leads(
    empty_database_url: str, tmp_path: Path
) -> None:
    """`--changes latest.txt`, a link to the file a harvester-facing job reads: the list
    lands in that file and the link stays a link (renamed onto the link's own name, the
    list replaced the link and the file it named kept the previous load's list; with the
    file on another disk, the committed load's list was lost to EXDEV)."""
    records = export(tmp_path / "r.jsonl", [record("r00")])
    (tmp_path / "lists").mkdir()
    real = tmp_path / "lists" / "changes.txt"
    real.write_text("yesterday's\n")
    link = tmp_path / "latest.txt"
    link.symlink_to(real)
    done = run_cli("load", "--changes", str(link), str(records), url=empty_database_url)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text() == "added r00\n"
    assert sorted(f.name for f in real.parent.iterdir()) == ["changes.txt"]
