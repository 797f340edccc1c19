"""A big load shares its work with worker processes (ingest/workers.py). Besides reading
big JSON Lines files (test_ingest.py), they finish what the loading process reads: a
metadata CSV's rows are merged with the stored records they change, and SAF items and
merged rows are rendered and packed, while the loading process reads on and writes the
finished batches in order. Whatever is in flight, the store comes out as one process
makes it, and the problems read the same, in the same order."""

from __future__ import annotations

import gc
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oaipmh_server.ingest import batches, load, placing, refreshing, sync, workers

from .conftest import load_into, refusal, refused_unchanged, sqlite_url
from .db import everything, stored_fields
from .test_hostile_exports import KilledWorkers

T1 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
T2 = datetime(2025, 3, 2, 12, 0, 0, tzinfo=UTC)
ITEMS = 12
HEADER = "id,collection,dc.title[en_US],dc.subject,dc.identifier.uri"


def handle(n: int) -> str:
    return f"10722/{1000 + n}"


def saf_export(root: Path) -> Path:
    """ITEMS items of collection 10722/5, every other one with an open PDF and a
    restricted Word file, as DSpace's `export` writes them."""
    for n in range(ITEMS):
        folder = root / "saf" / f"item_{n:03d}"
        folder.mkdir(parents=True)
        (folder / "dublin_core.xml").write_text(
            '<dublin_core schema="dc">'
            f'<dcvalue element="title" qualifier="none" language="en_US">Item {n}</dcvalue>'
            f'<dcvalue element="subject" qualifier="none">Topic {n}</dcvalue>'
            '<dcvalue element="date" qualifier="accessioned">2020-01-01T00:00:00Z</dcvalue>'
            f'<dcvalue element="identifier" qualifier="uri">http://hdl.handle.net/{handle(n)}'
            "</dcvalue></dublin_core>",
            "utf-8",
        )
        (folder / "handle").write_text(handle(n) + "\n", "utf-8")
        (folder / "collections").write_text("10722/5\n", "utf-8")
        if n % 2 == 0:
            (folder / "paper.pdf").write_bytes(b"%%PDF-1.4 paper %d\n" % n)
            (folder / "data.docx").write_bytes(b"PK restricted %d\n" % n)
            (folder / "contents").write_text(
                "paper.pdf\tbundle:ORIGINAL\tprimary:true\n"
                "data.docx\tbundle:ORIGINAL\tpermissions:-r 'Staff'\n",
                "utf-8",
            )
    return root / "saf"


def row(n: int, title: str, collection: str = "10722/5", subjects: str = "") -> str:
    uri = f"http://hdl.handle.net/{handle(n)}"
    return f'u-{n},{collection},"{title}",{subjects or f"Topic {n}"},{uri}'


def write_csv(path: Path, *rows: str) -> Path:
    path.write_text("\n".join((HEADER, *rows)) + "\n", "utf-8")
    return path


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of two records: many in flight at once, however small the export."""
    for module in (load, batches, placing, refreshing, sync):  # each part of a load
        monkeypatch.setattr(module, "BATCH", 2)


def test_a_csv_merge_in_the_workers_stores_what_one_process_stores(tmp_path: Path) -> None:
    export = saf_export(tmp_path)
    merge = write_csv(
        tmp_path / "metadata-export.csv",
        *(row(n, f"Item {n}, revised") for n in range(8)),  # merged
        row(8, "Item 8", collection=""),  # no collection: keeps its sets; unchanged
        row(9, "Item 9, moved", collection="10722/6"),  # to another collection
        row(10, "Item 10", subjects="Topic 10||Another topic"),  # a value added
    )  # item 11: not in the export, left as it is
    stores = []
    for count in (0, 2):
        url = sqlite_url(tmp_path / f"w{count}.sqlite3")
        assert load_into(url, export, clock=lambda: T1, workers=count).added == ITEMS
        summary = load_into(url, merge, clock=lambda: T2, workers=count)
        assert (summary.updated, summary.unchanged, summary.added) == (10, 1, 0)
        stores.append(everything(url))
    assert stores[0] == stores[1]
    merged = stored_fields(url, handle(0), handle(10))
    assert ["dc.title", "Item 0, revised", "en_US"] in merged[handle(0)]
    assert ["dc.date.accessioned", "2020-01-01T00:00:00Z", None] in merged[handle(0)]
    assert [f[1] for f in merged[handle(10)] if f[0] == "dc.subject"] == [
        "Topic 10",
        "Another topic",
    ]
    files = [r for r in stores[1] if r[0] == handle(0) and "paper.pdf" in r]
    assert files, "the merged record keeps its files"


def test_problems_found_in_the_workers_are_reported_in_the_order_read(tmp_path: Path) -> None:
    export = saf_export(tmp_path)
    merge = write_csv(
        tmp_path / "metadata-export.csv",
        row(0, "Fine"),
        row(1, "Too many", subjects="||".join(f"s{k}" for k in range(6))),  # merged: 9 values
        "u-2,10722/5,Three cells",
        row(3, "Fine"),
        row(40, "Not stored"),  # a new item: no dc.date.accessioned to date it
        row(5, "Fine"),
        row(0, "Again"),
    )
    loaded = tmp_path / "loaded.sqlite3"  # the export, as the merge finds it (one process:
    load_into(sqlite_url(loaded), export, clock=lambda: T1, workers=0)  # the merge is tested)
    reports = []
    for count in (0, 2):
        url = sqlite_url(shutil.copy(loaded, tmp_path / f"w{count}.sqlite3"))
        reports.append(refused_unchanged(url, merge, clock=lambda: T2, workers=count, max_values=8))
    assert reports[0] == reports[1]
    assert [r.split(": ", 2)[:2] for r in reports[1]] == [
        [f"{merge}:3", f"record {handle(1)}"],
        [f"{merge}:4", "record ?"],
        [f"{merge}:6", f"record {handle(40)}"],
        [f"{merge}:2", f"record {handle(0)}"],
    ]
    assert "9 values with the stored ones, over the limit of 8" in reports[1][0]
    assert "the same record again at" in reports[1][3]


def test_a_killed_worker_fails_a_csv_merge_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url(tmp_path / "store.sqlite3")
    load_into(url, saf_export(tmp_path), clock=lambda: T1, workers=0)
    merge = write_csv(tmp_path / "export.csv", *(row(n, f"New {n}") for n in range(ITEMS)))
    monkeypatch.setattr(load, "Workers", KilledWorkers)
    assert refused_unchanged(url, merge, clock=lambda: T2, workers=2) == [
        f"{merge}:2: a worker process given the records from this line stopped"
        " (killed, or out of memory)"
    ]


def test_big_exports_are_shared_with_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big metadata CSV, like a big JSON Lines file, and a SAF export of many items
    start workers (when there is more than one core); small ones do not."""
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(workers, "PARALLEL_FROM_BYTES", 100)
    monkeypatch.setattr(workers, "PARALLEL_FROM_ITEMS", 5)
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text(HEADER + "\n", "utf-8")
    big.write_text(HEADER + "\n" + row(1, "A title long enough") + "\n", "utf-8")
    items = [tmp_path / f"item_{n}" for n in range(5)]
    for folder in items:
        folder.mkdir()
    assert workers.worker_count([small]) == 0
    assert workers.worker_count([big]) == 2
    assert workers.worker_count(items[:4]) == 0
    assert workers.worker_count(items) == 2


def test_a_load_gives_the_garbage_collector_back_as_it_was(tmp_path: Path) -> None:
    """A load collects garbage less often while it runs (workers.fewer_collections); the
    process it ran in, a server's or a test's, must not keep that, even if it failed."""
    before = gc.get_threshold()
    url = sqlite_url(tmp_path / "store.sqlite3")
    load_into(url, saf_export(tmp_path), clock=lambda: T1)
    assert gc.get_threshold() == before
    refusal(url, write_csv(tmp_path / "bad.csv", "u-1,10722/5"), clock=lambda: T2)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_jsonl_file_replaced_while_workers_read_it_loads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers read their chunks of a JSON Lines file by its name. Tonight's export
    renamed over it while the load runs (as an export is published whole) was read in
    part: the store held the first chunks of one export and the rest of the other, each
    record once, and the load said "added 200". Now the file's identity is checked when
    the load has read it: a file replaced (or written to) meanwhile loads nothing."""
    monkeypatch.setattr(workers, "CHUNK_BYTES", 2048)  # many chunks, few in flight

    def export(path: Path, prefix: str) -> Path:
        lines = [json.dumps({"id": f"{prefix}/{n}", "metadata": [
            {"field": "dc.title", "value": f"{prefix} {n} " + "x" * 400},
            {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]})
            for n in range(200)]  # fmt: skip
        path.write_text("".join(line + "\n" for line in lines), "utf-8")
        return path

    records, tonight = export(tmp_path / "r.jsonl", "10722"), export(tmp_path / "n.jsonl", "10723")
    renamed: list[str] = []

    def rename_once(kind: str, local_id: str) -> None:
        if not renamed:
            renamed.append(local_id)
            tonight.replace(records)

    url = sqlite_url(tmp_path / "store.sqlite3")
    failure = refusal(url, records, workers=2, changes=rename_once)
    assert renamed and [str(p) for p in failure.problems] == [
        f"{records}: the file was replaced or written to while it was loaded (its worker "
        "processes read it by name): nothing was loaded; load it again"
    ]
    assert everything(url) == []


def test_an_unchanged_reload_is_not_rendered_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nightly export again with one record changed and one added: once the load
    finds the records are the stored ones, the workers send them back unrendered and
    only what changed is rendered (an unchanged reload of a million records rendered
    every one, 324 s of CPU against the first load's 425, to throw the renders away).
    The store comes out as one process makes it."""
    monkeypatch.setattr(workers, "CHUNK_BYTES", 2000)  # many chunks, each a few records

    def export(count: int, changed: int | None = None) -> list[str]:
        lines = []
        for n in range(count):
            title = f"Item {n}" + (" (revised)" if n == changed else "")
            lines.append(json.dumps({"id": handle(n), "sets": ["col_10722_5"], "metadata": [
                {"field": "dc.title", "value": title},
                {"field": "dc.contributor.author", "value": f"Author {n}, A"},
                {"field": "dc.date.accessioned", "value": "2020-01-01T00:00:00Z"},
                {"field": "dc.identifier.uri", "value": f"http://hdl.handle.net/{handle(n)}"},
            ]}))  # fmt: skip
        return lines

    first, again = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    first.write_text("\n".join(export(300)) + "\n", "utf-8")
    again.write_text("\n".join(export(301, changed=250)) + "\n", "utf-8")
    decided: list[str] = []
    decide = load._Loader._decide

    def spy(self: load._Loader, item: Any, old: Any) -> Any:
        decided.append(type(item).__name__)
        return decide(self, item, old)

    stores = []
    for name, count in (("workers", 2), ("one", 0)):
        url = sqlite_url(tmp_path / f"{name}.sqlite3")
        load_into(url, first, clock=lambda: T1, workers=count)
        with monkeypatch.context() as spying:
            spying.setattr(load._Loader, "_decide", spy)
            summary = load_into(url, again, clock=lambda: T2, workers=count)
        assert (summary.added, summary.updated, summary.unchanged) == (1, 1, 299)
        stores.append(everything(url))
        if count:
            assert decided.count("Draft") > 250, decided  # sent back unrendered
    assert stores[0] == stores[1]
