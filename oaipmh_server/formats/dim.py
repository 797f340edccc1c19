"""dim: DSpace Intermediate Metadata, every stored value as DSpace holds it.

One `dim:field` per value, with its schema, element, qualifier and language as attributes:
the richest format, for aggregators that crosswalk themselves. Private fields are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from lxml import etree

from ..config import Settings
from ..crosswalk import Crosswalk
from ..records import Field
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


def render(fields: Sequence[Field], crosswalk: Crosswalk, schema: str) -> bytes:
    root = etree.Element(_ROOT, nsmap=_NSMAP)
    root.set(SCHEMA_LOCATION, f"{NAMESPACE} {schema}")
    for f in fields:
        if crosswalk.is_public(f.name):
            etree.SubElement(root, _FIELD, _attributes(f.name, f.lang)).text = f.value
    return etree.tostring(root, encoding="UTF-8")


@lru_cache(maxsize=4096)
def _attributes(name: str, lang: str | None) -> dict[str, str]:
    """The attributes of a value's `dim:field`: the same few for thousands of values."""
    schema, element, *qualifier = name.split(".")
    attributes = {"mdschema": schema, "element": element}
    if qualifier:
        attributes["qualifier"] = qualifier[0]
    if lang:
        attributes["lang"] = lang
    return attributes


def metadata_format(settings: Settings) -> MetadataFormat:
    schema = served_schema(settings, SCHEMA_FILE)

    def render_fields(fields: Sequence[Field], crosswalk: Crosswalk) -> bytes:
        return render(fields, crosswalk, schema)

    return crosswalked(
        PREFIX, schema, NAMESPACE, settings, render_fields, keeps=lambda name: True, table=schema
    )
