"""oai_dc: simple Dublin Core, the format every OAI-PMH repository must offer (3.4).

After the record's own values, one `dc:format` with the MIME type of each ORIGINAL file
(in sequence order, restricted ones too, repeated as often as the files), as DSpace's
oai_dc.xsl writes from its item's bundles: a MIME type says what the item holds, not how
to get it, and DSpace shows it whoever may read the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lxml import etree

from ..crosswalk import MAX_REMEMBERED, Crosswalk
from ..files import LinkedFile
from ..record_source import Field
from ..settings import DC_ELEMENTS, Settings
from ..xml import SCHEMA_LOCATION, XML_LANG, XSI_NS, clean_text, xml_language
from . import MetadataFormat, crosswalked

PREFIX = "oai_dc"
NAMESPACE = "http://www.openarchives.org/OAI/2.0/oai_dc/"
SCHEMA = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
DC_NS = "http://purl.org/dc/elements/1.1/"
_NSMAP = {"oai_dc": NAMESPACE, "dc": DC_NS, "xsi": XSI_NS}
_TAGS = {element: f"{{{DC_NS}}}{element}" for element in DC_ELEMENTS}


_FORMAT = _TAGS["format"]
_ROOT = f"{{{NAMESPACE}}}dc"
_ROOT_ATTRIBUTES = {SCHEMA_LOCATION: f"{NAMESPACE} {SCHEMA}"}


# Each field name's tag (None: left out), by crosswalk version: worked out once per name,
# then one lookup per value instead of a call to the crosswalk and a lookup of its tag (a
# tenth of rendering a record, and rendering oai_dc is the biggest part of a load's work).
_RESOLVED: dict[str, dict[str, str | None]] = {}


def _root() -> etree._Element:
    return etree.Element(_ROOT, _ROOT_ATTRIBUTES, nsmap=_NSMAP)


def _tag(crosswalk: Crosswalk, tags: dict[str, str | None], name: str) -> str | None:
    element = crosswalk.element_for(name)
    tag = None if element is None else _TAGS[element]
    if len(tags) < MAX_REMEMBERED:
        tags[name] = tag
    return tag


def render(
    fields: Iterable[Field], crosswalk: Crosswalk, files: Sequence[LinkedFile] = ()
) -> bytes:
    """The <oai_dc:dc> fragment of a record, with xml:lang where the value has a language
    (a BCP 47 tag: the stored `en_US` is `en-US`), the value alone, never its authority;
    and its content files' MIME types. (The loop is written out: it runs for every value
    of every record a load renders.)"""
    root = _root()
    tags = _RESOLVED.get(crosswalk.version)
    if tags is None:
        tags = _RESOLVED.setdefault(crosswalk.version, {})
    sub_element, known, language_of = etree.SubElement, tags.get, xml_language
    for name, value, lang, _, _ in fields:
        tag = known(name, "")  # "": not resolved yet (no tag is empty)
        if tag == "":
            tag = _tag(crosswalk, tags, name)
        if tag is None:
            continue
        if lang and (language := language_of(lang)):
            sub_element(root, tag, {XML_LANG: language}).text = value
        else:
            sub_element(root, tag).text = value
    for linked in files:
        sub_element(root, _FORMAT).text = linked.file.mime
    return etree.tostring(root, encoding="UTF-8")


def render_description(text: str) -> bytes:
    """A set's description as <setDescription> content: oai_dc with one dc:description."""
    root = _root()
    etree.SubElement(root, f"{{{DC_NS}}}description").text = clean_text(text)
    return etree.tostring(root, encoding="UTF-8")


def metadata_format(settings: Settings) -> MetadataFormat:
    return crosswalked(PREFIX, SCHEMA, NAMESPACE, settings, render, carries_files=True)
