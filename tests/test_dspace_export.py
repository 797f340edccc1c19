"""The sample DSpace export, as a repository manager loads it: the structure export, the
SAF export (bitstreams, one in a sub-folder, one restricted), an `-a` metadata CSV with
authority values and the seed item, in whatever order and however many loads; then a
default CSV (no `-a`) over the SAF items, which changes only its columns.

Whatever the order, the repository serves the same thing: the same sets with their real
names, every record in the same sets, with the same metadata in every format, the same
files and the same authorities. (Datestamps may differ, and must: a structure export
loaded after the items moves them into their communities, a change a harvester must see.)
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from oaipmh_server import datestamps

from .conftest import SAMPLES, load_into, make_app
from .db import stored_fields
from .oai import NS, harvest, tree

DSPACE = SAMPLES / "dspace"
PIECES = {
    "structure": DSPACE / "structure.xml",
    "saf": DSPACE / "saf",
    "csv-a": DSPACE / "metadata-export.csv",
    "seed": SAMPLES / "10722_212116.json",
}
# A later edit, not the repository's state: a default metadata-export (no -a, so no
# dc.date.accessioned) of the two SAF items. It lives beside the tests, not in
# sample_records, which loads as one state (the same record twice in one load is refused).
DEFAULT_CSV = Path(__file__).parent / "fixtures" / "dspace-update" / "metadata-export.csv"
FORMATS = ("oai_dc", "dim", "oai_openaire")
START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """The time of loads and lists: each load ten seconds after the last, each list ten
    seconds after that, so what a load wrote is before every later list's cut-off (a
    second before the list) and every later load's datestamps are past it."""

    def __init__(self) -> None:
        self.moment = START

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=10)
        return self.moment


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock()
    monkeypatch.setattr(datestamps, "now", moving)
    return moving


DIM = "{http://www.dspace.org/xmlns/dspace/dim}field"
DC = "http://purl.org/dc/elements/1.1/"


def served(url: str) -> dict[str, Any]:
    """What a harvester gets, but the datestamps: ListSets, and per record its sets and
    its metadata in each format (canonical XML)."""
    client = make_app(url).test_client()
    pages, _ = harvest(client, "ListSets")
    sets = sorted(
        (s.findtext("oai:setSpec", namespaces=NS), s.findtext("oai:setName", namespaces=NS))
        for root in pages
        for s in root.iterfind(".//oai:set", NS)
    )
    records: dict[str, Any] = {}
    pages, _ = harvest(client, "ListIdentifiers", metadataPrefix="oai_dc")
    for root in pages:
        for header in root.iterfind(".//oai:header", NS):
            identifier = header.findtext("oai:identifier", namespaces=NS)
            specs = [s.text for s in header.iterfind("oai:setSpec", NS)]
            metadata = {}
            for prefix in FORMATS:
                record = tree(
                    client.get(
                        f"/oai?verb=GetRecord&metadataPrefix={prefix}&identifier={identifier}"
                    )
                )
                found = record.find(".//oai:metadata", NS)
                metadata[prefix] = (
                    None if found is None else etree.tostring(found[0], method="c14n")
                )
            records[identifier] = (specs, metadata)
    return {"sets": sets, "records": records}


def metadata(url: str, local_id: str, prefix: str, **settings: Any) -> etree._Element:
    client = make_app(url, **settings).test_client()
    identifier = f"oai:repository.example.org:{local_id}"
    record = tree(
        client.get(f"/oai?verb=GetRecord&metadataPrefix={prefix}&identifier={identifier}")
    )
    return record.find(".//oai:metadata", NS)[0]


@pytest.fixture(scope="module")
def one_load(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The export loaded at once, into SQLite: the state every order must reach."""
    from .conftest import sqlite_url

    url = sqlite_url(tmp_path_factory.mktemp("one-load") / "store.sqlite3")
    load_into(url, *PIECES.values(), clock=lambda: START)
    return served(url)


ORDERS = list(itertools.permutations(PIECES))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_the_export_loaded_in_any_order_serves_the_same(
    empty_database_url: str, order: tuple[str, ...], one_load: dict[str, Any], clock: Clock
) -> None:
    for piece in order:
        load_into(empty_database_url, PIECES[piece], clock=clock)
    assert served(empty_database_url) == one_load


def test_the_export_is_served_field_by_field(empty_database_url: str, clock: Clock) -> None:
    """What each piece of the export says arrives, in the place DSpace would serve it."""
    load_into(empty_database_url, *PIECES.values(), clock=clock)
    state = served(empty_database_url)
    sets = dict(state["sets"])
    assert sets["com_10722_1"] == "Faculty of Medicine"
    assert sets["col_10722_6"] == "Faculty of Medicine: Conference Papers"
    assert sets["col_10722_20"] == "Engineering & Applied Science — Theses"
    specs = {i.rsplit(":", 1)[1]: s for i, (s, _) in state["records"].items()}
    assert specs["10722/310001"] == ["com_10722_1", "col_10722_5"]
    assert specs["10722/212116"] == ["com_10722_1", "col_10722_5"]
    assert specs["10722/310003"] == ["com_10722_2", "col_10722_20", "col_10722_21"]

    # Authorities (the -a CSV's value::authority::confidence): dim carries them as DSpace's
    # does, oai_dc the value alone, oai_openaire an ORCID as the creator's nameIdentifier.
    authors = [
        (f.text, f.get("authority"), f.get("confidence"))
        for f in metadata(empty_database_url, "10722/310003", "dim").iter(DIM)
        if f.get("element") == "contributor" and f.get("qualifier") == "author"
    ]
    assert authors == [("Lee, SY", "0000-0002-1825-0097", "600"), ("Kumar, R", "rp01234", "500")]
    creators = metadata(empty_database_url, "10722/310003", "oai_dc").findall(f"{{{DC}}}creator")
    assert [c.text for c in creators] == ["Lee, SY", "Kumar, R"]
    openaire = etree.tostring(metadata(empty_database_url, "10722/310003", "oai_openaire"))
    assert b"0000-0002-1825-0097" in openaire and b"rp01234" not in openaire

    # Files (the SAF contents): oai_dc lists each ORIGINAL bitstream's MIME type, as DSpace
    # does; oai_openaire links the open full text in its sub-folder and never the
    # restricted referee reports; dim shows no files.
    dc = metadata(empty_database_url, "10722/310001", "oai_dc")
    assert [f.text for f in dc.findall(f"{{{DC}}}format")] == ["application/pdf"] * 2
    oaire = metadata(
        empty_database_url, "10722/310001", "oai_openaire", base_url="https://hub.hku.example/oai",
        files_url="{base}/bitstream/handle/{handle}/{name}?sequence={sequence}",
    )  # fmt: skip
    files = oaire.findall("{http://namespace.openaire.eu/schema/oaire/}file")
    assert [f.text for f in files] == [
        "https://hub.hku.example/bitstream/handle/10722/310001/fulltext/article.pdf?sequence=1"
    ]
    assert files[0].get("objectType") == "fulltext"

    # The seed, field for field, as its JSON says.
    import json

    seed = json.loads(PIECES["seed"].read_text("utf-8"))
    expected = [[m["field"], m["value"], m.get("lang")] for m in seed["metadata"]]
    assert stored_fields(empty_database_url, "10722/212116")["10722/212116"] == expected


def test_a_default_csv_over_the_saf_items_changes_only_its_columns(
    empty_database_url: str, clock: Clock
) -> None:
    load_into(empty_database_url, *PIECES.values(), clock=clock)
    before = stored_fields(empty_database_url, "10722/310001", "10722/310002")
    served_before = served(empty_database_url)
    summary = load_into(empty_database_url, DEFAULT_CSV, clock=clock)
    assert (summary.updated, summary.added) == (2, 0)
    after = stored_fields(empty_database_url, "10722/310001", "10722/310002")

    # The CSV's columns: authors and issued and uri (no language), subjects in en, titles in
    # en_US. (A column is a field and a language: dc.title[en_US] is not dc.title[zh_TW].)
    columns = {("dc.contributor.author", None), ("dc.date.issued", None),
               ("dc.identifier.uri", None), ("dc.subject", "en"), ("dc.title", "en_US")}  # fmt: skip

    def absent(fields: list[list[Any]]) -> list[list[Any]]:
        return [f for f in fields if (f[0], f[2]) not in columns]

    for local_id in before:
        # Every field whose column is absent is kept as it was, accessioned date included.
        assert absent(after[local_id]) == absent(before[local_id])
        assert ["dc.date.accessioned"] in [f[:1] for f in after[local_id]]
    first = after["10722/310001"]
    assert [f for f in first if (f[0], f[2]) in {("dc.subject", "en"), ("dc.title", "en_US")}] == [
        ["dc.subject", "COVID-19", "en"],
        ["dc.subject", "Household transmission", "en"],
        ["dc.title", "Household transmission of SARS-CoV-2: a prospective cohort study", "en_US"],
    ]
    assert [f for f in first if f[0] == "dc.contributor.author"] == [
        ["dc.contributor.author", "Yuen, Kwok-yung", None, "0000-0001-5109-3700", 600],
        ["dc.contributor.author", "Peiris, JSM", None],
    ]
    second = after["10722/310002"]
    # Its title is zh_TW: the empty dc.title[en_US] cell removes no other language's title.
    assert [f for f in second if f[0] == "dc.title"] == [
        f for f in before["10722/310002"] if f[0] == "dc.title"
    ]
    assert [f for f in second if f[0] == "dc.subject"] == [
        ["dc.subject", "Cantonese", "en"],
        ["dc.subject", "Tone (Phonetics)", "en"],
    ]
    # Sets and files stay; every other record is untouched.
    state = served(empty_database_url)
    for identifier, (specs, formats) in served_before["records"].items():
        now_specs, now_formats = state["records"][identifier]
        assert now_specs == specs
        if not identifier.endswith(("310001", "310002")):
            assert now_formats == formats
    dc = metadata(empty_database_url, "10722/310001", "oai_dc")
    assert [f.text for f in dc.findall(f"{{{DC}}}format")] == ["application/pdf"] * 2


def test_items_with_files_placed_by_a_later_structure_export_reload_unchanged(
    empty_database_url: str, clock: Clock
) -> None:
    """A structure export loaded after the SAF items moves them into their communities
    (a change, re-dated); their content hash then still counts their files, so loading
    the same items again is no change."""
    load_into(empty_database_url, PIECES["saf"], clock=clock)
    moved = load_into(empty_database_url, PIECES["structure"], clock=clock)
    assert moved.updated == 2
    again = load_into(empty_database_url, PIECES["saf"], clock=clock)
    assert (again.unchanged, again.updated) == (2, 0)
