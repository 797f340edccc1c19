"""dim: DSpace Intermediate Metadata, every stored value as DSpace holds it.

One `dim:field` per value, with its schema, element, qualifier and language as attributes:
the richest format, for aggregators that crosswalk themselves. Private fields are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from ..config import Settings
from ..crosswalk import Crosswalk
from ..records import Field
from ..xml import SCHEMA_LOCATION, XSI_NS, clean_text
from . import MetadataFormat, crosswalked

PREFIX = "dim"
SCHEMA = "http://www.dspace.org/schema/dim.xsd"
NAMESPACE = "http://www.dspace.org/xmlns/dspace/dim"
_NSMAP = {"dim": NAMESPACE, "xsi": XSI_NS}


def render(fields: Sequence[Field], crosswalk: Crosswalk) -> bytes:
    root = etree.Element(f"{{{NAMESPACE}}}dim", nsmap=_NSMAP)
    root.set(SCHEMA_LOCATION, f"{NAMESPACE} {SCHEMA}")
    for f in fields:
        if not crosswalk.is_public(f.name):
            continue
        schema, element, *qualifier = f.name.split(".")
        child = etree.SubElement(root, f"{{{NAMESPACE}}}field", mdschema=schema, element=element)
        if qualifier:
            child.set("qualifier", qualifier[0])
        if f.lang:
            child.set("lang", f.lang)
        child.text = clean_text(f.value)
    return etree.tostring(root, encoding="UTF-8")


def metadata_format(settings: Settings) -> MetadataFormat:
    return crosswalked(PREFIX, SCHEMA, NAMESPACE, settings, render, keeps=lambda name: True)
