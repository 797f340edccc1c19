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


def canonical(document: bytes) -> bytes:
    root = etree.fromstring(document)
    return etree.tostring(root, method="c14n")


@pytest.fixture
def golden_client(database_url: str, frozen_now) -> FlaskClient:
    app = make_app(database_url, page_size=5, base_url="https://repository.example.org/oai")
    return app.test_client()


@pytest.mark.parametrize("name", CASES)
def test_golden(golden_client: FlaskClient, name: str) -> None:
    response = golden_client.get(f"/oai?{CASES[name]}")
    assert response.status_code == 200
    actual = canonical(response.data)
    path = GOLDEN / f"{name}.xml"
    if os.environ.get("REGENERATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        pretty = etree.tostring(
            etree.fromstring(actual), pretty_print=True, encoding="UTF-8", xml_declaration=True
        )
        path.write_bytes(pretty)
    expected = canonical(
        etree.tostring(etree.parse(str(path), etree.XMLParser(remove_blank_text=True)))
    )
    assert actual == expected, f"{name} differs from {path}"
