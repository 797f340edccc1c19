"""qdc: qualified Dublin Core as DSpace serves it, refinements in the DCMI terms namespace.

`dc.description.abstract` becomes `dcterms:abstract`, `dc.date.issued` `dcterms:issued`,
`dc.relation.ispartof` `dcterms:isPartOf`…; what has no refinement stays in the dc
namespace, and fields of the `dcterms` schema keep their element (if DCMI defines it).
Private fields are left out as in every format.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from ..crosswalk import Crosswalk
from ..record_source import Field
from ..settings import Settings
from ..xml import SCHEMA_LOCATION, XSI_NS
from . import MetadataFormat, crosswalked, served_schema, value_element

PREFIX = "qdc"
# The record's root is DSpace's container, qdc:qualifieddc: its namespace is the one
# advertised (a harvester checks the root against it), and its schema, which no one else
# publishes, is served by this server (oaipmh_server/schemas/qualifieddc.xsd); it imports
# DCMI's dc.xsd and dcterms.xsd for the elements inside.
SCHEMA_FILE = "qualifieddc.xsd"
QDC_NS = "http://dspace.org/qualifieddc/"
NAMESPACE = "http://purl.org/dc/terms/"  # the refinements' namespace (dcterms)
DC_NS = "http://purl.org/dc/elements/1.1/"
DCTERMS_SCHEMA = "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dcterms.xsd"
_NSMAP = {"qdc": QDC_NS, "dc": DC_NS, "dcterms": NAMESPACE, "xsi": XSI_NS}

# Qualified field → (namespace, element); the most specific key wins, None leaves it out.
CROSSWALK: dict[str, tuple[str, str] | None] = {
    "dc.title": (DC_NS, "title"),
    "dc.title.alternative": (NAMESPACE, "alternative"),
    "dc.title.*": (DC_NS, "title"),
    "dc.contributor.author": (DC_NS, "creator"),
    "dc.creator.*": (DC_NS, "creator"),
    "dc.contributor.*": (DC_NS, "contributor"),
    "dc.subject.*": (DC_NS, "subject"),
    "dc.description.abstract": (NAMESPACE, "abstract"),
    "dc.description.tableofcontents": (NAMESPACE, "tableOfContents"),
    "dc.description.nature": None,
    "dc.description.*": (DC_NS, "description"),
    "dc.date.accessioned": (NAMESPACE, "dateAccepted"),
    "dc.date.available": (NAMESPACE, "available"),
    "dc.date.created": (NAMESPACE, "created"),
    "dc.date.issued": (NAMESPACE, "issued"),
    "dc.date.*": (DC_NS, "date"),
    "dc.identifier.citation": (NAMESPACE, "bibliographicCitation"),
    "dc.identifier.volume": None,
    "dc.identifier.issue": None,
    "dc.identifier.spage": None,
    "dc.identifier.epage": None,
    "dc.identifier.authority": None,
    "dc.identifier.*": (DC_NS, "identifier"),
    "dc.relation.ispartof": (NAMESPACE, "isPartOf"),
    "dc.relation.ispartofseries": (NAMESPACE, "isPartOf"),
    "dc.relation.haspart": (NAMESPACE, "hasPart"),
    "dc.relation.isversionof": (NAMESPACE, "isVersionOf"),
    "dc.relation.hasversion": (NAMESPACE, "hasVersion"),
    "dc.relation.isreferencedby": (NAMESPACE, "isReferencedBy"),
    "dc.relation.requires": (NAMESPACE, "requires"),
    "dc.relation.replaces": (NAMESPACE, "replaces"),
    "dc.relation.isreplacedby": (NAMESPACE, "isReplacedBy"),
    "dc.relation.*": (DC_NS, "relation"),
    "dc.rights.*": (DC_NS, "rights"),
    "dc.format.extent": (NAMESPACE, "extent"),
    "dc.format.medium": (NAMESPACE, "medium"),
    "dc.format.*": (DC_NS, "format"),
    "dc.language.*": (DC_NS, "language"),
    "dc.publisher": (DC_NS, "publisher"),
    "dc.type.*": (DC_NS, "type"),
    "dc.coverage.spatial": (NAMESPACE, "spatial"),
    "dc.coverage.temporal": (NAMESPACE, "temporal"),
    "dc.coverage.*": (DC_NS, "coverage"),
    "dc.source.*": (DC_NS, "source"),
}


# The elements DCMI's dcterms.xsd declares: a `dcterms` field whose element is not one of
# them has no place in a schema-valid qdc record, and is left out.
DCTERMS_ELEMENTS = frozenset(
    {
        "abstract",
        "accessRights",
        "accrualMethod",
        "accrualPeriodicity",
        "accrualPolicy",
        "alternative",
        "audience",
        "available",
        "bibliographicCitation",
        "conformsTo",
        "contributor",
        "coverage",
        "created",
        "creator",
        "date",
        "dateAccepted",
        "dateCopyrighted",
        "dateSubmitted",
        "description",
        "educationLevel",
        "extent",
        "format",
        "hasFormat",
        "hasPart",
        "hasVersion",
        "identifier",
        "instructionalMethod",
        "isFormatOf",
        "isPartOf",
        "isReferencedBy",
        "isReplacedBy",
        "isRequiredBy",
        "isVersionOf",
        "issued",
        "language",
        "license",
        "mediator",
        "medium",
        "modified",
        "provenance",
        "publisher",
        "references",
        "relation",
        "replaces",
        "requires",
        "rights",
        "rightsHolder",
        "source",
        "spatial",
        "subject",
        "tableOfContents",
        "temporal",
        "title",
        "type",
        "valid",
    }
)


def element_for(name: str) -> tuple[str, str] | None:
    schema, element, *_ = name.split(".")
    if schema == "dcterms":
        return (NAMESPACE, element) if element in DCTERMS_ELEMENTS else None
    for key in (name, f"{schema}.{element}.*"):
        if key in CROSSWALK:
            return CROSSWALK[key]
    return None


def locations(schema: str) -> str:
    """xsi:schemaLocation of a record: the container's schema, and DCMI's for its children."""
    return (
        f"{QDC_NS} {schema} "
        f"{DC_NS} http://dublincore.org/schemas/xmls/qdc/2008/02/11/dc.xsd "
        f"{NAMESPACE} {DCTERMS_SCHEMA}"
    )


def render(fields: Sequence[Field], crosswalk: Crosswalk, schema_locations: str) -> bytes:
    root = etree.Element(f"{{{QDC_NS}}}qualifieddc", nsmap=_NSMAP)
    root.set(SCHEMA_LOCATION, schema_locations)
    for f in fields:
        target = element_for(f.name) if crosswalk.is_public(f.name) else None
        if target is None:
            continue
        value_element(root, f"{{{target[0]}}}{target[1]}", f)
    return etree.tostring(root, encoding="UTF-8")


def metadata_format(settings: Settings) -> MetadataFormat:
    schema = served_schema(settings, SCHEMA_FILE)
    schema_locations = locations(schema)

    def render_fields(fields: Sequence[Field], crosswalk: Crosswalk) -> bytes:
        return render(fields, crosswalk, schema_locations)

    table = (sorted(CROSSWALK.items(), key=str), schema_locations)
    return crosswalked(
        PREFIX, schema, QDC_NS, settings, render_fields, keeps=element_for, table=table
    )
