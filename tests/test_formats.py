"""Formats beyond oai_dc: the registry, qdc and dim, each validated against its schema
(every response the client receives is), and per-item format lists."""

from __future__ import annotations

import json
import pkgutil
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree

import oaipmh_server.formats
from oaipmh_server.config import load_settings
from oaipmh_server.formats import build_formats

from .conftest import SAMPLES, load_into, make_app
from .oai import error_codes, harvest, tree

SEED = "oai:repository.example.org:10722/212116"
DIM = "http://www.dspace.org/xmlns/dspace/dim"
DCTERMS = "http://purl.org/dc/terms/"
DC = "http://purl.org/dc/elements/1.1/"


def test_registry_finds_every_format_module() -> None:
    modules = {m.name for m in pkgutil.iter_modules(oaipmh_server.formats.__path__)}
    formats = build_formats(load_settings(environ={}))
    assert set(formats) == modules == {"oai_dc", "qdc", "dim"}
    assert next(iter(formats)) == "oai_dc"


@pytest.mark.parametrize("prefix", ["oai_dc", "qdc", "dim"])
def test_every_format_harvests_schema_valid(client: FlaskClient, prefix: str) -> None:
    pages, _ = harvest(client, "ListRecords", metadataPrefix=prefix)
    assert sum(len(p.findall(".//{*}record")) for p in pages) > 40


def seed_metadata(client: FlaskClient, prefix: str) -> etree._Element:
    root = tree(client.get(f"/oai?verb=GetRecord&metadataPrefix={prefix}&identifier={SEED}"))
    return root.find(".//{http://www.openarchives.org/OAI/2.0/}metadata")[0]


def seed_fields() -> list[dict]:
    return json.loads((SAMPLES / "10722_212116.json").read_text("utf-8"))["metadata"]


def test_dim_is_every_public_field_in_order(client: FlaskClient) -> None:
    dim = seed_metadata(client, "dim")
    served = [(f.get("mdschema"), f.get("element"), f.get("qualifier"), f.text) for f in dim]
    expected = []
    for m in seed_fields():
        if m["field"] == "dc.identifier.email":
            continue
        schema, element, *qualifier = m["field"].split(".")
        expected.append((schema, element, qualifier[0] if qualifier else None, m["value"]))
    assert served == expected
    assert all(f.tag == f"{{{DIM}}}field" for f in dim)


def test_qdc_refines_into_dcterms(client: FlaskClient) -> None:
    qdc = seed_metadata(client, "qdc")
    served = {(etree.QName(e).namespace, etree.QName(e).localname): e.text for e in qdc}
    assert served[(DCTERMS, "abstract")].startswith("Mesenchymal stem cells")
    assert served[(DCTERMS, "issued")] == "2013"
    assert served[(DCTERMS, "isPartOf")] == "Cell Transplantation"
    assert served[(DCTERMS, "dateAccepted")] == "2015-07-21T02:23:32Z"
    assert served[(DCTERMS, "bibliographicCitation")].startswith("Cell Transplantation, 2013")
    assert served[(DC, "title")].startswith("Allogeneic")
    assert b"liweilu" not in etree.tostring(qdc)


def test_private_fields_are_in_no_format(client: FlaskClient) -> None:
    for prefix in ("oai_dc", "qdc", "dim"):
        pages, _ = harvest(client, "ListRecords", metadataPrefix=prefix)
        text = b"".join(etree.tostring(p) for p in pages)
        assert (
            b"@hku.hk" not in text
            and b"liweilu" not in text
            and b"Made available in DSpace" not in text
        )


def test_formats_of_an_item(empty_database_url: str, tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text(
        json.dumps({"id": "1", "metadata": [{"field": "dc.title", "value": "T"}]}) + "\n"
        + json.dumps({"id": "2", "metadata": [{"field": "dc.identifier.email", "value": "a@b.c"}]}) + "\n"
    )  # fmt: skip
    load_into(empty_database_url, tmp_path, missing_accessioned="ingest_time")
    client = make_app(empty_database_url).test_client()

    def prefixes(local_id: str) -> list[str]:
        root = tree(
            client.get(
                f"/oai?verb=ListMetadataFormats&identifier=oai:repository.example.org:{local_id}"
            )
        )
        return [e.text for e in root.iterfind(".//{*}metadataPrefix")]

    assert prefixes("1") == ["oai_dc", "dim", "qdc"]
    assert prefixes("2") == ["oai_dc"]  # nothing public to say in dim or qdc
    query = "/oai?verb=GetRecord&metadataPrefix=dim&identifier=oai:repository.example.org:2"
    assert error_codes(client.get(query)) == ["cannotDisseminateFormat"]
