"""ResourceSync's documents (ANSI/NISO Z39.99-2017): the Source Description, the Capability
List, resource and change lists and their indexes, made with lxml, as bytes; no HTTP here.

They are sitemaps (sitemaps.org's `urlset` and `sitemapindex`) with ResourceSync's `rs:md`
and `rs:ln` extension elements. A list is written as it is read (`urlset`), in chunks, so a
list of 50,000 resources never stands whole in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from lxml import etree

from .datestamps import format_datestamp

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
RS_NS = "http://www.openarchives.org/rs/terms/"
_NSMAP: Any = {None: SITEMAP_NS, "rs": RS_NS}
# sitemaps.org: at most 50,000 URLs a sitemap, and as many sitemaps an index.
MAX_URLS = 50_000
# Resources written between two flushes of a streamed list.
CHUNK = 500
XML_TYPE = "application/xml; charset=utf-8"
_MARK = "entries"
_CLOSE = b"</urlset>"


class Entry(NamedTuple):
    """One `<url>` (or, in an index, `<sitemap>`): its location, its last modification
    (None: none said), and the attributes of its `rs:md` (none: no `rs:md`)."""

    loc: str
    lastmod: datetime | None = None
    md: Mapping[str, str] = {}


def described(document: bytes) -> dict[str, str]:
    """The `rs:md` attributes and `length` of a resource that is exactly these bytes."""
    digest = hashlib.md5(document, usedforsecurity=False).hexdigest()
    return {"hash": f"md5:{digest}", "length": str(len(document))}


def source_description(capability_lists: Iterable[str]) -> bytes:
    """The Source Description (section 8): the capability lists this server has."""
    return _document(
        "urlset", "description", {}, None,
        [Entry(url, None, {"capability": "capabilitylist"}) for url in capability_lists],
    )  # fmt: skip


def capability_list(source_description_url: str, capabilities: Mapping[str, str]) -> bytes:
    """A Capability List (section 9): capability name → its document's URL, pointing
    `up` to the Source Description."""
    entries = [Entry(url, None, {"capability": name}) for name, url in capabilities.items()]
    return _document("urlset", "capabilitylist", {}, source_description_url, entries)


def index(capability: str, md: Mapping[str, str], up: str, sitemaps: Iterable[Entry]) -> bytes:
    """A resource list index or change list index (sections 10.2, 12.2): a
    `sitemapindex` of the lists, `md` the index's own `rs:md` attributes (`at`, or `from`
    and `until`), each list's in its entry."""
    return _document("sitemapindex", capability, md, up, sitemaps)


def urlset(
    capability: str, md: Mapping[str, str], up: str, entries: Iterable[Entry]
) -> Iterator[bytes]:
    """A resource list or change list, as chunks of bytes written while `entries` are
    read (a chunk every CHUNK entries; the first holds the head, so reading the first
    chunk has read the store for it). Each chunk's <url>s are serialized by lxml as
    children of a root declaring the namespaces, and cut out of it: once per chunk, not
    per element, and with no namespace declared again on each <url>."""
    root = etree.Element(f"{{{SITEMAP_NS}}}urlset", nsmap=_NSMAP)
    root.extend(_head(capability, md, up))
    root.append(etree.Comment(_MARK))
    head, tail = etree.tostring(root, encoding="UTF-8", xml_declaration=True).split(
        f"<!--{_MARK}-->".encode()
    )
    chunk: list[Entry] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) == CHUNK:
            yield head + _urls(chunk)
            head, chunk = b"", []
    yield head + _urls(chunk) + tail


def _urls(entries: Iterable[Entry]) -> bytes:
    """The <url> elements of `entries`, as they are written inside a `urlset`."""
    root = etree.Element(f"{{{SITEMAP_NS}}}urlset", nsmap=_NSMAP)
    for entry in entries:
        _entry(root, "url", entry)
    if not len(root):
        return b""
    text = etree.tostring(root, encoding="UTF-8")
    return text[text.index(b">") + 1 : -len(_CLOSE)]


def change_md(change: str, when: datetime) -> dict[str, str]:
    """A change's `rs:md`: what happened (created, updated, deleted) and when (1.1's
    `datetime`, which clients compare with the time of their last synchronisation)."""
    return {"change": change, "datetime": format_datestamp(when)}


def _document(
    root: str, capability: str, md: Mapping[str, str], up: str | None, entries: Iterable[Entry]
) -> bytes:
    element = etree.Element(f"{{{SITEMAP_NS}}}{root}", nsmap=_NSMAP)
    element.extend(_head(capability, md, up))
    child = "sitemap" if root == "sitemapindex" else "url"
    for entry in entries:
        _entry(element, child, entry)
    return etree.tostring(element, encoding="UTF-8", xml_declaration=True)


def _head(capability: str, md: Mapping[str, str], up: str | None) -> list[etree._Element]:
    """A document's own `rs:ln rel="up"` (to the document above it) and `rs:md`."""
    head = []
    if up is not None:
        head.append(etree.Element(f"{{{RS_NS}}}ln", rel="up", href=up))
    head.append(etree.Element(f"{{{RS_NS}}}md", {"capability": capability, **md}))
    return head


def _entry(parent: etree._Element, tag: str, entry: Entry) -> etree._Element:
    """A <url> or <sitemap> added to `parent`, in the namespaces it declares."""
    element = etree.SubElement(parent, f"{{{SITEMAP_NS}}}{tag}")
    etree.SubElement(element, f"{{{SITEMAP_NS}}}loc").text = entry.loc
    if entry.lastmod is not None:
        etree.SubElement(element, f"{{{SITEMAP_NS}}}lastmod").text = format_datestamp(entry.lastmod)
    if entry.md:
        etree.SubElement(element, f"{{{RS_NS}}}md", dict(entry.md))
    return element
