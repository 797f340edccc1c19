"""Formats beyond oai_dc: the registry, qdc and dim, each validated against its schema
(every response the client receives is), and per-item format lists."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

import oaipmh_server.formats
from oaipmh_server.config import load_settings
from oaipmh_server.formats import build_formats
from oaipmh_server.store.schema import fragments_table

from . import xsd
from .conftest import LOADED, SAMPLES, load_into, make_app
from .db import fetch
from .oai import error_codes, harvest, tree

SEED = "oai:repository.example.org:10722/212116"
DIM = "http://www.dspace.org/xmlns/dspace/dim"
DCTERMS = "http://purl.org/dc/terms/"
DC = "http://purl.org/dc/elements/1.1/"


def test_registry_finds_every_format_module() -> None:
    modules = {m.name for m in pkgutil.iter_modules(oaipmh_server.formats.__path__)}
    formats = build_formats(load_settings(environ={}))
    assert set(formats) == modules == {"oai_dc", "qdc", "dim", "oai_openaire"}
    assert next(iter(formats)) == "oai_dc"


@pytest.mark.parametrize("prefix", ["oai_dc", "qdc", "dim", "oai_openaire"])
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


def test_qdc_is_checked_against_dcmi_schemas(client: FlaskClient) -> None:
    """The validator every test response passes through holds qdc to DCMI's dc.xsd and
    dcterms.xsd (vendored, offline): a term they do not declare, or a DCMI encoding
    scheme's value out of its syntax, makes the seed's record invalid."""
    served = client.get(f"/oai?verb=GetRecord&metadataPrefix=qdc&identifier={SEED}").data
    xsd.validate(served)
    for intruder in (
        f'<dcterms:madeUpTerm xmlns:dcterms="{DCTERMS}">x</dcterms:madeUpTerm>',
        f'<dcterms:issued xmlns:dcterms="{DCTERMS}" xmlns:xsi="http://www.w3.org/2001/'
        f'XMLSchema-instance" xsi:type="dcterms:W3CDTF">not a date</dcterms:issued>',
    ):
        spoilt = served.replace(b"</qdc:qualifieddc>", intruder.encode() + b"</qdc:qualifieddc>")
        assert spoilt != served
        with pytest.raises(AssertionError, match="XSD-invalid"):
            xsd.validate(spoilt)


def test_private_fields_are_in_no_format(client: FlaskClient) -> None:
    for prefix in ("oai_dc", "qdc", "dim", "oai_openaire"):
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

    assert prefixes("1") == ["oai_dc", "dim", "oai_openaire", "qdc"]
    assert prefixes("2") == ["oai_dc"]  # nothing public to say in dim or qdc
    query = "/oai?verb=GetRecord&metadataPrefix=dim&identifier=oai:repository.example.org:2"
    assert error_codes(client.get(query)) == ["cannotDisseminateFormat"]


def stored_prefixes(url: str) -> set[str]:
    return {prefix for (prefix,) in fetch(url, select(fragments_table.c.prefix).distinct())}


def records_of(client: FlaskClient, prefix: str) -> list[bytes]:
    pages, _ = harvest(client, "ListRecords", metadataPrefix=prefix)
    return [etree.tostring(r) for page in pages for r in page.iterfind(".//{*}record")]


def test_formats_stored_or_rendered_on_request_serve_the_same(
    empty_database_url: str, tmp_path: Path
) -> None:
    """oai_dc is stored at load time, qdc and dim rendered on request, unless `[formats]
    stored` lists them; either way the records served are the same bytes."""
    url = empty_database_url
    load_into(url, SAMPLES, clock=lambda: LOADED)
    assert stored_prefixes(url) == {"oai_dc"}
    client = make_app(url, page_size=7).test_client()
    live = {prefix: records_of(client, prefix) for prefix in ("qdc", "dim")}

    load_into(
        url, SAMPLES, clock=lambda: LOADED, stored_formats=["dim"]
    )  # every record unchanged, dim rendered
    assert stored_prefixes(url) == {"oai_dc", "dim"}
    client = make_app(url, page_size=7, stored_formats=["dim"]).test_client()
    assert records_of(client, "dim") == live["dim"]
    assert records_of(client, "qdc") == live["qdc"]

    def rendered(prefix: str) -> set[str]:
        query = select(fragments_table.c.local_id).where(fragments_table.c.prefix == prefix)
        return {local_id for (local_id,) in fetch(url, query)}

    # The seed changes while dim is rendered on request: its dim fragment goes…
    seed = json.loads((SAMPLES / "10722_212116.json").read_text("utf-8"))
    seed["metadata"].append({"field": "dc.subject", "value": "A new subject"})
    (tmp_path / "seed.json").write_text(json.dumps(seed), "utf-8")
    load_into(url, tmp_path / "seed.json", clock=lambda: LOADED)
    assert "10722/212116" not in rendered("dim")
    # …and storing dim again renders what it lacks.
    load_into(url, tmp_path / "seed.json", clock=lambda: LOADED, stored_formats=["dim"])
    assert rendered("dim") == rendered("oai_dc")


def test_an_unknown_stored_format_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[formats]\nstored = ["oai_dc", "marc21"]\n')
    env = {**os.environ, "OAIPMH_CONFIG": str(config), "OAIPMH_DATABASE_URL": "sqlite://"}
    failed = subprocess.run(
        [sys.executable, "-m", "oaipmh_server", "load", str(SAMPLES)],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert failed.returncode != 0
    assert f"{config}: formats.stored: no metadata format marc21" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_qdc_keeps_only_the_terms_dcmi_defines(empty_database_url: str, tmp_path: Path) -> None:
    """A `dcterms` field is served under its own element only if DCMI's dcterms.xsd declares
    it: the record stays valid against the official schema (the test client checks)."""
    metadata = [
        {"field": "dc.title", "value": "T"},
        {"field": "dcterms.accessRights", "value": "open access"},
        {"field": "dcterms.madeUpTerm", "value": "not a DCMI term"},
    ]
    (tmp_path / "r.json").write_text(json.dumps({"id": "1", "metadata": metadata}))
    load_into(empty_database_url, tmp_path, missing_accessioned="ingest_time")
    client = make_app(empty_database_url).test_client()
    root = tree(
        client.get("/oai?verb=GetRecord&metadataPrefix=qdc&identifier=oai:repository.example.org:1")
    )
    container = root.find(".//{http://dspace.org/qualifieddc/}qualifieddc")
    assert [(e.tag, e.text) for e in container] == [
        (f"{{{DC}}}title", "T"),
        (f"{{{DCTERMS}}}accessRights", "open access"),
    ]
