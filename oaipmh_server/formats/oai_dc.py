"""oai_dc: simple Dublin Core, the format every OAI-PMH repository must offer (3.4).

After the record's own values, one `dc:format` with the MIME type of each ORIGINAL file
(in sequence order, restricted ones too, repeated as often as the files), as DSpace's
oai_dc.xsl writes from its item's bundles: a MIME type says what the item holds, not how
to get it, and DSpace shows it whoever may read the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lxml import etree

from ..crosswalk import Crosswalk
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


def _root() -> etree._Element:
    return etree.Element(_ROOT, _ROOT_ATTRIBUTES, nsmap=_NSMAP)


def render(
    fields: Iterable[Field], crosswalk: Crosswalk, files: Sequence[LinkedFile] = ()
) -> bytes:
    """The <oai_dc:dc> fragment of a record, with xml:lang where the value has a language
    (a BCP 47 tag: the stored `en_US` is `en-US`), the value alone, never its authority;
    and its content files' MIME types. (The loop is written out: it runs for every value
    of every record a load renders.)"""
    root = _root()
    sub_element, element_for, tag_of = etree.SubElement, crosswalk.element_for, xml_language
    for name, value, lang, _, _ in fields:
        element = element_for(name)
        if element is None:
            continue
        if lang and (tag := tag_of(lang)):
            sub_element(root, _TAGS[element], {XML_LANG: tag}).text = value
        else:
            sub_element(root, _TAGS[element]).text = value
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
