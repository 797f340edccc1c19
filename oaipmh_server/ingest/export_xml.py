"""Reading the XML files of a DSpace export (dublin_core.xml, metadata_*.xml, the
structure export) so that what is loaded is what the file says: no DTD or entity is
fetched or expanded, and no element's text is cut at its first child.

A DOCTYPE is refused, not skipped: the XML specification has every parser apply the
declarations of its internal subset, so an attribute default gives every `dcvalue` a
language of its choosing and an entity is expanded in an attribute (`element="&x;"`),
where no reference is left to refuse. DSpace's exports carry none.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import IO, BinaryIO, cast

from lxml import etree

DOCTYPE = (
    "a DOCTYPE: its declarations (entities, attribute defaults) would rewrite what the file "
    "says, and DSpace writes none: remove it"
)
CHUNK = 64 * 1024  # what `parse` reads from the file at a time


def parse(path: Path) -> etree._ElementTree:
    """The document, read without network, entities or a huge tree (etree.XMLSyntaxError
    or OSError if it cannot be); `has_doctype` says whether it may be used.

    The parser reads a stream that has no file name: libxml2 reports a byte its encoding
    cannot carry (Latin-1 in a UTF-8 file) in a file it reads itself, or in a stream
    naming one, as an OSError without a line, naming the path (for an archive, the
    temporary folder, gone when the message is read); from a nameless stream it is an
    XMLSyntaxError with its line. Nor are the bytes fed to it (`parser.feed`): an entity
    declared nowhere (`&eacute;`) then ends as "no element found" at line 0, the real
    error lost."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    with path.open("rb", buffering=CHUNK) as stream:
        return etree.parse(cast(IO[bytes], _Nameless(stream)), parser)  # lxml reads .read


class _Nameless:
    """A binary stream's `read` alone: what lxml reads a document from, without the file
    name it would name in an OSError instead of giving the error's line."""

    def __init__(self, stream: BinaryIO) -> None:
        self.read = stream.read


def has_doctype(document: etree._ElementTree) -> bool:
    # Any DOCTYPE, an empty one (<!DOCTYPE x>) too, has an internal subset in libxml2.
    return document.docinfo.internalDTD is not None


def whole_text(element: etree._Element, what: str) -> str:
    """The whole text of an element. DSpace writes values as text (markup escaped), but a
    hand-made export may hold a comment or inline markup (`H<sub>2</sub>O is water`):
    comments and processing instructions are dropped, inline elements kept as the markup
    they are (as DSpace holds such values), never cut at the first child. An entity
    reference is refused (ValueError naming its line and `what` holds it): its text is
    defined elsewhere, and it is not expanded."""
    if len(element) == 0:
        return element.text or ""
    for entity in element.iter(etree.Entity):
        raise ValueError(
            f"line {entity.sourceline}: {what}: the entity reference {entity.text} "
            "is not expanded: write its characters instead"
        )
    copy = deepcopy(element)
    etree.strip_elements(copy, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    parts = [copy.text or ""]
    for child in copy:
        parts += (etree.tostring(child, encoding="unicode", with_tail=False), child.tail or "")
    return "".join(parts)
