"""DSpace exports loaded in another order than the repository was built: the structure
export after the items of its collections, a zipped export inside a folder, and an `-a`
metadata CSV over records already stored."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oaipmh_server.store import SqlStore

from .conftest import SAMPLES, SECRET, load_into, make_app
from .db import assert_set_sizes_kept, stored_fields
from .oai import NS, harvest, tree
from .test_dspace_csv_merge import EDIT, NOT_EXPORTED, default_csv, edited
from .test_dspace_sets import SERVED_SPECS, headers_by_id
from .test_saf_exports import (
    SEED_HANDLE,
    SEED_RECORD,
    refused,
    seed_export,
    seed_fields,
    zip_folder,
)

# What these tests show depends on the store: they run on SQLite and PostgreSQL, except
# those marked same_on_every_store: how archives are found, unpacked and refused is the
# reading's, whichever store the records go to.
pytestmark = pytest.mark.store_behaviour

STRUCTURE = SAMPLES / "dspace" / "structure.xml"
SAF = SAMPLES / "dspace" / "saf"
CSV = SAMPLES / "dspace" / "metadata-export.csv"
SEED_EXPORTS = Path(__file__).parent / "fixtures" / "dspace-seed"
SEED_SAF = SEED_EXPORTS / "saf"
SEED = "10722/212116"
FIRST = datetime(2026, 3, 1, tzinfo=UTC)
SECOND_LOAD = datetime(2026, 3, 2, tzinfo=UTC)


def datestamps(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    root = tree(client.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc"))
    return {
        h.findtext("oai:identifier", namespaces=NS).rsplit(":", 1)[1]: h.findtext(
            "oai:datestamp", namespaces=NS
        )
        for h in root.iterfind(".//oai:header", NS)
    }


def set_names(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    pages, _ = harvest(client, "ListSets")
    return {
        s.findtext("oai:setSpec", namespaces=NS): s.findtext("oai:setName", namespaces=NS)
        for page in pages
        for s in page.iterfind(".//oai:set", NS)
    }


def test_a_structure_export_loaded_after_the_items_places_them(empty_database_url: str) -> None:
    """The items come first (their collections named after their specs), the structure
    export in a second load: every record is then served in its communities too, its
    header changed, so it is dated by that load for incremental harvesters to see."""
    load_into(empty_database_url, SAF, CSV, clock=lambda: FIRST)
    store = SqlStore(empty_database_url, token_secret=SECRET)  # no harvest, no cut-off
    header = store.get_header("10722/310001")
    store.close()
    assert header is not None and header.set_specs == ("col_10722_5",)
    summary = load_into(empty_database_url, STRUCTURE, clock=lambda: SECOND_LOAD)
    client = make_app(empty_database_url).test_client()
    everything = headers_by_id(client, "")
    assert everything == SERVED_SPECS  # as if loaded in order
    for spec in ("com_10722_1", "com_10722_2", "com_10722_3", "col_10722_5"):
        assert headers_by_id(client, f"&set={spec}") == {
            i: s for i, s in everything.items() if spec in s
        }, spec
    after = datestamps(client)
    assert set(after.values()) == {"2026-03-02T00:00:00Z"}  # the time of this load
    assert summary.updated == 4
    assert headers_by_id(client, "&from=2026-03-02") == everything
    names = set_names(client)
    assert names["col_10722_5"] == "Faculty of Medicine: Journal/Magazine Articles"
    assert names["com_10722_1"] == "Faculty of Medicine"
    # The same structure again changes nothing, datestamps included.
    again = load_into(empty_database_url, STRUCTURE, clock=lambda: datetime(2026, 3, 3, tzinfo=UTC))
    assert again.updated == 0 and again.sets == 0
    assert datestamps(make_app(empty_database_url).test_client()) == after


def test_a_structure_export_after_the_items_in_the_same_load(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Given after more items than a load writes at once: those already written are placed
    too, and keep the datestamp this load gave them (their accessioned dates, in an empty
    store)."""
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": f"10722/9{n:04}", "sets": ["col_10722_6"], "metadata": [
                {"field": "dc.title", "value": f"T{n}"},
                {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]}) + "\n"
            for n in range(1500)
        ),
        "utf-8",
    )  # fmt: skip
    summary = load_into(empty_database_url, items, STRUCTURE, clock=lambda: FIRST)
    assert (summary.added, summary.updated) == (1500, 0)
    store = SqlStore(empty_database_url, token_secret=SECRET)
    try:
        for n in (0, 999, 1499):
            header = store.get_header(f"10722/9{n:04}")
            assert header is not None
            assert header.set_specs == ("com_10722_4", "com_10722_1", "col_10722_6")
            assert header.datestamp == datetime(2015, 7, 21, 2, 23, 32, tzinfo=UTC)
    finally:
        store.close()
    client = make_app(empty_database_url).test_client()
    assert len(headers_by_id(client, "&set=com_10722_1")) == 100  # a page of them


def test_a_collection_moved_to_another_community_leaves_the_old_one(
    empty_database_url: str, tmp_path: Path
) -> None:
    load_into(empty_database_url, STRUCTURE, SAF, clock=lambda: FIRST)
    moved = STRUCTURE.read_text("utf-8")
    # col_10722_5 moves from Medicine (10722/1) into Arts (10722/3)
    block_start = moved.index('    <collection identifier="10722/5">')
    block_end = moved.index("</collection>", block_start) + len("</collection>\n")
    block = moved[block_start:block_end]
    moved = moved[:block_start] + moved[block_end:]
    arts = moved.index('    <collection identifier="10722/30">')
    moved = moved[:arts] + block + moved[arts:]
    path = tmp_path / "structure.xml"
    path.write_text(moved, "utf-8")
    load_into(empty_database_url, path, clock=lambda: SECOND_LOAD)
    client = make_app(empty_database_url).test_client()
    assert headers_by_id(client, "")["10722/310001"] == ["com_10722_3", "col_10722_5"]
    assert "10722/310001" not in headers_by_id(client, "&set=com_10722_1")
    assert "10722/310001" in headers_by_id(client, "&set=com_10722_3")
    assert_set_sizes_kept(empty_database_url)  # through the records placed again


# --- a .zip of an export inside a folder given to load ----------------------------------------


@pytest.mark.same_on_every_store
def test_a_zipped_export_in_a_folder_loads_like_the_zip_given(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    """DSpace's `export -z -d DIR` leaves DIR/NAME.zip: `load DIR` reads the zip as if it
    were given itself, beside the other record files of the folder."""
    export = tmp_path / "export"
    seed_export(export)
    given = tmp_path / "given"
    given.mkdir()
    zip_folder(export, given / "export.zip")
    (given / "more.jsonl").write_text(json.dumps(SEED_RECORD) + "\n", "utf-8")
    summary = load_into(empty_database_url, given)
    assert (summary.added, summary.rejected, summary.warnings) == (2, 0, [])
    assert stored_fields(empty_database_url, SEED_HANDLE) == {SEED_HANDLE: seed_fields(tmp_path)}
    assert list(private_temp.iterdir()) == []
    # Its problems are named as the zip's own, by their place in it.
    broken = export / "item_000" / "dublin_core.xml"
    broken.write_text(broken.read_text("utf-8").replace("</dublin_core>", ""), "utf-8")
    zip_folder(export, given / "export.zip")
    (problem,) = refused(empty_database_url, tmp_path, given)
    assert problem.startswith(f"{given / 'export.zip'}!item_000: record {SEED_HANDLE}: ")


@pytest.mark.same_on_every_store
def test_a_zip_inside_an_archive_is_an_error(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    """An archive is unpacked once: a zip inside it is not unpacked in turn (a zip of zips
    would multiply what the archive limits bound), and not silently left out either."""
    inner = tmp_path / "inner"
    seed_export(inner)
    outer = tmp_path / "outer"
    outer.mkdir()
    zip_folder(inner, outer / "inner.zip")
    archive = zip_folder(outer, tmp_path / "outer.zip")
    assert refused(empty_database_url, tmp_path, archive) == [
        f"{archive}!inner.zip: a .zip inside an archive is not unpacked: "
        "unpack the archive and load the folder"
    ]
    assert list(private_temp.iterdir()) == []


@pytest.mark.same_on_every_store
def test_an_item_s_zipped_bitstream_is_not_an_export(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    """Inside an item folder a .zip is the item's file (a bitstream), never read."""
    export = tmp_path / "export"
    item = seed_export(export)
    zip_folder(export, item / "data.zip")
    (item / "contents").write_text("data.zip\tbundle:ORIGINAL\n", "utf-8")
    summary = load_into(empty_database_url, export)
    assert (summary.added, summary.rejected) == (1, 0)


# --- an -a metadata CSV over records already stored -------------------------------------------


def test_an_all_metadata_csv_changes_only_its_columns(
    empty_database_url: str, tmp_path: Path
) -> None:
    """`dspace metadata-export -a` has dc.date.accessioned, but it is still a metadata
    CSV: DSpace's metadata-import changes only the columns present, whichever they are. A
    row for a stored record keeps every field without a column (here dc.publisher.place,
    dc.identifier.isi, and dcterms.license of another schema); a row for a record not yet
    stored is the whole record, dated by its dc.date.accessioned."""
    load_into(empty_database_url, SAMPLES / "sets.json", SEED_SAF, clock=lambda: FIRST)
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"id": "10722/999", "metadata": [
        {"field": "dc.title", "value": "Kept"},
        {"field": "dcterms.license", "value": "CC BY 4.0"},
        {"field": "dc.date.accessioned", "value": "2015-01-01T00:00:00Z"},
    ]}) + "\n", "utf-8")  # fmt: skip
    load_into(empty_database_url, extra, clock=lambda: FIRST)
    before = stored_fields(empty_database_url, SEED)[SEED]
    export = default_csv(tmp_path / "export.csv", EDIT, NOT_EXPORTED, all_metadata=True)
    with export.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    new = dict.fromkeys(header, "")
    new.update({"id": "u-new", "dc.title": "New", "dc.date.accessioned": "2016-01-01T00:00:00Z",
                "dc.identifier.uri": "http://hdl.handle.net/10722/1000"})  # fmt: skip
    renamed = {**new, "id": "u-999", "dc.title": "Kept, retitled",
               "dc.identifier.uri": "http://hdl.handle.net/10722/999"}  # fmt: skip
    with export.open("a", encoding="utf-8", newline="") as handle:  # a new item, and 10722/999
        csv.writer(handle).writerows([new.values(), renamed.values()])
    summary = load_into(empty_database_url, export, clock=lambda: SECOND_LOAD)
    assert (summary.updated, summary.added, summary.rejected) == (2, 1, 0)
    expected = edited(before)
    assert stored_fields(empty_database_url, SEED)[SEED] == expected
    assert ["dc.publisher.place", "United States", None] in expected
    kept = stored_fields(empty_database_url, "10722/999")["10722/999"]
    assert ["dcterms.license", "CC BY 4.0", None] in kept
    assert ["dc.title", "Kept, retitled", None] in kept
    assert ["dc.date.accessioned", "2016-01-01T00:00:00Z", None] in kept  # its column
    assert ["dc.title", "New", None] in stored_fields(empty_database_url, "10722/1000")[
        "10722/1000"
    ]
    # The same export again changes nothing.
    again = load_into(empty_database_url, export, clock=lambda: datetime(2026, 3, 3, tzinfo=UTC))
    assert (again.unchanged, again.updated, again.added) == (3, 0, 0)
