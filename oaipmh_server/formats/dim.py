"""dim: DSpace Intermediate Metadata, every stored value as DSpace holds it.

One `dim:field` per value, with its schema, element, qualifier and language as attributes:
the richest format, for aggregators that crosswalk themselves. Private fields are left out.

As DSpace's dim (its XOAI item builder, `ItemUtils`, and `metadataFormats/dim.xsl`): the
language is the stored code as the source said it (`en_US`, `*`), not a BCP 47 tag, left
out when empty or `none`; a controlled value adds `authority` and, unless DSpace's "no
value" (0), `confidence`, after `lang`. A confidence without an authority is not shown
(DSpace writes one only with the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from lxml import etree

from ..crosswalk import Crosswalk
from ..record_source import Field
from ..settings import Settings
from ..xml import SCHEMA_LOCATION, XSI_NS
from . import MetadataFormat, crosswalked, served_schema

PREFIX = "dim"
# DSpace advertises http://www.dspace.org/schema/dim.xsd, which does not exist: this server
# publishes the schema of its dim records itself (oaipmh_server/schemas/dim.xsd).
SCHEMA_FILE = "dim.xsd"
NAMESPACE = "http://www.dspace.org/xmlns/dspace/dim"
_NSMAP = {"dim": NAMESPACE, "xsi": XSI_NS}
_ROOT = f"{{{NAMESPACE}}}dim"
_FIELD = f"{{{NAMESPACE}}}field"
# How dim renders what it is given, beyond its schema's URL: part of the format's version,
# so fragments stored by an earlier rendering are rendered afresh. 2: raw languages,
# authority and confidence.
RENDERING = 2
NO_VALUE = 0  # DSpace's Choices.CF_NOVALUE: a confidence dim leaves out


def render(fields: Sequence[Field], crosswalk: Crosswalk, schema: str) -> bytes:
    root = etree.Element(_ROOT, nsmap=_NSMAP)
    root.set(SCHEMA_LOCATION, f"{NAMESPACE} {schema}")
    for f in fields:
        if not crosswalk.is_public(f.name):
            continue
        attributes = _attributes(f.name, f.lang)
        if f.authority is not None:
            attributes = {**attributes, "authority": f.authority}
            if f.confidence is not None and f.confidence != NO_VALUE:
                attributes["confidence"] = str(f.confidence)
        etree.SubElement(root, _FIELD, attributes).text = f.value
    return etree.tostring(root, encoding="UTF-8")


@lru_cache(maxsize=4096)
def _attributes(name: str, lang: str | None) -> dict[str, str]:
    """The attributes of a value's `dim:field`: the same few for thousands of values."""
    schema, element, *qualifier = name.split(".")
    attributes = {"mdschema": schema, "element": element}
    if qualifier:
        attributes["qualifier"] = qualifier[0]
    if lang and lang != "none":
        attributes["lang"] = lang
    return attributes


def metadata_format(settings: Settings) -> MetadataFormat:
    schema = served_schema(settings, SCHEMA_FILE)

    def render_fields(fields: Sequence[Field], crosswalk: Crosswalk) -> bytes:
        return render(fields, crosswalk, schema)

    return crosswalked(
        PREFIX, schema, NAMESPACE, settings, render_fields, keeps=lambda name: True,
        table=(schema, RENDERING),
    )  # fmt: skip
