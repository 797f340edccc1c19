"""The one serializer of OAI-PMH responses; all markup is made by lxml.

A response is the envelope (XML declaration, <OAI-PMH>, <responseDate>, <request>) around a
body. Bodies are rendered as elements in no namespace and spliced into the envelope, whose
default namespace is OAI-PMH's: inside it they *are* OAI-PMH elements, and each fragment
needs no namespace declaration of its own. Stored metadata fragments (rendered once by
lxml at ingest, with their own prefixed namespaces) are joined in as bytes, so a page of
records is assembled without parsing anything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache

from lxml import etree

from .datestamps import format_datestamp
from .errors import quoted
from .record_source import Header, SetInfo

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
OAI_SCHEMA = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
OAI_IDENTIFIER_NS = "http://www.openarchives.org/OAI/2.0/oai-identifier"
OAI_IDENTIFIER_SCHEMA = "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd"
SCHEMA_LOCATION = f"{{{XSI_NS}}}schemaLocation"

# Char production of XML 1.0: anything outside it cannot appear in a document at all.
_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
REPLACEMENT = "\ufffd"
_MARK = "splice"
# xs:language, which xml:lang must satisfy.
LANGUAGE = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*", re.ASCII)
# Languages that say there is none: DSpace's `*` (any) and `none`, and nothing at all.
NO_LANGUAGE = frozenset({"", "*", "none"})


# The bytes of the characters outside XML's Char production in UTF-8, a surrogate aside:
# the C0 controls but tab, newline and carriage return; U+FFFE and U+FFFF.
_ILLEGAL_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\r")
_NONCHARACTERS = ("\ufffe".encode(), "\uffff".encode())


def has_illegal_characters(text: str) -> bool:
    """Whether `text` holds a character `_ILLEGAL` matches, found without the regular
    expression, which tests each character against its ranges in turn (a load asks for
    every record's values, joined: 2,500 characters took 18 µs, this takes 11): UTF-8
    cannot encode a surrogate, and the others are a few bytes to look for in the result."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return (
        len(data.translate(None, _ILLEGAL_BYTES)) != len(data)
        or _NONCHARACTERS[0] in data
        or _NONCHARACTERS[1] in data
    )


def clean_text(text: str) -> str:
    """Replace characters XML cannot carry (control characters, lone surrogates) with U+FFFD.

    Applied to every stored value on its way into XML, so one bad byte in a record never
    breaks a page, and always replaced the same way.
    """
    return _ILLEGAL.sub(REPLACEMENT, text)


def normalise_language(value: str | None) -> str | None:
    """DSpace's `en_US` → `en-US`; empty, `*` and `none` mean no language. ValueError if
    what is left is not a language tag (ingest refuses such a language)."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() in NO_LANGUAGE:
        return None
    text = text.replace("_", "-")
    if not LANGUAGE.fullmatch(text):
        raise ValueError(f"language {quoted(value)} is not a language tag such as 'en' or 'en_US'")
    return text


@lru_cache(maxsize=1024)
def xml_language(value: str | None) -> str | None:
    """A stored language (as the source said it: `en_US`, `*`, `eng`) as `xml:lang` and
    HTML `lang` carry it, a BCP 47 tag (`en-US`), or None: no language, or one that is
    not a tag (a store loaded by other means). The same few codes for millions of values:
    each is worked out once."""
    try:
        return normalise_language(value)
    except ValueError:
        return None


def split_open_close(
    element: etree._Element, holder: etree._Element | None = None, declaration: bool = False
) -> tuple[bytes, bytes]:
    """Serialize `element` with a marker comment in `holder` (one of its descendants, or
    the element itself); return the bytes before and after the marker, where what is made
    apart (a page's records, a stored fragment) is joined in as bytes."""
    (element if holder is None else holder).append(etree.Comment(_MARK))
    document = etree.tostring(element, encoding="UTF-8", xml_declaration=declaration)
    head, tail = document.split(f"<!--{_MARK}-->".encode())
    return head, tail


RECORD_OPEN, RECORD_CLOSE = split_open_close(etree.Element("record"))
METADATA_OPEN, METADATA_CLOSE = split_open_close(etree.Element("metadata"))


def envelope(
    response_date: datetime,
    base_url: str,
    arguments: Mapping[str, str] | None,
    container: str | None,
) -> tuple[bytes, bytes]:
    """The document's bytes before and after its body.

    `arguments` are echoed as attributes of <request> (None: no attributes, as 3.2 asks for
    badVerb and badArgument); `container` is the verb element wrapping the body, or None for
    an error response, whose <error> elements stand directly in <OAI-PMH>.
    """
    root = etree.Element(
        f"{{{OAI_NS}}}OAI-PMH",
        nsmap={None: OAI_NS, "xsi": XSI_NS},  # type: ignore[dict-item]
    )
    root.set(SCHEMA_LOCATION, f"{OAI_NS} {OAI_SCHEMA}")
    etree.SubElement(root, f"{{{OAI_NS}}}responseDate").text = format_datestamp(response_date)
    request = etree.SubElement(root, f"{{{OAI_NS}}}request")
    request.text = clean_text(base_url)
    for name, value in (arguments or {}).items():
        request.set(name, value)
    parent = root if container is None else etree.SubElement(root, f"{{{OAI_NS}}}{container}")
    return split_open_close(root, parent, declaration=True)


def error_elements(errors: Iterable[tuple[str, str]]) -> bytes:
    """<error code="...">message</error> for each (code, message)."""
    parts = []
    for code, message in errors:
        element = etree.Element("error", code=code)
        element.text = clean_text(message)
        parts.append(etree.tostring(element, encoding="UTF-8"))
    return b"".join(parts)


def identify_body(
    repository_name: str,
    base_url: str,
    admin_emails: Sequence[str],
    earliest_datestamp: datetime,
    repository_identifier: str,
    sample_identifier: str,
    compressions: Sequence[str] = (),
) -> bytes:
    elements = []
    for tag, text in (
        ("repositoryName", repository_name),
        ("baseURL", base_url),
        ("protocolVersion", "2.0"),
        *(("adminEmail", email) for email in admin_emails),
        ("earliestDatestamp", format_datestamp(earliest_datestamp)),
        ("deletedRecord", "persistent"),
        ("granularity", "YYYY-MM-DDThh:mm:ssZ"),
        *(("compression", name) for name in compressions),
    ):
        element = etree.Element(tag)
        element.text = clean_text(text)
        elements.append(element)
    description = etree.Element("description")
    identifier = etree.SubElement(
        description,
        f"{{{OAI_IDENTIFIER_NS}}}oai-identifier",
        nsmap={None: OAI_IDENTIFIER_NS, "xsi": XSI_NS},  # type: ignore[dict-item]
    )
    identifier.set(SCHEMA_LOCATION, f"{OAI_IDENTIFIER_NS} {OAI_IDENTIFIER_SCHEMA}")
    for tag, text in (
        ("scheme", "oai"),
        ("repositoryIdentifier", repository_identifier),
        ("delimiter", ":"),
        ("sampleIdentifier", sample_identifier),
    ):
        etree.SubElement(identifier, f"{{{OAI_IDENTIFIER_NS}}}{tag}").text = text
    elements.append(description)
    return b"".join(etree.tostring(e, encoding="UTF-8") for e in elements)


def metadata_format_elements(formats: Iterable[tuple[str, str, str]]) -> bytes:
    """<metadataFormat> for each (prefix, schema URL, namespace)."""
    parts = []
    for prefix, schema, namespace in formats:
        element = etree.Element("metadataFormat")
        etree.SubElement(element, "metadataPrefix").text = prefix
        etree.SubElement(element, "schema").text = schema
        etree.SubElement(element, "metadataNamespace").text = namespace
        parts.append(etree.tostring(element, encoding="UTF-8"))
    return b"".join(parts)


def set_element(info: SetInfo, description: bytes | None) -> bytes:
    """<set>; `description` is a rendered metadata fragment (oai_dc) for <setDescription>."""
    element = etree.Element("set")
    etree.SubElement(element, "setSpec").text = info.spec
    etree.SubElement(element, "setName").text = clean_text(info.name)
    if description is None:
        return etree.tostring(element, encoding="UTF-8")
    head, tail = split_open_close(element, etree.SubElement(element, "setDescription"))
    return head + description + tail


# Part of every stored header's version: raise it when header_element's output changes,
# and every stored <header> is rendered again by the next load.
HEADER_RENDERING = 1


@lru_cache(maxsize=16)
def header_version(repository_identifier: str) -> str:
    """Which stored headers may be served as they are: those rendered by this code for
    this repository identifier (it is in every OAI identifier)."""
    key = f"{HEADER_RENDERING}:{repository_identifier}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


def oai_identifier(repository_identifier: str, local_id: str) -> str:
    """oai:<repository identifier>:<local id>, the oai-identifier scheme."""
    return f"oai:{repository_identifier}:{local_id}"


def stored_header(repository_identifier: str, header: Header) -> bytes:
    """A record's <header> as a load stores it (see `header_version`)."""
    return header_element(header, oai_identifier(repository_identifier, header.local_id))


def header_element(header: Header, oai_identifier: str) -> bytes:
    element = etree.Element("header")
    if header.deleted:
        element.set("status", "deleted")
    etree.SubElement(element, "identifier").text = oai_identifier
    etree.SubElement(element, "datestamp").text = format_datestamp(header.datestamp)
    for spec in header.set_specs:
        etree.SubElement(element, "setSpec").text = spec
    return etree.tostring(element, encoding="UTF-8")


def record_element(header: bytes, fragment: bytes | None) -> tuple[bytes, ...]:
    """<record>: the header and, unless the record is deleted, its metadata fragment, as
    the pieces to join (a page's pieces are joined once, not record by record)."""
    if fragment is None:
        return RECORD_OPEN, header, RECORD_CLOSE
    return RECORD_OPEN, header, METADATA_OPEN, fragment, METADATA_CLOSE, RECORD_CLOSE


def resumption_token_element(token: str, complete_list_size: int, cursor: int) -> bytes:
    """The token, or with token "" the empty element that marks the last page of a list."""
    element = etree.Element(
        "resumptionToken", completeListSize=str(complete_list_size), cursor=str(cursor)
    )
    if token:
        element.text = token
    return etree.tostring(element, encoding="UTF-8")
