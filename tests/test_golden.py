"""Whole responses, per verb and per error, compared with golden files after C14N.

Regenerate (after a deliberate change, then review the diff) with:
    REGENERATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree

from oaipmh_server import protocol

from .conftest import make_app

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour

GOLDEN = Path(__file__).parent / "golden"
SEED = "oai:repository.example.org:10722/212116"

CASES = {
    "Identify": "verb=Identify",
    "ListMetadataFormats": "verb=ListMetadataFormats",
    "ListMetadataFormats.identifier": f"verb=ListMetadataFormats&identifier={SEED}",
    "ListSets": "verb=ListSets",
    "ListIdentifiers.oai_dc": "verb=ListIdentifiers&metadataPrefix=oai_dc",
    "ListRecords.oai_dc": "verb=ListRecords&metadataPrefix=oai_dc",
    "ListRecords.oai_dc.set": "verb=ListRecords&metadataPrefix=oai_dc&set=col_10722_5&until=2016-01-01",
    "GetRecord.oai_dc": f"verb=GetRecord&identifier={SEED}&metadataPrefix=oai_dc",
    "GetRecord.oai_openaire": f"verb=GetRecord&identifier={SEED}&metadataPrefix=oai_openaire",
    "error.badVerb": "verb=Frobnicate",
    "error.badArgument": "verb=ListRecords",
    "error.badResumptionToken": "verb=ListRecords&resumptionToken=forged",
    "error.cannotDisseminateFormat": "verb=ListRecords&metadataPrefix=marc21",
    "error.idDoesNotExist": "verb=GetRecord&identifier=oai:repository.example.org:0/0&metadataPrefix=oai_dc",
    "error.noRecordsMatch": "verb=ListRecords&metadataPrefix=oai_dc&from=2099-01-01",
}


def canonical(root: etree._Element) -> bytes:
    return etree.tostring(root, method="c14n")


def without_tokens(root: etree._Element) -> list[str]:
    """Empty every resumptionToken's text (its attributes stay compared); return the tokens.
    A token's bytes are not the protocol: it is compared by the page it resolves to."""
    tokens = []
    for element in root.iter("{http://www.openarchives.org/OAI/2.0/}resumptionToken"):
        if element.text:
            tokens.append(element.text)
        element.text = None
    return tokens


@pytest.fixture
def golden_client(database_url: str, frozen_now, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    # The next page echoes its token, which holds a random harvest id: fixed here as the
    # clock is, so the echo stays the same bytes.
    monkeypatch.setattr(protocol, "new_harvest_id", lambda: "g0ldenId")
    app = make_app(database_url, page_size=5, base_url="https://repository.example.org/oai")
    return app.test_client()


def assert_golden(root: etree._Element, name: str) -> None:
    actual = canonical(root)
    path = GOLDEN / f"{name}.xml"
    if os.environ.get("REGENERATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        pretty = etree.tostring(
            etree.fromstring(actual), pretty_print=True, encoding="UTF-8", xml_declaration=True
        )
        path.write_bytes(pretty)
    expected = canonical(etree.parse(str(path), etree.XMLParser(remove_blank_text=True)).getroot())
    assert actual == expected, f"{name} differs from {path}"


@pytest.mark.parametrize("name", CASES)
def test_golden(golden_client: FlaskClient, name: str) -> None:
    """The response, and for each resumptionToken the page it resolves to (in
    NAME.next.xml), equal their golden files, whatever bytes the tokens are."""
    response = golden_client.get(f"/oai?{CASES[name]}")
    assert response.status_code == 200
    root = etree.fromstring(response.data)
    tokens = without_tokens(root)
    assert_golden(root, name)
    verb = CASES[name].split("&")[0].removeprefix("verb=")
    for token in tokens:
        following = golden_client.get("/oai", query_string={"verb": verb, "resumptionToken": token})
        assert following.status_code == 200
        page = etree.fromstring(following.data)
        without_tokens(page)
        assert_golden(page, f"{name}.next")
