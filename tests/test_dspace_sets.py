"""DSpace's sets and paths: flat com_/col_ specs with every community above a collection,
the tree from a sets file or DSpace's structure export, and DSpace's /oai/request."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from oaipmh_server.ingest.structure import is_structure_file
from oaipmh_server.store.schema import sets_table

from .cli import invoke
from .conftest import SAMPLES, load_into, make_app, refused_problems
from .db import fetch
from .oai import NS, error_codes, harvest, tree

# What these tests show depends on the store: they run on SQLite and PostgreSQL, except
# those marked same_on_every_store: what a structure export or sets file is refused for,
# which handle forms name which sets, where a folder's structure export is found (the
# reading's), and which base URL a path answers with (the web edge's).
pytestmark = pytest.mark.store_behaviour

SETS = SAMPLES / "sets.json"
STRUCTURE = SAMPLES / "dspace" / "structure.xml"
SAF = SAMPLES / "dspace" / "saf"
CSV = SAMPLES / "dspace" / "metadata-export.csv"
DSPACE_RESPONSE = Path(__file__).parent / "fixtures" / "dspace-oai" / "GetRecord.dim.xml"
DIM = "http://www.dspace.org/xmlns/dspace/dim"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# OAI-PMH.xsd, setSpecType.
SET_SPEC_TYPE = re.compile(r"([A-Za-z0-9\-_\.!~\*'\(\)])+(:[A-Za-z0-9\-_\.!~\*'\(\)]+)*")


def specs_of(header: etree._Element) -> list[str]:
    return [s.text for s in header.iterfind("oai:setSpec", NS)]


def headers_by_id(client, query: str) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    root = tree(client.get(f"/oai?verb=ListIdentifiers&metadataPrefix=oai_dc{query}"))
    return {
        h.findtext("oai:identifier", namespaces=NS).rsplit(":", 1)[1]: specs_of(h)
        for h in root.iterfind(".//oai:header", NS)
    }


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    metadata = [{"field": "dc.title", "value": "A title"},
                {"field": "dc.date.accessioned", "value": "2020-01-01T00:00:00Z"}]  # fmt: skip
    path.write_text(
        "".join(json.dumps({**r, "metadata": metadata}) + "\n" for r in records), "utf-8"
    )
    return path


# The specs each record of the sample export is served with (flat style): the communities
# above its collections, nearest first, then the collections.
SERVED_SPECS = {
    "10722/310001": ["com_10722_1", "col_10722_5"],
    "10722/310002": ["com_10722_3", "col_10722_31"],
    "10722/310003": ["com_10722_2", "col_10722_20", "col_10722_21"],
    "0b4e7c2a-91f3-4d8e-a6b5-3c2d1e0f9a8b": ["com_10722_3", "col_10722_30"],
}


def test_a_dspace_export_is_served_with_flat_specs_and_every_community(
    empty_database_url: str,
) -> None:
    """SAF and CSV items name collections; the sets file puts them in communities
    (10722/6 in the sub-community 10722/4 of 10722/1). Each header lists the communities,
    nearest first, then the collections, and each of those specs selects the record."""
    load_into(empty_database_url, SETS, SAF, CSV)
    client = make_app(empty_database_url).test_client()
    everything = headers_by_id(client, "")
    assert everything == SERVED_SPECS
    for spec in ("col_10722_5", "com_10722_1", "com_10722_2", "col_10722_21", "com_10722_3"):
        selected = headers_by_id(client, f"&set={spec}")
        assert selected == {i: s for i, s in everything.items() if spec in s}, spec
    for header in everything.values():
        assert all(SET_SPEC_TYPE.fullmatch(spec) for spec in header)


def test_a_sub_community_and_its_parent_both_select(
    empty_database_url: str, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "r.jsonl", [{"id": "1", "sets": ["col_10722_6"]},
                                       {"id": "2", "sets": ["col_10722_6", "col_10722_30"]},
                                       {"id": "3", "sets": ["col_10722_5"]}])  # fmt: skip
    load_into(empty_database_url, SETS, tmp_path / "r.jsonl")
    client = make_app(empty_database_url).test_client()
    assert headers_by_id(client, "&set=com_10722_4") == {
        "1": ["com_10722_4", "com_10722_1", "col_10722_6"],
        # breadth first, as DSpace: the collections' communities, then theirs
        "2": ["com_10722_4", "com_10722_3", "com_10722_1", "col_10722_6", "col_10722_30"],
    }
    assert set(headers_by_id(client, "&set=com_10722_1")) == {"1", "2", "3"}
    assert set(headers_by_id(client, "&set=com_10722_3")) == {"2"}


def test_hierarchical_style_places_collections_under_their_communities(
    empty_database_url: str, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "r.jsonl", [{"id": "1", "sets": ["col_10722_6"]}])
    load_into(empty_database_url, SETS, tmp_path / "r.jsonl", set_style="hierarchical")
    client = make_app(empty_database_url).test_client()
    assert headers_by_id(client, "") == {"1": ["com_10722_1:com_10722_4:col_10722_6"]}
    assert set(headers_by_id(client, "&set=com_10722_1")) == {"1"}
    assert set(headers_by_id(client, "&set=com_10722_1:com_10722_4")) == {"1"}
    pages, _ = harvest(client, "ListSets")
    specs = {s.text for p in pages for s in p.iterfind(".//oai:setSpec", NS)}
    assert "com_10722_1:col_10722_5" in specs and "col_10722_5" not in specs


def an_hour_ago() -> datetime:
    """The loads' clock where a test lists what they changed: a list shows what was
    stored one second before its first page."""
    return datetime.now(UTC) - timedelta(hours=1)


def write_tree(path: Path, collection: str, community: str) -> Path:
    """A sets file of two communities, with `collection` in `community`."""
    tree = [{"spec": c, "name": f"Community {c}"} for c in ("com_10722_1", "com_10722_2")]
    tree.append({"spec": collection, "name": "A collection", "parent": community})
    path.write_text(json.dumps({"sets": tree}), "utf-8")
    return path


def test_hierarchical_style_places_records_loaded_again_where_the_tree_moved_their_collection(
    empty_database_url: str, tmp_path: Path
) -> None:
    """docs/loading.md: in the hierarchical style a record keeps the path it was placed at
    until it is loaded again. A collection moved to another community by a sets file:
    its records loaded again, and new ones, are served under the new community's path,
    not left out of every community."""
    url, style = empty_database_url, {"set_style": "hierarchical", "clock": an_hour_ago}
    load_into(url, write_tree(tmp_path / "a.json", "col_10722_5", "com_10722_1"), **style)
    first = [{"id": "1", "sets": ["col_10722_5"]}, {"id": "3", "sets": ["col_10722_5"]}]
    load_into(url, write_jsonl(tmp_path / "1.jsonl", first), **style)
    load_into(url, write_tree(tmp_path / "b.json", "col_10722_5", "com_10722_2"), **style)
    again = [{"id": "1", "sets": ["col_10722_5"]}, {"id": "2", "sets": ["col_10722_5"]}]
    load_into(url, write_jsonl(tmp_path / "2.jsonl", again), **style)
    client = make_app(url).test_client()
    moved = {"1": ["com_10722_2:col_10722_5"], "2": ["com_10722_2:col_10722_5"]}
    assert headers_by_id(client, "&set=com_10722_2") == moved
    assert headers_by_id(client, "&set=com_10722_1") == {"3": ["com_10722_1:col_10722_5"]}


def test_hierarchical_style_places_records_loaded_before_their_sets_file_when_loaded_again(
    empty_database_url: str, tmp_path: Path
) -> None:
    """The sets file may come after the items (docs/loading.md): the items loaded again
    are served under the path it gives their collection."""
    url, style = empty_database_url, {"set_style": "hierarchical", "clock": an_hour_ago}
    items = write_jsonl(tmp_path / "1.jsonl", [{"id": "1", "sets": ["col_10722_5"]}])
    load_into(url, items, **style)
    load_into(url, write_tree(tmp_path / "a.json", "col_10722_5", "com_10722_1"), **style)
    load_into(url, write_jsonl(tmp_path / "2.jsonl", [{"id": "1", "sets": ["col_10722_5"]},
                                                      {"id": "2", "sets": ["col_10722_5"]}]),
              **style)  # fmt: skip
    client = make_app(url).test_client()
    placed = {"1": ["com_10722_1:col_10722_5"], "2": ["com_10722_1:col_10722_5"]}
    assert headers_by_id(client, "&set=com_10722_1") == placed


def test_hierarchical_style_places_a_collection_where_its_community_moved(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A sets file moving a community into another, without naming its collections: as in
    DSpace's style, the collections go with it, and their records loaded again are served
    under the community's new path."""
    url, style = empty_database_url, {"set_style": "hierarchical", "clock": an_hour_ago}
    load_into(url, write_tree(tmp_path / "a.json", "col_10722_5", "com_10722_2"), **style)
    nested = tmp_path / "b.json"
    nested.write_text(json.dumps({"sets": [{"spec": "com_10722_2", "name": "Community 2",
                                            "parent": "com_10722_1"}]}), "utf-8")  # fmt: skip
    load_into(url, nested, **style)
    load_into(url, write_jsonl(tmp_path / "1.jsonl", [{"id": "1", "sets": ["col_10722_5"]}]),
              **style)  # fmt: skip
    client = make_app(url).test_client()
    placed = {"1": ["com_10722_1:com_10722_2:col_10722_5"]}
    assert headers_by_id(client, "&set=com_10722_1") == placed
    pages, _ = harvest(client, "ListSets")
    names = {
        s.findtext("oai:setSpec", namespaces=NS): s.findtext("oai:setName", namespaces=NS)
        for p in pages
        for s in p.iterfind(".//oai:set", NS)
    }
    assert names["com_10722_1:com_10722_2:col_10722_5"] == "A collection"


def test_a_dotted_handle_prefix_keeps_its_dots(empty_database_url: str, tmp_path: Path) -> None:
    """DSpace replaces only "/": 20.500.12801/3 is col_20.500.12801_3."""
    item = tmp_path / "saf" / "item_1"
    item.mkdir(parents=True)
    (item / "dublin_core.xml").write_text(
        '<dublin_core><dcvalue element="title">T</dcvalue><dcvalue element="date" '
        'qualifier="accessioned">2020-01-01T00:00:00Z</dcvalue></dublin_core>'
    )
    (item / "handle").write_text("20.500.12801/99\n")
    (item / "collections").write_text("20.500.12801/3\n")
    sets = tmp_path / "sets.json"
    sets.write_text(json.dumps({"sets": [
        {"spec": "com_20.500.12800_1", "name": "Top"},
        {"spec": "col_20.500.12801_3", "name": "C", "parent": "com_20.500.12800_1"},
    ]}))  # fmt: skip
    load_into(empty_database_url, sets, tmp_path / "saf")
    client = make_app(empty_database_url).test_client()
    assert headers_by_id(client, "&set=col_20.500.12801_3") == {
        "20.500.12801/99": ["com_20.500.12800_1", "col_20.500.12801_3"]
    }


@pytest.mark.same_on_every_store
def test_a_parent_must_be_defined_before_and_sets_form_a_tree(
    empty_database_url: str, tmp_path: Path
) -> None:
    sets = tmp_path / "sets.json"
    sets.write_text(json.dumps({"sets": [{"spec": "col_1", "name": "C", "parent": "com_9"}]}))
    assert refused_problems(empty_database_url, sets)[0] == (
        f"{sets}:1: set col_1: parent com_9 is not defined before it"
    )
    sets.write_text(json.dumps({"sets": [
        {"spec": "com_1", "name": "A"},
        {"spec": "com_2", "name": "B", "parent": "com_1"},
        {"spec": "com_1", "name": "A", "parent": "com_2"},
    ]}))  # fmt: skip
    assert refused_problems(empty_database_url, sets)[0] == (
        f"{sets}:1: set com_1: parent com_2 is inside it: sets form a tree"
    )
    # The hierarchical style too: com_2's path is com_1:com_2, under com_1 itself.
    assert refused_problems(empty_database_url, sets, set_style="hierarchical")[0] == (
        f"{sets}:1: set com_1: parent com_2 is inside it: sets form a tree"
    )
    assert make_app(empty_database_url).test_client().get("/oai?verb=ListSets").status_code == 200


def test_list_sets_names_every_community_and_collection(empty_database_url: str) -> None:
    load_into(empty_database_url, STRUCTURE)
    client = make_app(empty_database_url).test_client()
    pages, _ = harvest(client, "ListSets")
    sets = {
        s.findtext("oai:setSpec", namespaces=NS): (
            s.findtext("oai:setName", namespaces=NS),
            s.findtext(".//dc:description", namespaces=NS),
        )
        for page in pages
        for s in page.iterfind(".//oai:set", NS)
    }
    assert sets == {
        "com_10722_1": ("Faculty of Medicine",
                        "Research output of the Li Ka Shing Faculty of Medicine."),
        "com_10722_4": ("School of Public Health", "A school of the Faculty of Medicine."),
        "col_10722_6": ("Faculty of Medicine: Conference Papers",
                        "Papers & posters presented at conferences."),
        "col_10722_5": ("Faculty of Medicine: Journal/Magazine Articles", None),
        "com_10722_2": ("Faculty of Engineering", None),
        "col_10722_20": ("Engineering & Applied Science — Theses",
                         "Postgraduate theses (MPhil, PhD) — 研究式碩士及博士論文."),
        "col_10722_21": ("Faculty of Engineering: Book Chapters", None),
        "com_10722_3": ("Faculty of Arts", "Humanities <and> language studies."),
        "col_10722_30": ("Faculty of Arts: Journal Articles", None),
        "col_10722_31": ("文學院：學位論文 (Faculty of Arts: Theses)", None),
    }  # fmt: skip


def test_the_structure_export_and_the_sets_file_agree(
    empty_database_url: str, tmp_path: Path
) -> None:
    """sample_records/sets.json is the structure export as a sets file: loading both
    changes nothing the first one set."""
    first = load_into(empty_database_url, STRUCTURE)
    assert first.sets == 10
    again = load_into(empty_database_url, SAMPLES / "sets.json")
    assert again.sets == 0


@pytest.mark.same_on_every_store
def test_a_load_says_how_many_sets_it_added_or_changed(empty_database_url: str) -> None:
    """A structure export holds sets and no record: its load said only `Loaded 0 records:
    added 0, …`, as if nothing had been read. It says how many sets it added or changed; a
    load of the same tree again changes none, and says nothing of sets."""
    env = {"OAIPMH_DATABASE_URL": empty_database_url}
    summary = "Loaded 0 records: added 0, updated 0, unchanged 0, deleted 0, clamped 0, rejected 0."
    first = invoke("load", str(STRUCTURE), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [summary, "10 set(s) added or changed."]
    again = invoke("load", str(STRUCTURE), env=env)
    assert again.stdout.splitlines() == [summary]


@pytest.mark.same_on_every_store
def test_the_structure_export_is_found_in_a_folder_before_the_items(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "a.jsonl").write_text("")
    write_jsonl(tmp_path / "a.jsonl", [{"id": "1", "sets": ["col_10722_6"]}])
    (tmp_path / "z-structure.xml").write_bytes(STRUCTURE.read_bytes())
    (tmp_path / "notes.xml").write_text("<notes/>")  # not a structure export: not read
    load_into(empty_database_url, tmp_path)
    client = make_app(empty_database_url).test_client()
    assert headers_by_id(client, "") == {"1": ["com_10722_4", "com_10722_1", "col_10722_6"]}
    assert is_structure_file(STRUCTURE) and not is_structure_file(tmp_path / "notes.xml")


@pytest.mark.same_on_every_store
@pytest.mark.parametrize(
    ("document", "line", "reason"),
    [
        ("<import_structure>\n<community>\n<name>X</name></community></import_structure>", 2,
         "a <community> without an identifier (its handle): load the export "
         "(structure-builder -x), not an import document"),
        ('<import_structure><community identifier="1/1"><name>A</name>\n\n'
         '<collection identifier="1/2"><name> </name></collection>'
         "</community></import_structure>", 3, 'set col_1_2: a set needs a non-empty "name"'),
        ('<import_structure>\n<community identifier="1/1"><name>A</name>\n', 3,
         "not well-formed XML: "),
    ],
)  # fmt: skip
def test_a_bad_structure_export_names_file_and_line(
    empty_database_url: str, tmp_path: Path, document: str, line: int, reason: str
) -> None:
    path = tmp_path / "structure.xml"
    path.write_text(document)
    problem = refused_problems(empty_database_url, path)[0]
    assert problem.startswith(f"{path}:{line}: ")
    assert reason in problem


@pytest.mark.parametrize(
    ("document", "line", "error"),
    [
        ('<?|ml version="1.0"?>\n<import_structure>\n</import_structure>\n', 1,
         "xmlParsePI : no target name, line 1, column 3"),
        ('<?xml version="1.0"?>\n<import_struc', 2,
         "Couldn't find end of Start Tag import_struc, line 2, column 14"),
        ('<?xml version="1.0" encoding="UTF-8"?>\n<!-- DSpace -->\n<', 3,
         "StartTag: invalid element name, line 3, column 2"),
        ("import_structure\n", 1, "Start tag expected, '<' not found, line 1, column 1"),
        ("", None, "no element found"),
    ],
)  # fmt: skip
def test_an_xml_file_whose_root_cannot_be_read_is_named_at_its_line(
    empty_database_url: str, tmp_path: Path, document: str, line: int | None, error: str
) -> None:
    """An .xml file given to a load is meant to be a structure export: broken before its
    root element could be read, it is not well-formed XML at a line, as one broken further
    on is, not "not a .json, … file", which leaves the operator looking for their mistake."""
    path = tmp_path / "structure.xml"
    path.write_text(document)
    where = str(path) if line is None else f"{path}:{line}"
    assert refused_problems(empty_database_url, path) == [f"{where}: not well-formed XML: {error}"]


def test_a_well_formed_xml_file_of_another_kind_is_not_read(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A SAF item's dublin_core.xml given alone is XML, just not a file a load reads."""
    path = tmp_path / "dublin_core.xml"
    path.write_text('<?xml version="1.0"?>\n<dublin_core schema="dc">'
                    '<dcvalue element="title" qualifier="none">T</dcvalue></dublin_core>\n')  # fmt: skip
    assert refused_problems(empty_database_url, path) == [
        f"{path}: not a .json, .jsonl, DSpace metadata .csv or DSpace structure export .xml file"
    ]


@pytest.mark.same_on_every_store
def test_dspace_path_answers_with_its_own_base_url(database_url: str) -> None:
    client = make_app(database_url).test_client()
    for path in ("/oai", "/oai/request"):
        root = tree(client.get(f"{path}?verb=Identify"))
        assert root.findtext("oai:request", namespaces=NS) == f"http://localhost{path}"
        assert root.findtext(".//oai:baseURL", namespaces=NS) == f"http://localhost{path}"
        assert (
            tree(client.post(path, data={"verb": "Identify"})).find(".//oai:Identify", NS)
            is not None
        )
    configured = make_app(database_url, base_url="https://repo.example.org/server/oai")
    root = tree(configured.test_client().get("/oai/request?verb=Identify"))
    assert root.findtext(".//oai:baseURL", namespaces=NS) == (
        "https://repo.example.org/server/oai/request"
    )
    only = make_app(database_url, paths=["/oai"]).test_client()
    assert only.get("/oai/request?verb=Identify").status_code == 404


def test_harvests_like_a_dspace_registered_aggregator(empty_database_url: str) -> None:
    """/oai/request, set=col_…, metadataPrefix=dim: the records have the shape of a real
    DSpace response (tests/fixtures/dspace-oai/SOURCE.md)."""
    load_into(empty_database_url, STRUCTURE, SAF, CSV)
    client = make_app(empty_database_url).test_client()
    response = client.get("/oai/request?verb=ListRecords&metadataPrefix=dim&set=col_10722_20")
    ours = tree(response)
    assert error_codes(response) == []
    theirs = etree.parse(str(DSPACE_RESPONSE)).getroot()
    assert ours.findtext("oai:request", namespaces=NS) == "http://localhost/oai/request"
    assert theirs.findtext("oai:request", namespaces=NS).endswith("/oai/request")

    def shape(record: etree._Element) -> dict[str, object]:
        header = record.find("oai:header", NS)
        dim = record.find("oai:metadata/dim:dim", {**NS, "dim": DIM})
        specs = specs_of(header)
        return {
            "record": [etree.QName(c).localname for c in record],
            "header": sorted({etree.QName(c).localname for c in header}),
            "specs": [s.split("_", 1)[0] for s in specs],
            # The namespace as DSpace's; the schema is this server's own (DSpace's
            # http://www.dspace.org/schema/dim.xsd does not resolve: docs/formats.md, differences).
            "dim": (dim.tag, dim.get(f"{{{XSI}}}schemaLocation").split()[0]),
            "fields": {etree.QName(f).text for f in dim},
        }

    reference = shape(theirs.find(".//oai:record", NS))
    records = ours.findall(".//oai:record", NS)
    assert [r.findtext(".//oai:identifier", namespaces=NS) for r in records] == [
        "oai:repository.example.org:10722/310003"
    ]
    for record in records:
        location = record.find(".//dim:dim", {"dim": DIM}).get(f"{{{XSI}}}schemaLocation")
        assert location.split()[1].endswith("/schemas/dim.xsd")
        mine = shape(record)
        assert {k: v for k, v in mine.items() if k != "specs"} == {
            k: v for k, v in reference.items() if k != "specs"
        }
        # communities first, then collections, as DSpace lists them
        assert mine["specs"] == sorted(mine["specs"], key=lambda p: p != "com")  # type: ignore[arg-type,return-value]
        assert "col_10722_20" in specs_of(record.find("oai:header", NS))
        attributes = {a for f in record.iter(f"{{{DIM}}}field") for a in f.attrib}
        theirs_attributes = {a for f in theirs.iter(f"{{{DIM}}}field") for a in f.attrib}
        assert {"mdschema", "element"} <= attributes
        assert attributes <= theirs_attributes | {"authority", "confidence"}
        for spec in specs_of(record.find("oai:header", NS)):
            assert SET_SPEC_TYPE.fullmatch(spec) and re.fullmatch(r"co[lm]_[^:]+", spec)
    for spec in specs_of(theirs.find(".//oai:header", NS)):
        assert SET_SPEC_TYPE.fullmatch(spec) and re.fullmatch(r"co[lm]_[^:]+", spec)


# A structure export naming its communities and collections in each way DSpace writes an
# identifier: handle URLs (as its own structure-builder tests write them), a site's
# /handle/ URL, DSpace's PREFIX/SUFFIX. Two communities nested.
STRUCTURE_BY_URLS = """<?xml version="1.0" encoding="UTF-8"?>
<import_structure>
  <community identifier="{top}">
    <name>Top Community 0</name>
    <description>A top-level community</description>
    <community identifier="{sub}">
      <name>Sub Community 0.0</name>
      <collection identifier="{collection}">
        <name>Collection 0.0.0</name>
      </collection>
    </community>
  </community>
</import_structure>
"""


def listed_sets(url: str) -> list[tuple[str | None, str | None]]:
    client = make_app(url).test_client()
    root = tree(client.get("/oai?verb=ListSets"))
    return [
        (s.findtext("oai:setSpec", namespaces=NS), s.findtext("oai:setName", namespaces=NS))
        for s in root.iterfind(".//oai:set", NS)
    ]


@pytest.mark.same_on_every_store
@pytest.mark.parametrize(
    ("top", "sub", "collection"),
    [
        ("1/1", "1/2", "1/3"),
        ("https://hdl.handle.net/1/1", "http://hdl.handle.net/1/2", "https://hdl.handle.net/1/3/"),
        ("https://repo.example.org/handle/1/1", "http://localhost:4000/handle/1/2", "1/3"),
    ],
    ids=["PREFIX/SUFFIX", "hdl.handle.net URLs", "/handle/ URLs"],
)
def test_structure_identifiers_name_the_same_sets_in_each_form(
    empty_database_url: str, tmp_path: Path, top: str, sub: str, collection: str
) -> None:
    path = tmp_path / "structure.xml"
    path.write_text(STRUCTURE_BY_URLS.format(top=top, sub=sub, collection=collection))
    assert load_into(empty_database_url, path).sets == 3
    write_jsonl(tmp_path / "items.jsonl", [{"id": "1", "sets": ["col_1_3"]}])
    load_into(empty_database_url, tmp_path / "items.jsonl")
    assert listed_sets(empty_database_url) == [
        ("col_1_3", "Collection 0.0.0"),
        ("com_1_1", "Top Community 0"),
        ("com_1_2", "Sub Community 0.0"),
    ]
    client = make_app(empty_database_url).test_client()
    assert headers_by_id(client, "") == {"1": ["com_1_2", "com_1_1", "col_1_3"]}


@pytest.mark.same_on_every_store
@pytest.mark.parametrize(
    "identifier",
    ["https://example.org/items/5", "urn:nbn:de:1234-5", "10722", "hdl.handle.net/1/1",
     "https://hdl.handle.net/1/1:2", "doi:10.1/x"],
)  # fmt: skip
def test_a_structure_identifier_that_is_no_handle_is_refused_naming_it_and_its_line(
    empty_database_url: str, tmp_path: Path, identifier: str
) -> None:
    path = tmp_path / "structure.xml"
    path.write_text(STRUCTURE_BY_URLS.format(top="1/1", sub=identifier, collection="1/3"))
    assert refused_problems(empty_database_url, path) == [
        f"{path}:6: <community> identifier {identifier!r} is not a handle: DSpace writes "
        "PREFIX/SUFFIX (10722/5) or a handle URL (https://hdl.handle.net/10722/5, "
        "…/handle/10722/5)"
    ]
    assert listed_sets(empty_database_url) == []


@pytest.mark.same_on_every_store
def test_a_sets_file_nesting_a_hierarchical_spec_names_the_colon(
    empty_database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "sets.json"
    path.write_text(json.dumps({"sets": [
        {"spec": "com_https", "name": "A"},
        {"spec": "com_https:__hdl.handle.net_1_1", "name": "B", "parent": "com_https"},
    ]}))  # fmt: skip
    (problem,) = refused_problems(empty_database_url, path)
    assert problem.endswith(
        'set com_https:__hdl.handle.net_1_1: parent "com_https" is not valid: a flat spec such '
        "as com_10722_1, of a set with a flat spec: \"com_https:__hdl.handle.net_1_1\" holds ':', "
        "which nests a spec in another"
    )


# DSpace's export (StructBuilder.exportStructure) writes each community under the one it
# is in and each collection's name and pages, nothing inside a collection; and DSpace
# gives a handle to one community or collection. A collection or community inside a
# collection, or a handle given twice otherwise than as a collection DSpace maps into
# two communities (written the same in both), is a broken export: refused, never a set
# silently moved or duplicated.
TWICE = """<import_structure>
  <community identifier="1/1">
    <name>A</name>
    <collection identifier="1/3"><name>C</name></collection>
  </community>
  <community identifier="1/2">
    <name>B</name>
    <{kind} identifier="{again}"><name>{name}</name></{kind}>
  </community>
</import_structure>
"""


@pytest.mark.same_on_every_store
@pytest.mark.parametrize("again", ["1/3", "https://hdl.handle.net/1/3"])
def test_a_collection_dspace_maps_into_two_communities_is_placed_in_the_first(
    empty_database_url: str, tmp_path: Path, again: str
) -> None:
    """DSpace can map a collection into a second community, and its export then writes
    the collection under both. A set here has one parent: the collection stays in the
    first, and the load says so, naming both places (a set moved to the second, or a
    load refused, would each serve a DSpace site's records where it does not expect)."""
    path = tmp_path / "structure.xml"
    path.write_text(TWICE.format(kind="collection", again=again, name="C"))
    summary = load_into(empty_database_url, path)
    assert summary.warnings == [
        f"{path}:8: <collection> 1/3 is in two communities, com_1_1 (line 4) and com_1_2: "
        "a set here has one parent, so its records are served in com_1_1 and not in com_1_2"
    ]
    assert listed_sets(empty_database_url) == [("col_1_3", "C"), ("com_1_1", "A"),
                                               ("com_1_2", "B")]  # fmt: skip
    parents = dict(fetch(empty_database_url, select(sets_table.c.spec, sets_table.c.parent)))
    assert parents == {"com_1_1": None, "col_1_3": "com_1_1", "com_1_2": None}


@pytest.mark.same_on_every_store
@pytest.mark.parametrize(
    ("kind", "again", "reason"),
    [
        ("collection", "1/3", "<collection> 1/3 is given twice (first at line 4, named 'C'), "
         "here named 'C again': DSpace writes a collection in two communities the same in "
         "both; a broken export"),
        ("community", "1/3", "<community> 1/3 is given twice (first at line 4, a <collection>):"
         " DSpace gives a handle to one community or collection; a broken export"),
        ("community", "1/1", "<community> 1/1 is given twice (first at line 2, a <community>):"
         " DSpace gives a handle to one community or collection; a broken export"),
    ],
    ids=["a-collection-named-otherwise", "community-and-collection", "a-community-twice"],
)  # fmt: skip
def test_a_handle_given_twice_in_a_structure_export_is_refused_naming_it_and_both_lines(
    empty_database_url: str, tmp_path: Path, kind: str, again: str, reason: str
) -> None:
    path = tmp_path / "structure.xml"
    path.write_text(TWICE.format(kind=kind, again=again, name="C again"))
    (problem,) = refused_problems(empty_database_url, path)
    assert problem.startswith(f"{path}:8: {reason}")
    assert listed_sets(empty_database_url) == []


@pytest.mark.same_on_every_store
@pytest.mark.parametrize("kind", ["community", "collection"])
def test_a_community_or_collection_inside_a_collection_is_refused_naming_it_and_its_line(
    empty_database_url: str, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "structure.xml"
    path.write_text(
        '<import_structure>\n<community identifier="1/1"><name>A</name>\n'
        '<collection identifier="1/2"><name>B</name>\n'
        f'<{kind} identifier="1/3"><name>C</name></{kind}>\n'
        "</collection></community></import_structure>\n"
    )
    assert refused_problems(empty_database_url, path) == [
        f"{path}:4: <{kind}> 1/3 is inside <collection> 1/2 (line 3): a collection "
        "holds items, never a community or collection; a broken export"
    ]
    assert listed_sets(empty_database_url) == []


@pytest.mark.same_on_every_store
@pytest.mark.parametrize(
    ("collection", "named"),
    [
        ('<collection identifier="1/2"><name>B</name></collection>', "1/2"),
        ("<collection><name>B</name></collection>", "(no identifier, named 'B')"),
    ],
    ids=["with-handle", "without"],
)
@pytest.mark.parametrize("root", ["import_structure", "imported_structure"])
def test_a_collection_directly_under_the_root_is_refused_naming_it_and_its_line(
    empty_database_url: str, tmp_path: Path, root: str, collection: str, named: str
) -> None:
    """DSpace puts every collection in a community: its structure-builder writes only
    communities under the root, and its import reads only those (a collection there is
    not created). So such a collection is refused, never a set served at the top."""
    path = tmp_path / "structure.xml"
    path.write_text(
        f'<{root}>\n<community identifier="1/1"><name>A</name></community>\n'
        f"{collection}\n</{root}>\n"
    )
    assert refused_problems(empty_database_url, path) == [
        f"{path}:3: <collection> {named} is directly under <{root}>, in no "
        "community: DSpace puts every collection in one, and its structure export writes "
        "only communities there; a broken export"
    ]
    assert listed_sets(empty_database_url) == []
