"""Offline XSD validation of OAI-PMH responses against the vendored official schemas."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

SCHEMAS = Path(__file__).parent / "schemas"
# Canonical URL (as the schemas import each other) → vendored file.
LOCATIONS = {
    "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd": "OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc.xsd": "oai_dc.xsd",
    "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd": "oai-identifier.xsd",
    "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": "simpledc20021212.xsd",
    "http://www.w3.org/2001/03/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
    # Written for the tests (see local/): no official file is vendored for these yet.
    "http://dublincore.org/schemas/xmls/qdc/2006/01/06/dcterms.xsd": "local/dcterms.xsd",
    "http://www.ukoln.ac.uk/metadata/dcmi/xmlschema/qualifieddc.xsd": "local/qualifieddc.xsd",
    "http://www.dspace.org/schema/dim.xsd": "local/dim.xsd",
}
# The namespaces a response may hold, each with its schema.
IMPORTS = {
    "http://www.openarchives.org/OAI/2.0/": "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc/": "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
    "http://www.openarchives.org/OAI/2.0/oai-identifier": (
        "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd"
    ),
    "http://dspace.org/qualifieddc/": "http://www.ukoln.ac.uk/metadata/dcmi/xmlschema/qualifieddc.xsd",
    "http://www.dspace.org/xmlns/dspace/dim": "http://www.dspace.org/schema/dim.xsd",
}


class _Local(etree.Resolver):
    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        name = LOCATIONS.get(url)
        if name is None:
            raise AssertionError(f"schema import of an unmapped URL: {url}")
        return self.resolve_filename(str(SCHEMAS / name), context)


@cache
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Local())
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{url}"/>' for ns, url in IMPORTS.items()
    )
    driver = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    return etree.XMLSchema(etree.fromstring(driver, parser, base_url=str(SCHEMAS) + "/"))


def validate(document: bytes) -> etree._Element:
    """Parse a response and assert it is well-formed and valid; return its root."""
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    xsd = schema()
    if not xsd.validate(root):
        raise AssertionError(f"XSD-invalid response: {xsd.error_log}\n{document[:2000]!r}")
    return root
