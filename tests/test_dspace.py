"""DSpace exports in: Simple Archive Format folders and metadata-export CSV files, through
the same checks, datestamp rules and all-or-nothing loads as JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lxml import etree

from oaipmh_server.ingest.dspace_csv import handle_of

from .conftest import SAMPLES, load_into, make_app, refused_problems, refused_unchanged
from .db import everything, fetch, oai_identifiers, stored_fields
from .oai import NS, tree

SAF = SAMPLES / "dspace" / "saf"
CSV = SAMPLES / "dspace" / "metadata-export.csv"
# The seed item as DSpace exports it, one export of each kind: loaded with the samples, it
# would be the same record three times in one load (sample_records holds it as JSON).
SEED_EXPORTS = Path(__file__).parent / "fixtures" / "dspace-seed"
SEED_SAF = SEED_EXPORTS / "saf"
SEED_CSV = SEED_EXPORTS / "metadata-export.csv"
SEED_ID = "oai:repository.example.org:10722/212116"


def seed_json() -> list[list[str | None]]:
    record = json.loads((SAMPLES / "10722_212116.json").read_text("utf-8"))
    return [[m["field"], m["value"], m.get("lang")] for m in record["metadata"]]


def seed_oai_dc(url: str) -> bytes:
    client = make_app(url).test_client()
    root = tree(client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={SEED_ID}"))
    return etree.tostring(root.find(".//oai:metadata", NS)[0], method="c14n")


@pytest.mark.parametrize("export", [SEED_SAF, SEED_CSV], ids=["saf", "csv"])
def test_the_seed_item_arrives_field_for_field(
    empty_database_url: str, tmp_path: Path, export: Path
) -> None:
    load_into(empty_database_url, SAMPLES / "sets.json", export)
    assert stored_fields(empty_database_url, "10722/212116")["10722/212116"] == seed_json()
    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copy(SAMPLES / "10722_212116.json", reference)
    shutil.copy(SAMPLES / "sets.json", reference)
    from .conftest import sqlite_url

    json_url = sqlite_url(tmp_path / "json.sqlite3")
    load_into(json_url, reference)
    assert seed_oai_dc(empty_database_url) == seed_oai_dc(json_url)
    client = make_app(empty_database_url).test_client()
    header = tree(
        client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={SEED_ID}")
    ).find(".//oai:header", NS)
    # collection 10722/5 is col_10722_5, which sets.json places under com_10722_1: as
    # DSpace serves it, the header lists the community, then the collection
    specs = [s.text for s in header.findall("oai:setSpec", NS)]
    assert specs == ["com_10722_1", "col_10722_5"]


def test_csv_after_saf_updates_instead_of_duplicating(
    empty_database_url: str, tmp_path: Path
) -> None:
    load_into(empty_database_url, SAF, SEED_SAF)
    combined = tmp_path / "export.csv"
    combined.write_text(
        SEED_CSV.read_text("utf-8") + CSV.read_text("utf-8").split("\n", 1)[1], "utf-8"
    )
    summary = load_into(empty_database_url, combined)
    assert (summary.unchanged, summary.added) == (1, 2)  # the seed is the same item
    changed = tmp_path / "changed.csv"
    changed.write_text(
        combined.read_text("utf-8").replace("Cell Transplantation, 2013", "Cell Transplant., 2013"),
        "utf-8",
    )
    summary = load_into(empty_database_url, changed)
    assert (summary.updated, summary.unchanged) == (1, 2)
    assert len(oai_identifiers(empty_database_url)) == 5


def test_other_schemas_are_kept_as_their_own_fields(empty_database_url: str) -> None:
    load_into(empty_database_url, SAF)
    fields = stored_fields(empty_database_url, "10722/310001")["10722/310001"]
    assert ["dcterms.accessRights", "open access", None] in fields
    assert fields[-1] == ["dcterms.license", "CC BY 4.0", None]
    client = make_app(empty_database_url).test_client()
    root = tree(
        client.get(
            "/oai?verb=GetRecord&metadataPrefix=qdc&identifier=oai:repository.example.org:10722/310001"
        )
    )
    assert root.findtext(".//{http://purl.org/dc/terms/}accessRights") == "open access"
    dim = tree(
        client.get(
            "/oai?verb=GetRecord&metadataPrefix=dim&identifier=oai:repository.example.org:10722/310001"
        )
    )
    assert dim.find(".//{*}field[@mdschema='dcterms'][@element='license']").text == "CC BY 4.0"


@pytest.mark.parametrize(
    ("uris", "handle"),
    [
        (["http://hdl.handle.net/10722/212116"], "10722/212116"),
        (["https://hdl.handle.net/10722/1"], "10722/1"),
        (["https://hub.hku.hk/handle/10722/77/"], "10722/77"),
        (["https://doi.org/10.1/x", "http://hdl.handle.net/123456789/9"], "123456789/9"),
        (["https://example.org/item/1"], None),
        # any prefix: letters (DSpace's own test data), digits and dots
        (["https://demo.dspace.org/xmlui/handle/DICT/2001"], "DICT/2001"),
        (["http://hdl.handle.net/DICT/2001/"], "DICT/2001"),
        (["https://repo.example.org/handle/123456789/5"], "123456789/5"),
        (["https://hdl.handle.net/20.500.12345/7"], "20.500.12345/7"),
        (["https://example.org/handle/a.b/7"], None),
    ],
)
def test_handle_from_identifier_uri(uris: list[str], handle: str | None) -> None:
    assert handle_of(uris) == handle


def test_csv_without_handle_uses_the_uuid(empty_database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text('id,collection,dc.title[en],dc.date.accessioned\n'
                    'a2b9c3d4-0000-4000-8000-000000000001,10722/5,"A title, with a comma",2020-01-01T00:00:00Z\n')  # fmt: skip
    load_into(empty_database_url, path)
    assert oai_identifiers(empty_database_url) == {
        "oai:repository.example.org:a2b9c3d4-0000-4000-8000-000000000001"
    }


def saf_item(
    root: Path, name: str, dublin_core: str | None, handle: str | None = "10722/900"
) -> Path:
    folder = root / "export" / name
    folder.mkdir(parents=True)
    if dublin_core is not None:
        (folder / "dublin_core.xml").write_text(dublin_core)
    if handle is not None:
        (folder / "handle").write_text(handle + "\n")
    return folder


GOOD = ('<dublin_core schema="dc"><dcvalue element="title" qualifier="none">T</dcvalue>'
        '<dcvalue element="date" qualifier="accessioned">2020-01-01T00:00:00Z</dcvalue></dublin_core>')  # fmt: skip


@pytest.mark.parametrize(
    ("dublin_core", "handle", "message"),
    [
        (GOOD, None, "{folder}: no handle file: the handle is the record's id"),
        (
            '<dublin_core schema="dc"><dcvalue element="title">T</dcvalue>\n<dcvalue',
            "10722/900",
            "{folder}: record 10722/900: dublin_core.xml:2: ",
        ),
        (
            GOOD.replace('qualifier="none">T', 'qualifier="none" language="english please">T'),
            "10722/900",
            "{folder}: record 10722/900: metadata entry 1 (dc.title): language 'english please' is not a language tag",
        ),
        (
            GOOD.replace("2020-01-01T00:00:00Z", "soon"),
            "10722/900",
            "{folder}: record 10722/900: dc.date.accessioned: 'soon' is not an ISO 8601 date",
        ),
    ],
)
def test_saf_errors_name_the_item_folder(
    empty_database_url: str, tmp_path: Path, dublin_core: str, handle: str | None, message: str
) -> None:
    load_into(empty_database_url, SAF)
    saf_item(tmp_path, "item_ok", GOOD, "10722/901")
    folder = saf_item(tmp_path, "item_bad", dublin_core, handle)
    problems = refused_unchanged(empty_database_url, tmp_path / "export")
    assert problems[0].startswith(message.format(folder=folder))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            ",10722/5,T,2020-01-01T00:00:00Z",
            "record ?: no id: no handle in dc.identifier.uri and no UUID",
        ),
        (
            "u-2,10722/5,T,someday",
            "record u-2: dc.date.accessioned: 'someday' is not an ISO 8601 date",
        ),
        ("u-3,10722/5,T", "record ?: 3 cells for 4 columns"),
    ],
)
def test_csv_errors_name_the_row(
    empty_database_url: str, tmp_path: Path, row: str, message: str
) -> None:
    path = tmp_path / "export.csv"
    path.write_text('id,collection,dc.title,dc.date.accessioned\n'
                    'u-1,10722/5,"A title\nover two lines",2020-01-01T00:00:00Z\n' + row + "\n")  # fmt: skip
    assert refused_problems(empty_database_url, path) == [f"{path}:4: {message}"]
    assert (
        fetch(empty_database_url, __import__("sqlalchemy").text("SELECT count(*) FROM records"))[0][
            0
        ]
        == 0
    )


@pytest.mark.parametrize(
    ("separator", "named"), [(";", "';'"), ("\t", "a tab")], ids=["semicolon", "tab"]
)
def test_a_csv_separated_otherwise_than_with_commas_is_refused_naming_the_separator(
    empty_database_url: str, tmp_path: Path, separator: str, named: str
) -> None:
    """DSpace's own export, saved again by a spreadsheet set to a European locale (`;`,
    values quoted where they hold it) or as tab-separated text."""
    path = tmp_path / "export.csv"
    header = ["id", "collection", "dc.date.accessioned", "dc.title[en]"]
    row = ["u-1", "10722/5", "2020-01-01T00:00:00Z", '"A title; with its subtitle"']
    path.write_text("\ufeff" + separator.join(header) + "\r\n" + separator.join(row) + "\r\n")
    assert refused_problems(empty_database_url, path) == [
        f"{path}:1: the header separates its columns with {named}, where DSpace writes ',' (a "
        "spreadsheet's CSV in another list separator): save it comma-separated, as DSpace's "
        "metadata-import reads only that"
    ]
    assert everything(empty_database_url) == []


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("id,collection,dc.title,id", "two 'id' columns (columns 1 and 4)"),
        ("id,collection,collection,dc.title", "two 'collection' columns (columns 2 and 3)"),
        ("action,id,collection,dc.title,action", "two 'action' columns (columns 1 and 5)"),
    ],
    ids=["id", "collection", "action"],
)
def test_a_csv_with_a_column_of_the_item_twice_is_refused_naming_it(
    empty_database_url: str, tmp_path: Path, header: str, named: str
) -> None:
    """Which of two `id` (or `collection`, `action`) columns says the item's? Neither: the
    file is refused at its header, before any row is read."""
    path = tmp_path / "export.csv"
    cells = {"id": "u-1", "collection": "10722/5", "dc.title": "T", "action": ""}
    path.write_text(header + "\n" + ",".join(cells[t] for t in header.split(",")) + "\n")
    assert refused_problems(empty_database_url, path, missing_accessioned="ingest_time") == [
        f"{path}:1: {named}: a row has one of each"
    ]
    assert everything(empty_database_url) == []


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("id,collection,dc.title[en],dc.date.accessioned,dc.title[en]",
         "two 'dc.title[en]' columns (columns 3 and 5)"),
        ("dc.subject,id,collection,dc.date.accessioned,dc.title,dc.subject",
         "two 'dc.subject' columns (columns 1 and 6)"),
    ],
    ids=["with-language", "without"],
)  # fmt: skip
def test_a_csv_with_a_field_column_twice_is_refused_naming_both(
    empty_database_url: str, tmp_path: Path, header: str, named: str
) -> None:
    """DSpace's CSV reader refuses a heading given twice ("Duplicate heading found"), so
    an export never holds one: a file that does was put together by hand, and joining the
    two columns' values would guess. Refused at its header, before any row is read."""
    path = tmp_path / "export.csv"
    cells = {"id": "u-1", "collection": "10722/5", "dc.date.accessioned": "2020-01-01T00:00:00Z"}
    row = ",".join(cells.get(t, "A value") for t in header.split(","))
    path.write_text(header + "\n" + row + "\n")
    assert refused_problems(empty_database_url, path) == [
        f"{path}:1: {named}: DSpace's metadata-import refuses a heading given "
        "twice; give the field's values in one column, separated by ||"
    ]
    assert everything(empty_database_url) == []


def test_a_field_under_two_spellings_of_its_language_is_two_columns(
    empty_database_url: str, tmp_path: Path
) -> None:
    """DSpace's reader tells headings apart by their text, so `dc.title[en_US]` and
    `dc.title[en-US]` are two columns (each replacing its own language's values): both
    loaded, each value with its language as written."""
    path = tmp_path / "export.csv"
    path.write_text(
        "id,collection,dc.date.accessioned,dc.title[en_US],dc.title[en-US]\n"
        "u-1,10722/5,2020-01-01T00:00:00Z,One,Two\n"
    )
    load_into(empty_database_url, path)
    titles = [f for f in stored_fields(empty_database_url, "u-1")["u-1"] if f[0] == "dc.title"]
    assert titles == [["dc.title", "One", "en_US"], ["dc.title", "Two", "en-US"]]
