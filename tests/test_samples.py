"""sample_records holds the seed item field for field, and the crosswalk serves it as the
documented oai_dc, with private fields never leaving the server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree

from .conftest import SAMPLES
from .oai import NS, harvest, tree

# What these tests show depends on the store: they run on SQLite and PostgreSQL, except
# those marked same_on_every_store: which fields the crosswalk serves (or keeps private) is
# its own; a record's fields are stored as packed bytes on either store, and whole
# documents from each store are test_golden's.
pytestmark = pytest.mark.store_behaviour

# The seed item's public page, vendored (see its SOURCES.md): the check needs nothing outside
# the clone, so it can never be skipped.
SEED_PAGE = Path(__file__).parent / "fixtures" / "seed" / "000_dadc35113bb43888.txt"
SEED_ID = "oai:repository.example.org:10722/212116"
PRIVATE = ("liweilu@hkucc.hku.hk", "dc.identifier.email", "Made available in DSpace")


def seed_table() -> list[tuple[str, str]]:
    """The qualified-DC table of the seed page: `field | value | language |` rows."""
    rows = []
    for line in SEED_PAGE.read_text("utf-8").splitlines():  # missing: FileNotFoundError
        if m := re.fullmatch(r"(dc\.[a-z.]+) \| (.*) \| - \|", line):
            rows.append((m.group(1), m.group(2)))
    return rows


def seed_record() -> dict:
    return json.loads((SAMPLES / "10722_212116.json").read_text("utf-8"))


def test_seed_item_field_for_field() -> None:
    record = seed_record()
    assert record["id"] == "10722/212116"
    stored = [(m["field"], m["value"]) for m in record["metadata"]]
    assert stored == seed_table()
    assert len(stored) == 44
    assert all(m.get("lang") in (None, "") for m in record["metadata"])


@pytest.mark.same_on_every_store
def test_seed_as_oai_dc(client: FlaskClient) -> None:
    root = tree(client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={SEED_ID}"))
    dc = root.find(".//oai_dc:dc", NS)
    served = [(etree.QName(e).localname, e.text) for e in dc]
    fields = dict[str, list[str]]()
    for m in seed_record()["metadata"]:
        fields.setdefault(m["field"], []).append(m["value"])
    expected = (
        [("creator", a) for a in fields["dc.contributor.author"]]
        + [("date", "2013")]
        + [("identifier", fields[f][0]) for f in ("dc.identifier.citation", "dc.identifier.issn", "dc.identifier.uri")]
        + [("description", fields["dc.description.abstract"][0]), ("language", "eng"),
           ("publisher", fields["dc.publisher"][0]), ("relation", "Cell Transplantation")]
        + [("subject", s) for s in fields["dc.subject"]]
        + [("title", fields["dc.title"][0]), ("type", "Article")]
        + [("identifier", fields[f][0]) for f in (
            "dc.identifier.doi", "dc.identifier.pmid", "dc.identifier.scopus",
            "dc.identifier.hkuros", "dc.identifier.isi", "dc.identifier.issnl")]
    )  # fmt: skip
    assert served == expected
    header = root.find(".//oai:header", NS)
    assert header.findtext("oai:datestamp", namespaces=NS) == "2015-07-21T02:23:32Z"


@pytest.mark.same_on_every_store
def test_private_fields_never_leave_the_server(client: FlaskClient) -> None:
    documents = [client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={SEED_ID}").data]
    for verb, arguments in (("ListRecords", {"metadataPrefix": "oai_dc"}), ("ListSets", {})):
        pages, _ = harvest(client, verb, **arguments)
        documents += [etree.tostring(p) for p in pages]
    text = b"".join(documents).decode()
    for secret in PRIVATE:
        assert secret not in text


def test_samples_exercise_languages_and_special_characters(client: FlaskClient) -> None:
    pages, _ = harvest(client, "ListRecords", metadataPrefix="oai_dc")
    languages = {e.get("{http://www.w3.org/XML/1998/namespace}lang")
                 for p in pages for e in p.iterfind(".//oai_dc:dc/*", NS)}  # fmt: skip
    assert {"en", "en-US", "zh-TW"} <= languages
    text = "".join("".join(p.itertext()) for p in pages)
    assert "<" in text and "&" in text and "\ufffd" in text
    assert re.search(r"[\u4e00-\u9fff]", text)


@pytest.mark.same_on_every_store
def test_every_sample_record_carries_a_dc_identifier(client: FlaskClient) -> None:
    """OVAL (and BASE) warn of a record without dc:identifier: none of the samples is one,
    the CSV's UUID-only book chapter included (its citation is its identifier)."""
    records = [
        r
        for page in harvest(client, "ListRecords", metadataPrefix="oai_dc")[0]
        for r in page.iterfind(".//oai:record", NS)
        if r.find("oai:header", NS).get("status") != "deleted"
    ]
    assert len(records) == 46
    missing = [
        r.findtext(".//oai:identifier", namespaces=NS)
        for r in records
        if not [e.text for e in r.iterfind(".//dc:identifier", NS) if (e.text or "").strip()]
    ]
    assert missing == []
