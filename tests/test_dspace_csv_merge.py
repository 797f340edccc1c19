"""A default `dspace metadata-export` CSV (without -a: no dc.date.accessioned, available or
provenance) changes only its columns of the stored records, as DSpace's metadata-import
does; `+` rows; handles of any prefix; the `action` column (withdraw, expunge, reinstate)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from oaipmh_server.config import load_settings
from oaipmh_server.formats import build_formats
from oaipmh_server.ingest.load import Sync, delete_records
from oaipmh_server.store import SqlStore
from oaipmh_server.store.schema import records_table

from .conftest import SAMPLES, SECRET, load_into, refusal, refused_problems
from .db import datestamps, fetch, oai_identifiers, stored_fields

SEED_EXPORTS = Path(__file__).parent / "fixtures" / "dspace-seed"
SEED_SAF = SEED_EXPORTS / "saf"
SEED_CSV = SEED_EXPORTS / "metadata-export.csv"  # with -a
SEED = "10722/212116"
LEFT_OUT = ("dc.date.accessioned", "dc.date.available", "dc.description.provenance")


def default_csv(
    path: Path,
    changes: dict[str, str] | None = None,
    dropped: tuple[str, ...] = (),
    *,
    all_metadata: bool = False,
) -> Path:
    """The seed's -a export as `dspace metadata-export` writes it without -a (or, with
    `all_metadata`, as it is), with some cells changed (a column not there is added) and
    some columns left out."""
    left_out = () if all_metadata else LEFT_OUT
    with SEED_CSV.open(encoding="utf-8", newline="") as handle:
        header, row = list(csv.reader(handle))
    cells = {
        title: cell
        for title, cell in zip(header, row, strict=True)
        if title.split("[")[0] not in left_out and title not in dropped
    }
    cells.update(changes or {})
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(cells)
        writer.writerow(cells.values())
    return path


# A row of an item the store does not hold (or holds as a tombstone) without its date.
NO_DATE = (
    "no dc.date.accessioned (the datestamp comes from it), and no such record in the store "
    "for this row to change: export with `dspace metadata-export -a` (all metadata, "
    'dc.date.accessioned included), or set [datestamps] missing_accessioned = "ingest_time" '
    "to date new records by the time of the load"
)

# An edit of the seed as an export carries it: a cell changed, a cell emptied (its values
# removed), two columns not exported (their values kept).
EDIT = {"dc.identifier.citation": "Cell Transplant. 22(12)", "dc.subject": ""}
NOT_EXPORTED = ("dc.publisher.place", "dc.identifier.isi")


def edited(before: list[list[object]]) -> list[list[object]]:
    """The seed's stored fields after EDIT: the citation in its place, no subjects."""
    return [
        ["dc.identifier.citation", "Cell Transplant. 22(12)", None]
        if f[0] == "dc.identifier.citation"
        else f
        for f in before
        if f[0] != "dc.subject"
    ]


def write_csv(path: Path, *rows: str) -> Path:
    path.write_text("\n".join(rows) + "\n", "utf-8")
    return path


def accessioned(url: str) -> dict[str, object]:
    return dict(fetch(url, select(records_table.c.local_id, records_table.c.accessioned)))


@pytest.fixture
def seeded(empty_database_url: str) -> str:
    """A store holding the seed item, loaded from its SAF export."""
    load_into(empty_database_url, SAMPLES / "sets.json", SEED_SAF)
    return empty_database_url


def test_a_default_csv_of_the_stored_item_changes_nothing(seeded: str, tmp_path: Path) -> None:
    before = (stored_fields(seeded, SEED), datestamps(seeded), accessioned(seeded))
    summary = load_into(seeded, default_csv(tmp_path / "export.csv"))
    assert (summary.unchanged, summary.updated, summary.added) == (1, 0, 0)
    assert (stored_fields(seeded, SEED), datestamps(seeded), accessioned(seeded)) == before


def test_a_default_csv_changes_only_its_columns(seeded: str, tmp_path: Path) -> None:
    before = stored_fields(seeded, SEED)[SEED]
    stamp, dated = datestamps(seeded)[SEED], accessioned(seeded)[SEED]
    export = default_csv(tmp_path / "export.csv", EDIT, dropped=NOT_EXPORTED)
    summary = load_into(seeded, export)
    assert (summary.updated, summary.unchanged, summary.added) == (1, 0, 0)
    expected = edited(before)
    assert stored_fields(seeded, SEED)[SEED] == expected
    assert ["dc.date.accessioned", "2015-07-21T02:23:32Z", None] in expected
    assert ["dc.publisher.place", "United States", None] in expected
    # still dated by its dc.date.accessioned where a record's date comes from it; as a
    # changed record, stamped by the load
    assert accessioned(seeded)[SEED] == dated
    assert datestamps(seeded)[SEED] > stamp


def test_languages_are_separate_columns(seeded: str, tmp_path: Path) -> None:
    title = [f for f in stored_fields(seeded, SEED)[SEED] if f[0] == "dc.title"]
    assert [f[2] for f in title] == [None]
    uri = "http://hdl.handle.net/10722/212116"
    load_into(seeded, write_csv(tmp_path / "a.csv", "id,dc.identifier.uri,dc.title[nb_NO],dc.title[en_US]",
                                f"u-1,{uri},Norsk tittel,English||title"))  # fmt: skip
    titles = [f for f in stored_fields(seeded, SEED)[SEED] if f[0] == "dc.title"]
    assert titles == [  # languages kept as the export said them
        *title,
        ["dc.title", "Norsk tittel", "nb_NO"],
        ["dc.title", "English", "en_US"],
        ["dc.title", "title", "en_US"],
    ]
    summary = load_into(seeded, write_csv(tmp_path / "b.csv", "id,dc.identifier.uri,dc.title[nb_NO]",
                                          f"u-1,{uri},"))  # fmt: skip
    assert summary.updated == 1
    titles = [f for f in stored_fields(seeded, SEED)[SEED] if f[0] == "dc.title"]
    assert titles == [*title, ["dc.title", "English", "en_US"], ["dc.title", "title", "en_US"]]
    # the same values again: unchanged
    summary = load_into(seeded, write_csv(tmp_path / "c.csv", "id,dc.identifier.uri,dc.title[en_US]",
                                          f"u-1,{uri},English||title"))  # fmt: skip
    assert (summary.unchanged, summary.updated) == (1, 0)
    # under the other spelling of the language, the same column: its values are replaced
    # (not added beside them), and keep the language as this export says it
    summary = load_into(seeded, write_csv(tmp_path / "d.csv", "id,dc.identifier.uri,dc.title[en-US]",
                                          f"u-1,{uri},English||title"))  # fmt: skip
    assert (summary.unchanged, summary.updated) == (0, 1)
    titles = [f for f in stored_fields(seeded, SEED)[SEED] if f[0] == "dc.title"]
    assert titles == [*title, ["dc.title", "English", "en-US"], ["dc.title", "title", "en-US"]]


def test_a_default_csv_without_collection_keeps_the_sets(seeded: str, tmp_path: Path) -> None:
    before = fetch(seeded, select(records_table.c.set_specs))
    export = default_csv(tmp_path / "export.csv", {"dc.type": "Journal article"}, ("collection",))
    assert load_into(seeded, export).updated == 1
    assert (
        fetch(seeded, select(records_table.c.set_specs)) == before == [("com_10722_1 col_10722_5",)]
    )
    export = default_csv(tmp_path / "empty.csv", {"dc.type": "Article", "collection": ""})
    assert load_into(seeded, export).updated == 1
    assert fetch(seeded, select(records_table.c.set_specs)) == before
    export = default_csv(tmp_path / "moved.csv", {"collection": "10722/6"})
    assert load_into(seeded, export).updated == 1
    moved = [("com_10722_4 com_10722_1 col_10722_6",)]  # with its communities (sets.json)
    assert fetch(seeded, select(records_table.c.set_specs)) == moved


def test_a_new_record_needs_a_datestamp_source(empty_database_url: str, tmp_path: Path) -> None:
    export = default_csv(tmp_path / "export.csv")
    assert refused_problems(empty_database_url, export) == [f"{export}:2: record {SEED}: {NO_DATE}"]
    assert oai_identifiers(empty_database_url) == set()
    summary = load_into(empty_database_url, export, missing_accessioned="ingest_time")
    assert summary.added == 1
    assert accessioned(empty_database_url) == {SEED: None}


def test_a_default_csv_does_not_revive_a_deleted_record(seeded: str, tmp_path: Path) -> None:
    from oaipmh_server.config import load_settings
    from oaipmh_server.formats import build_formats
    from oaipmh_server.ingest.load import delete_records
    from oaipmh_server.store import SqlStore

    from .conftest import SECRET

    settings = load_settings({"database_url": seeded}, environ={})
    store = SqlStore(seeded, token_secret=SECRET)
    try:
        delete_records([SEED], store, settings, build_formats(settings))
    finally:
        store.close()
    problems = refused_problems(seeded, default_csv(tmp_path / "export.csv"))
    assert "no such record in the store" in problems[0]
    assert oai_identifiers(seeded, deleted=True) == {f"oai:repository.example.org:{SEED}"}


@pytest.mark.parametrize("accessioned_column", [False, True], ids=["default", "all"])
def test_a_plus_row_is_refused(
    empty_database_url: str, tmp_path: Path, accessioned_column: bool
) -> None:
    header = "id,collection,dc.title" + (",dc.date.accessioned" if accessioned_column else "")
    date = ",2020-01-01T00:00:00Z" if accessioned_column else ""
    export = write_csv(tmp_path / "export.csv", header, f"+,10722/5,A new item{date}")
    assert refused_problems(empty_database_url, export) == [
        f"{export}:2: record ?: '+' in the id column is an item DSpace has not created yet: "
        "it has no UUID or handle to be served by; import it into DSpace and export again, "
        "or give its handle in dc.identifier.uri"
    ]
    assert oai_identifiers(empty_database_url) == set()


def test_a_plus_row_with_a_handle_is_that_record(empty_database_url: str, tmp_path: Path) -> None:
    export = write_csv(tmp_path / "export.csv", "id,collection,dc.title,dc.identifier.uri,dc.date.accessioned",
                       "+,10722/5,A new item,https://hdl.handle.net/10722/9001,2020-01-01T00:00:00Z")  # fmt: skip
    assert load_into(empty_database_url, export).added == 1
    assert oai_identifiers(empty_database_url) == {"oai:repository.example.org:10722/9001"}


def test_a_handle_with_letters_matches_the_saf_item(
    empty_database_url: str, tmp_path: Path
) -> None:
    item = tmp_path / "saf" / "item_000"
    shutil.copytree(SEED_SAF / "item_000", item)
    (item / "handle").write_text("DICT/2001\n", "utf-8")
    core = item / "dublin_core.xml"
    core.write_text(core.read_text("utf-8").replace(f"hdl.handle.net/{SEED}",
                                                    "hdl.handle.net/DICT/2001"), "utf-8")  # fmt: skip
    load_into(empty_database_url, SAMPLES / "sets.json", tmp_path / "saf")
    uri = "https://demo.dspace.org/xmlui/handle/DICT/2001"
    export = default_csv(tmp_path / "export.csv", {"dc.identifier.uri": uri, "dc.type": "Book"})
    assert load_into(empty_database_url, export).updated == 1
    assert oai_identifiers(empty_database_url) == {"oai:repository.example.org:DICT/2001"}
    fields = stored_fields(empty_database_url, "DICT/2001")["DICT/2001"]
    assert ["dc.identifier.uri", uri, None] in fields
    assert ["dc.type", "Book", None] in fields


def test_every_row_without_a_record_is_reported(seeded: str, tmp_path: Path) -> None:
    """After a first problem nothing is written, but each row is still checked against the
    store: a default export of new items counts them all, not those of the first batch."""
    rows = [f"u-{n},10722/5,Title {n}," for n in range(1, 2501)]
    rows[0] = "u-1,10722/5,Title 1"  # three cells: refused by the reader
    rows[1] = "u-2,10722/5,New title,http://hdl.handle.net/10722/212116"  # the stored one
    export = write_csv(tmp_path / "export.csv", "id,collection,dc.title,dc.identifier.uri", *rows)
    before = stored_fields(seeded, SEED)
    failure = refusal(seeded, export)
    problems = [str(p) for p in failure.problems]
    assert failure.total == 2499
    assert problems[0] == f"{export}:2: record ?: 3 cells for 4 columns"
    assert problems[1].startswith(f"{export}:4: record u-3: no dc.date.accessioned")
    assert not any(SEED in p for p in problems)
    assert stored_fields(seeded, SEED) == before


# -- the action column (DSpace's metadata-import: expunge, withdraw, reinstate) ------------------


@pytest.mark.parametrize("action", ["withdraw", "expunge"])
def test_a_row_withdrawing_its_item_makes_it_a_tombstone(
    seeded: str, tmp_path: Path, action: str
) -> None:
    """DSpace's OAI serves a withdrawn (or expunged) item as a deleted record: so does a
    load of the row that withdraws it, kept in its sets, dated by the load, whatever the
    row's other cells; the same row again changes nothing."""
    stamp = datestamps(seeded)[SEED]
    sets = fetch(seeded, select(records_table.c.set_specs))
    told: list[str] = []
    export = default_csv(tmp_path / "export.csv", {"action": action, **EDIT})
    summary = load_into(seeded, export, changes=lambda kind, i: told.append(f"{kind} {i}"))
    assert (summary.deleted, summary.updated, summary.unchanged) == (1, 0, 0)
    assert told == [f"deleted {SEED}"]
    assert oai_identifiers(seeded, deleted=True) == {f"oai:repository.example.org:{SEED}"}
    assert datestamps(seeded)[SEED] > stamp
    assert fetch(seeded, select(records_table.c.set_specs)) == sets
    again = load_into(seeded, export)
    assert (again.deleted, again.unchanged) == (0, 1)


def test_withdrawing_a_tombstone_that_holds_metadata_changes_nothing(
    seeded: str, tmp_path: Path
) -> None:
    """A JSON tombstone may carry its metadata, which the store keeps with it (for the
    day it is published again): a row withdrawing it again leaves it as it is, metadata
    and datestamp, as withdrawing any tombstone again does."""
    record = {"id": SEED, "sets": ["col_10722_5"], "deleted": True,
              "metadata": [{"field": "dc.title", "value": "Kept with the tombstone"}]}  # fmt: skip
    path = tmp_path / "tombstone.json"
    path.write_text(json.dumps(record), "utf-8")
    assert load_into(seeded, path).deleted == 1
    before = (stored_fields(seeded, SEED), datestamps(seeded))
    assert before[0][SEED] == [["dc.title", "Kept with the tombstone", None]]
    withdraw = default_csv(tmp_path / "export.csv", {"action": "withdraw"})
    assert load_into(seeded, withdraw).unchanged == 1
    assert (stored_fields(seeded, SEED), datestamps(seeded)) == before
    moved = default_csv(tmp_path / "moved.csv", {"action": "withdraw", "collection": "10722/6"})
    assert load_into(seeded, moved).deleted == 1
    assert stored_fields(seeded, SEED) == before[0]
    assert datestamps(seeded)[SEED] > before[1][SEED]
    [(specs,)] = fetch(seeded, select(records_table.c.set_specs))
    assert "col_10722_6" in specs.split() and "col_10722_5" not in specs.split()


def test_a_withdrawn_item_is_the_tombstone_delete_makes(seeded: str, tmp_path: Path) -> None:
    """Withdrawn by a row, then deleted by `delete` (or the other way round): one
    tombstone, unchanged the second time."""
    withdraw = default_csv(tmp_path / "export.csv", {"action": "withdraw"})
    assert load_into(seeded, withdraw).deleted == 1
    settings = load_settings({"database_url": seeded}, environ={})
    store = SqlStore(seeded, token_secret=SECRET)
    try:
        assert delete_records([SEED], store, settings, build_formats(settings)).deleted == 0
    finally:
        store.close()
    assert load_into(seeded, withdraw).unchanged == 1


def test_a_row_withdrawing_an_item_not_stored_needs_no_date(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A withdrawn item the store never held is a tombstone, as a JSON record with
    "deleted": true is: it needs no dc.date.accessioned (a tombstone is dated by the load)."""
    export = default_csv(tmp_path / "export.csv", {"action": "withdraw"})
    assert load_into(empty_database_url, export).deleted == 1
    assert oai_identifiers(empty_database_url, deleted=True) == {
        f"oai:repository.example.org:{SEED}"
    }


def test_a_withdrawing_row_is_not_reported_missing_a_date_beside_a_bad_row(
    empty_database_url: str, tmp_path: Path
) -> None:
    """After a first problem, rows are still checked against the store: a row withdrawing
    an item not stored is no problem (it needs no date), a new item without one is."""
    export = write_csv(
        tmp_path / "export.csv", "id,collection,dc.title,dc.identifier.uri,action",
        "u-1,10722/5,T",  # three cells: refused by the reader
        "u-2,10722/5,Gone,http://hdl.handle.net/10722/2,withdraw",
        "u-3,10722/5,New,http://hdl.handle.net/10722/3,",
    )  # fmt: skip
    problems = refused_problems(empty_database_url, export)
    assert problems[0] == f"{export}:2: record ?: 3 cells for 5 columns"
    assert problems[1].startswith(f"{export}:4: record 10722/3: no dc.date.accessioned")
    assert len(problems) == 2
    assert oai_identifiers(empty_database_url) == set()


def test_a_row_reinstating_its_item_is_a_row_like_any_other(seeded: str, tmp_path: Path) -> None:
    """DSpace's `reinstate` publishes a withdrawn item again: here a row already does (for a
    tombstone it is the whole record, dated by its dc.date.accessioned: an `-a` export);
    of an item not withdrawn it changes the columns, as a row without an action does."""
    assert load_into(seeded, default_csv(tmp_path / "w.csv", {"action": "withdraw"})).deleted == 1
    cut = default_csv(tmp_path / "cut.csv", {"action": "reinstate"})
    assert refused_problems(seeded, cut) == [f"{cut}:2: record {SEED}: {NO_DATE}"]
    whole = default_csv(tmp_path / "all.csv", {"action": "reinstate"}, all_metadata=True)
    assert load_into(seeded, whole).updated == 1
    assert oai_identifiers(seeded, deleted=False) == {f"oai:repository.example.org:{SEED}"}
    edit = default_csv(tmp_path / "edit.csv", {"action": "reinstate", **EDIT})
    before = stored_fields(seeded, SEED)[SEED]
    assert load_into(seeded, edit).updated == 1
    assert stored_fields(seeded, SEED)[SEED] == edited(before)


def test_an_item_an_export_lists_again_is_published_again(seeded: str, tmp_path: Path) -> None:
    """DSpace's metadata-export of a collection, a community or the whole repository writes
    archived items only (its item queries leave withdrawn ones out): a row with no action
    for an item deleted here says DSpace holds it live, reinstated since, so it is
    published again, as the whole record it is in an `-a` export. (metadata-import keeps a
    withdrawn item withdrawn without `reinstate`, but no such export holds one: keeping the
    tombstone would keep a live item out of every harvest.)"""
    assert load_into(seeded, default_csv(tmp_path / "w.csv", {"action": "withdraw"})).deleted == 1
    again = default_csv(tmp_path / "again.csv", all_metadata=True)
    assert load_into(seeded, again).updated == 1
    assert oai_identifiers(seeded, deleted=False) == {f"oai:repository.example.org:{SEED}"}


@pytest.mark.parametrize("action", ["Withdraw", "delete", "withdraw||reinstate"])
def test_an_unknown_action_is_refused_naming_the_row(
    seeded: str, tmp_path: Path, action: str
) -> None:
    """As DSpace's metadata-import refuses it ("Unknown action"), naming file, line and
    record; the store is left as it was."""
    before = (stored_fields(seeded, SEED), datestamps(seeded))
    export = default_csv(tmp_path / "export.csv", {"action": action})
    assert refused_problems(seeded, export) == [
        f"{export}:2: record {SEED}: action {action!r} is not one of DSpace's metadata-import "
        "actions: expunge, withdraw or reinstate (an empty cell: none)"
    ]
    assert (stored_fields(seeded, SEED), datestamps(seeded)) == before


def test_sync_with_only_csv_rows_withdrawing_items_is_refused(seeded: str, tmp_path: Path) -> None:
    """Rows that withdraw items are rows of a CSV all the same: not the whole repository."""
    export = default_csv(tmp_path / "export.csv", {"action": "withdraw"})
    assert refused_problems(seeded, export, sync=Sync())[0].startswith(
        "--sync: only metadata CSV rows"
    )
    assert oai_identifiers(seeded, deleted=True) == set()
