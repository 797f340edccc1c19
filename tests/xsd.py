"""Offline XSD validation of OAI-PMH responses against the vendored official schemas."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

import oaipmh_server
from oaipmh_server.check.resourcesync import head_problems, resourcesync_schema

SCHEMAS = Path(__file__).parent / "schemas"
PACKAGE_SCHEMAS = Path(oaipmh_server.__file__).parent / "schemas"
SERVED = "https://oaipmh-server.invalid/schemas/"  # stands for any server's /schemas/
# Canonical URL (as the schemas import each other) → vendored file.
LOCATIONS = {
    "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd": "OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc.xsd": "oai_dc.xsd",
    "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd": "oai-identifier.xsd",
    "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": "simpledc20021212.xsd",
    "http://www.w3.org/2001/03/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
    "http://www.w3.org/2009/01/xml.xsd": "xml.xsd",  # as the DataCite schema imports it
    # OpenAIRE Guidelines for Literature Repositories v4 (oai_openaire), unmodified.
    "https://www.openaire.eu/schema/repo-lit/4.0/openaire.xsd": "openaire-v4/openaire.xsd",
    # DCMI's qualified DC schemas of 2008-02-11 (dcterms.xsd imports dcmitype.xsd beside it).
    "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dc.xsd": "dcmi/dc.xsd",
    "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dcterms.xsd": "dcmi/dcterms.xsd",
    "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dcmitype.xsd": "dcmi/dcmitype.xsd",
    # Published by the server itself (oaipmh_server/schemas/, at /schemas/NAME): DSpace's
    # qdc container, and dim. Validating against the package's own files checks that what
    # the server serves describes what it sends.
    SERVED + "qualifieddc.xsd": str(PACKAGE_SCHEMAS / "qualifieddc.xsd"),
    SERVED + "dim.xsd": str(PACKAGE_SCHEMAS / "dim.xsd"),
}
DC = "http://purl.org/dc/elements/1.1/"
QDC = "http://dspace.org/qualifieddc/"
OAIRE = "http://namespace.openaire.eu/schema/oaire/"
# The namespaces a response may hold, each with its schema.
IMPORTS = {
    "http://www.openarchives.org/OAI/2.0/": "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc/": "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
    "http://www.openarchives.org/OAI/2.0/oai-identifier": (
        "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd"
    ),
    "http://www.dspace.org/xmlns/dspace/dim": SERVED + "dim.xsd",
}


class _Local(etree.Resolver):
    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        name = LOCATIONS.get(url)
        if name is not None:
            return self.resolve_filename(str(SCHEMAS / name), context)
        if Path(url).is_relative_to(SCHEMAS) and Path(url).is_file():
            return None  # a local schema importing its neighbour by a relative path
        raise AssertionError(f"schema import of an unmapped URL: {url}")


@cache
def schema(qualified: bool = False, openaire: bool = False) -> etree.XMLSchema:
    """Every response's schema. One schema set can hold one schema per namespace, and
    the dc namespace has two: oai_dc.xsd's simpledc20021212.xsd, and the 2008 dc.xsd that
    dcterms.xsd builds on (it adds the abstract dc:any that refinements substitute for).
    So a response holding qdc is validated with the 2008 dc.xsd imported first (it
    declares the same 15 elements, of the same type), every other with simpledc."""
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Local())
    imports = dict(IMPORTS)
    if qualified:
        imports = {
            DC: "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dc.xsd",
            **imports,
            QDC: SERVED + "qualifieddc.xsd",
        }
    if openaire:
        # openaire.xsd imports, next to it, OpenAIRE's own dc.xsd: DCMI's of 2008 with the
        # elements DataCite replaces (title, creator, date, …) taken out, so oai_dc's
        # simpledc cannot sit beside it. An oai_openaire response holds no oai_dc.
        imports = {ns: url for ns, url in imports.items() if "oai_dc" not in ns}
        imports[OAIRE] = "https://www.openaire.eu/schema/repo-lit/4.0/openaire.xsd"
    driver = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{url}"/>' for ns, url in imports.items()
    )
    driver = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{driver}</xs:schema>'
    return etree.XMLSchema(etree.fromstring(driver, parser, base_url=str(SCHEMAS) + "/"))


def validate(document: bytes) -> etree._Element:
    """Parse a response and assert it is well-formed and valid; return its root."""
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    xsd = schema(qualified=QDC.encode() in document, openaire=OAIRE.encode() in document)
    if not xsd.validate(root):
        raise AssertionError(f"XSD-invalid response: {xsd.error_log}\n{document[:2000]!r}")
    return root


RS = "http://www.openarchives.org/rs/terms/"


@cache
def sitemap_schema(root: str) -> etree.XMLSchema:
    """sitemaps.org's schema of a sitemap (`urlset`) or of a sitemap index (`sitemapindex`),
    both of one namespace, so one schema each."""
    name = "siteindex.xsd" if root == "sitemapindex" else "sitemap.xsd"
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


def validate_sitemap(document: bytes) -> etree._Element:
    """A ResourceSync document (a sitemap or sitemap index with `rs:` elements) parsed and
    validated against sitemaps.org's schema; the root returned whole. The `rs:` elements
    stand in the schema's strict `##other` slots, and ResourceSync's own schema could not
    be vendored (tests/schemas/SOURCES.md): they are taken out of a copy for the check,
    and the tests read them through the reference client's parser instead."""
    return _valid(document, sitemap_schema, "sitemap-invalid")


def _valid(document: bytes, schema_of: Any, says: str) -> etree._Element:
    """The document's root, its copy without `rs:` elements valid by schema_of(root's name)."""
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    copy = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    for element in list(copy.iter(f"{{{RS}}}*")):
        element.getparent().remove(element)
    xsd = schema_of(etree.QName(root).localname)
    if not xsd.validate(copy):
        raise AssertionError(f"{says} document: {xsd.error_log}\n{document[:2000]!r}")
    return root


def validate_resourcesync(document: bytes) -> etree._Element:
    """A ResourceSync document that may list nothing, validated as `validate_sitemap` does
    but against sitemaps.org's schema as ResourceSync 1.1 reads it (section 7: zero or
    more `<url>` or `<sitemap>`; `check URL` compiles it so, from the same unchanged
    files), and its own `rs:md` and `rs:ln` by ResourceSync's rules (at or from, a W3C
    Datetime; a link up); the root returned whole."""
    root = _valid(document, resourcesync_schema, "ResourceSync-invalid")
    assert head_problems(root) == [], document[:2000]
    return root
