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
from ..xml import (
    SCHEMA_LOCATION,
    XML_LANG,
    XSI_NS,
    clean_text,
    split_open_close,
    xml_language,
)
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


# Elements lxml has rendered, by (tag, value, xml:lang): a value that recurs from record to
# record (a subject, a type, a language, a publisher, a licence, an author of many items) is
# built and serialized by lxml once, and its bytes joined into each fragment after that:
# building an element through lxml (about 1.5 µs) is most of rendering a record, a lookup
# a tenth of it. Only short values are kept (a long one, such as an abstract, rarely
# recurs), and at most MAX_ELEMENTS: when full, it is emptied and fills again with what
# recurs. The bytes are lxml's, cut from a fragment it serialized: every child is a dc:
# element with text only, and neither text nor attribute values can hold a "<" (lxml
# writes "&lt;"), so each child begins at a "<dc:" and ends where the next begins. Kept
# without that "<dc:", which joins them.
MAX_ELEMENTS = 4096
MAX_KEPT_LENGTH = 200
_ELEMENTS: dict[tuple[str, str, str | None], bytes] = {}
_CHILD = b"<dc:"
_OPEN, _CLOSE = split_open_close(_root())
_EMPTY = etree.tostring(_root(), encoding="UTF-8")
_CUT = slice(len(_OPEN) + len(_CHILD), -len(_CLOSE))


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
    and its content files' MIME types. Elements rendered before are joined as lxml wrote
    them then (_ELEMENTS); the others are built in one tree and serialized together. (The
    loops are written out: they run for every value of every record a load renders.)"""
    tags = _RESOLVED.get(crosswalk.version)
    if tags is None:
        tags = _RESOLVED.setdefault(crosswalk.version, {})
    known, language_of = tags.get, xml_language
    wanted: list[tuple[str, str, str | None]] = []
    for name, value, lang, _, _ in fields:
        tag = known(name, "")  # "": not resolved yet (no tag is empty)
        if tag == "":
            tag = _tag(crosswalk, tags, name)
        if tag is not None:
            wanted.append((tag, value, language_of(lang) or None if lang else None))
    wanted += [(_FORMAT, linked.file.mime, None) for linked in files]
    if not wanted:
        return _EMPTY
    found = list(map(_ELEMENTS.get, wanted))
    parts = _build(wanted, found) if None in found else found
    return _OPEN + _CHILD + _CHILD.join(parts) + _CLOSE  # type: ignore[arg-type]


def _build(wanted: list[tuple[str, str, str | None]], parts: list[bytes | None]) -> list[bytes]:
    """`parts` with its gaps (the elements not rendered before) filled by lxml's bytes for
    them, built in one tree and serialized together; the short ones kept for the records
    to come."""
    missing = [key for key, part in zip(wanted, parts, strict=True) if part is None]
    root, sub_element = _root(), etree.SubElement
    for tag, value, language in missing:
        if language:
            sub_element(root, tag, {XML_LANG: language}).text = value
        else:
            sub_element(root, tag).text = value
    built = dict(zip(missing, etree.tostring(root, encoding="UTF-8")[_CUT].split(_CHILD),
                     strict=True))  # fmt: skip
    elements = _ELEMENTS
    if len(elements) + len(built) > MAX_ELEMENTS:
        elements.clear()
    elements.update({key: body for key, body in built.items() if len(key[1]) <= MAX_KEPT_LENGTH})
    return [part or built[key] for key, part in zip(wanted, parts, strict=True)]


def render_description(text: str) -> bytes:
    """A set's description as <setDescription> content: oai_dc with one dc:description."""
    root = _root()
    etree.SubElement(root, f"{{{DC_NS}}}description").text = clean_text(text)
    return etree.tostring(root, encoding="UTF-8")


def metadata_format(settings: Settings) -> MetadataFormat:
    return crosswalked(PREFIX, SCHEMA, NAMESPACE, settings, render, carries_files=True)
