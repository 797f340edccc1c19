"""Advertised schemas resolve and describe what they advertise: every format's
metadataNamespace is its records' root namespace, and the schemas nobody else publishes
(dim, DSpace's qdc container) are served by the server and validate its records."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from lxml import etree

from oaipmh_server.formats import resolve_schema, schema_root

from . import xsd
from .conftest import SAMPLES, load_into, make_app
from .oai import harvest, tree

BASE = "https://repository.example.org/oai"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


@pytest.fixture
def configured(database_url: str) -> FlaskClient:
    return make_app(database_url, page_size=50, base_url=BASE).test_client()


def advertised(client: FlaskClient) -> dict[str, tuple[str, str]]:
    root = tree(client.get("/oai?verb=ListMetadataFormats"))
    return {
        f.findtext("{*}metadataPrefix"): (
            f.findtext("{*}schema"),
            f.findtext("{*}metadataNamespace"),
        )
        for f in root.iterfind(".//{*}metadataFormat")
    }


def metadata_roots(client: FlaskClient, prefix: str) -> list[etree._Element]:
    pages, _ = harvest(client, "ListRecords", metadataPrefix=prefix)
    return [m[0] for page in pages for m in page.iterfind(".//{*}metadata")]


def test_every_advertised_namespace_is_the_records_root_namespace(configured: FlaskClient) -> None:
    for prefix, (_, namespace) in advertised(configured).items():
        roots = metadata_roots(configured, prefix)
        assert roots, prefix
        assert {etree.QName(r).namespace for r in roots} == {namespace}, prefix


def test_the_served_schemas_are_advertised_beside_the_base_url(configured: FlaskClient) -> None:
    formats = advertised(configured)
    assert formats["dim"] == (
        "https://repository.example.org/schemas/dim.xsd",
        "http://www.dspace.org/xmlns/dspace/dim",
    )
    assert formats["qdc"] == (
        "https://repository.example.org/schemas/qualifieddc.xsd",
        "http://dspace.org/qualifieddc/",
    )
    # …and the records name the same schema for their root's namespace.
    for prefix in ("dim", "qdc"):
        schema, namespace = formats[prefix]
        location = (
            metadata_roots(configured, prefix)[0]
            .get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation")
            .split()
        )
        assert dict(zip(location[::2], location[1::2], strict=True))[namespace] == schema


def test_without_a_base_url_the_schema_is_beside_the_request_url(client: FlaskClient) -> None:
    assert advertised(client)["dim"][0] == "http://localhost/schemas/dim.xsd"


@pytest.mark.parametrize("stored", [False, True], ids=["rendered", "stored"])
def test_without_a_base_url_records_name_the_advertised_schema(
    database_url: str, stored: bool
) -> None:
    """Not the relative /schemas/dim.xsd: the URL ListMetadataFormats gives, for a record
    rendered on request and for a fragment stored at load alike."""
    settings: dict[str, Any] = {"stored_formats": ["oai_dc", "dim", "qdc"]} if stored else {}
    if stored:
        load_into(database_url, SAMPLES, **settings)
    client = make_app(database_url, **settings).test_client()
    formats = advertised(client)
    for prefix in ("dim", "qdc"):
        schema, namespace = formats[prefix]
        assert schema.startswith("http://localhost/schemas/")
        for root in metadata_roots(client, prefix):
            location = root.get(f"{{{XSI}}}schemaLocation").split()
            assert dict(zip(location[::2], location[1::2], strict=True))[namespace] == schema


def served_schema(client: FlaskClient, url: str) -> etree.XMLSchema:
    response = client.get(url.removeprefix("https://repository.example.org"))
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(xsd._Local())
    return etree.XMLSchema(etree.fromstring(response.data, parser, base_url=str(xsd.SCHEMAS) + "/"))


@pytest.mark.parametrize("prefix", ["dim", "qdc"])
def test_each_served_schema_validates_the_records_it_describes(
    configured: FlaskClient, prefix: str
) -> None:
    xsd.schema(qualified=True)  # DCMI's schemas, which qualifieddc.xsd imports, on disk
    schema = served_schema(configured, advertised(configured)[prefix][0])
    roots = metadata_roots(configured, prefix)
    assert len(roots) > 40
    for root in roots:
        assert schema.validate(root), schema.error_log
    # It describes something: a record in another namespace is not valid against it.
    wrong: Any = etree.fromstring(b'<x:dim xmlns:x="urn:other"/>')
    assert not schema.validate(wrong)


def test_an_unknown_schema_is_not_found(client: FlaskClient) -> None:
    assert client.get("/schemas/oai_dc.xsd").status_code == 404
    assert client.get("/schemas/..%2Fconfig.py").status_code == 404


@pytest.mark.parametrize(
    ("base_url", "root"),
    [
        ("https://repo.example.org/oai", "https://repo.example.org"),
        ("https://repo.example.org/server/oai", "https://repo.example.org/server"),
        ("https://repo.example.org/oai/request", "https://repo.example.org"),
        ("http://127.0.0.1:5000/harvest", "http://127.0.0.1:5000"),
        ("", ""),
    ],
)
def test_schema_root(base_url: str, root: str) -> None:
    assert schema_root(base_url) == root
    assert resolve_schema("/schemas/dim.xsd", base_url) == f"{root}/schemas/dim.xsd"
    assert resolve_schema("http://x.org/a.xsd", base_url) == "http://x.org/a.xsd"
