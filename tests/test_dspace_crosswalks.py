"""The seed item as DSpace's own OAI would serve it, format by format, against ours.

`tests/fixtures/dspace-oai/seed-crosswalks.json` lists what DSpace's stylesheets
(`oai_dc.xsl`, `qdc.xsl`, `dim.xsl` of DSpace/DSpace, the commit it names) produce for the
seed item (`sample_records/10722_212116.json`): each element with the field it comes from.
Every difference of ours is named here, with its reason; docs/formats.md, "Differences from
DSpace's OAI", lists them for users. A difference not named here fails the test.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from lxml import etree

from .conftest import SAMPLES, load_into, make_app
from .oai import NS, tree

DSPACE = json.loads(
    (Path(__file__).parent / "fixtures" / "dspace-oai" / "seed-crosswalks.json").read_text("utf-8")
)
SEED = SAMPLES / "10722_212116.json"
IDENTIFIER = "oai:repository.example.org:10722/212116"
XSI_LOCATION = "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"
PREFIXES = {"http://purl.org/dc/elements/1.1/": "dc", "http://purl.org/dc/terms/": "dcterms"}

# Fields DSpace serves and we never do: private ones, whatever the format…
PRIVATE = {
    "dc.identifier.email",  # staff e-mail addresses (DSpace hides only provenance by default)
}
# …and, in oai_dc and qdc, fields that are not what the element they would land in means.
NOT_THEIR_ELEMENT = {
    # the repository's own dates: a harvester takes every dc:date for the work's date
    "dc.date.accessioned": "oai_dc",
    "dc.date.available": "oai_dc",
    "dc.identifier.authority": "both",  # the repository's authority keys (Name=rp00477)
    "dc.identifier.volume": "both",  # parts of a citation, not identifiers on their own
    "dc.identifier.issue": "both",
    "dc.identifier.spage": "both",
    "dc.identifier.epage": "both",
    "dc.description.nature": "both",  # an internal flag (link_to_OA_fulltext)
    "dc.publisher.place": "both",  # a place, not a publisher
}
# qdc: DCMI's refinements where DSpace keeps the simple element, and DSpace's slips.
QDC_ELEMENTS = {
    ("dc:identifier", "dc.identifier.citation"): "dcterms:bibliographicCitation",
    ("dc:relation", "dc.relation.ispartof"): "dcterms:isPartOf",
}


def rendered(client, prefix: str) -> etree._Element:  # type: ignore[no-untyped-def]
    query = f"/oai/request?verb=GetRecord&metadataPrefix={prefix}&identifier={IDENTIFIER}"
    return tree(client.get(query)).find(".//oai:metadata", NS)[0]


def served_alone(url: str, folder: Path, record: dict[str, Any], prefix: str) -> etree._Element:
    """`record` (id 1/1) loaded alone into the store at `url`, served by GetRecord in
    `prefix`: the root element of its metadata."""
    (folder / "r.json").write_text(json.dumps(record), "utf-8")
    load_into(url, folder / "r.json")
    client = make_app(url).test_client()
    query = f"/oai?verb=GetRecord&metadataPrefix={prefix}&identifier=oai:repository.example.org:1/1"
    return tree(client.get(query)).find(".//oai:metadata", NS)[0]


def elements(root: etree._Element) -> list[tuple[str, str]]:
    return [(f"{PREFIXES[etree.QName(e).namespace]}:{etree.QName(e).localname}", e.text)
            for e in root]  # fmt: skip


def by_element(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Values per element, in order: DSpace groups its output by element (the stylesheet's
    order), ours follows the stored order; within an element the order is the same."""
    grouped: dict[str, list[str]] = {}
    for element, value in items:
        grouped.setdefault(element, []).append(value)
    return grouped


def kept(fmt: str, field: str) -> bool:
    reason = NOT_THEIR_ELEMENT.get(field)
    return field not in PRIVATE and reason not in (fmt, "both")


def test_the_fixture_is_the_seed_as_dspace_holds_it() -> None:
    """Every value of the seed reaches DSpace's dim, except those DSpace hides itself
    (`metadata.hide`: dc.description.provenance; the seed has none)."""
    seed = json.loads(SEED.read_text("utf-8"))["metadata"]
    assert DSPACE["record"] == "sample_records/10722_212116.json"
    assert len(DSPACE["source"]["commit"]) == 40
    assert Counter((m["field"], m["value"]) for m in seed) == Counter(
        (name, value) for name, _, value in DSPACE["dim"]["elements"]
    )


def test_oai_dc_is_dspace_s_less_what_is_not_simple_dc(empty_database_url: str) -> None:
    load_into(empty_database_url, SEED)
    root = rendered(make_app(empty_database_url).test_client(), "oai_dc")
    theirs = DSPACE["oai_dc"]
    assert (root.tag, root.get(XSI_LOCATION)) == (theirs["root"], theirs["schemaLocation"])
    expected = [(e, v) for e, field, v in theirs["elements"] if kept("oai_dc", field)]
    assert by_element(elements(root)) == by_element(expected)
    left_out = {field for _, field, _ in theirs["elements"] if not kept("oai_dc", field)}
    assert left_out == PRIVATE | set(NOT_THEIR_ELEMENT)  # each reason is used
    assert all(not e.attrib for e in root)  # no languages in the seed: no xml:lang


def test_qdc_is_dspace_s_with_dcmi_refinements(empty_database_url: str) -> None:
    load_into(empty_database_url, SEED)
    root = rendered(make_app(empty_database_url).test_client(), "qdc")
    theirs = DSPACE["qdc"]
    assert root.tag == theirs["root"]
    seed = {m["field"]: m["value"] for m in json.loads(SEED.read_text("utf-8"))["metadata"]}
    expected = []
    for element, field, value in theirs["elements"]:
        if not kept("qdc", field):
            continue
        if field == "dc.date.available" and element != "dcterms:available":
            # qdc.xsl selects dc.date.available for dateAccepted and created too: ours are
            # dc.date.accessioned and dc.date.created (the seed has none)
            if element == "dcterms:dateAccepted":
                expected.append((element, seed["dc.date.accessioned"]))
            continue
        expected.append((QDC_ELEMENTS.get((element, field), element), value))
    # qdc.xsl reads only a qualified dc.language.*: the seed's bare dc.language is lost there
    expected.append(("dc:language", seed["dc.language"]))
    assert by_element(elements(root)) == by_element(expected)
    assert Counter(elements(root)) == Counter(expected)
    # The same namespaces; the schemas are DCMI's current ones and this server's container
    ours_location, their_location = root.get(XSI_LOCATION).split(), theirs["schemaLocation"].split()
    assert set(ours_location[::2]) == set(their_location[::2])


def test_dim_is_dspace_s_less_private_fields(empty_database_url: str) -> None:
    load_into(empty_database_url, SEED)
    root = rendered(make_app(empty_database_url).test_client(), "dim")
    theirs = DSPACE["dim"]
    assert root.tag == theirs["root"]
    assert root.get(XSI_LOCATION).split()[0] == theirs["schemaLocation"].split()[0]
    ours = [
        (".".join(filter(None, (f.get("mdschema"), f.get("element"), f.get("qualifier")))),
         f.get("lang"), f.text)
        for f in root
    ]  # fmt: skip
    expected = [(n, lang, v) for n, lang, v in theirs["elements"] if n not in PRIVATE]
    assert Counter(ours) == Counter(expected)

    def grouped(
        items: list[tuple[str, str | None, str]],
    ) -> dict[tuple[str, str | None], list[str]]:
        found: dict[tuple[str, str | None], list[str]] = {}
        for name, lang, value in items:
            found.setdefault((name, lang), []).append(value)
        return found

    assert grouped(ours) == grouped(expected)


def test_dates_of_the_work_are_dc_date_as_in_dspace(
    empty_database_url: str, tmp_path: Path
) -> None:
    """oai_dc.xsl serves every dc.date.* as dc:date. The dates of the work in DSpace's
    registry (issued, created, submitted, copyright, the bare dc.date) are ours too; the
    repository's own (accessioned, available, updated) and local qualifiers are not."""
    dates = ["dc.date", "dc.date.issued", "dc.date.created", "dc.date.submitted",
             "dc.date.copyright", "dc.date.accessioned", "dc.date.available", "dc.date.updated",
             "dc.date.embargo"]  # fmt: skip
    record = {"id": "1/1", "metadata": [
        {"field": f, "value": f"20{n:02}-01-02T00:00:00Z"} for n, f in enumerate(dates)
    ]}  # fmt: skip
    root = served_alone(empty_database_url, tmp_path, record, "oai_dc")
    assert elements(root) == [("dc:date", f"20{n:02}-01-02T00:00:00Z") for n in range(5)]


def test_what_dspace_hides_by_default_is_never_served(
    empty_database_url: str, tmp_path: Path
) -> None:
    """dspace.cfg hides dc.description.provenance and person.email (metadata.hide.*) from
    every format DSpace's OAI serves: so do we, in dim too."""
    record = {"id": "1/1", "metadata": [
        {"field": "dc.title", "value": "T"},
        {"field": "dc.date.accessioned", "value": "2020-01-02T00:00:00Z"},
        {"field": "dc.description.provenance", "value": "Submitted by staff@example.org"},
        {"field": "person.email", "value": "someone@example.org"},
    ]}  # fmt: skip
    root = served_alone(empty_database_url, tmp_path, record, "dim")
    assert [(f.get("mdschema"), f.get("element")) for f in root] == [
        ("dc", "title"),
        ("dc", "date"),
    ]
