"""`oaipmh-server check URL`'s rules of ResourceSync: the Source Description at the
endpoint's host (`/.well-known/resourcesync`), the Capability List it names, and the
resource list and change list that one advertises, each there and a valid sitemap.

Documents are validated against sitemaps.org's schemas (shipped, schemas/SOURCES.md) as
ResourceSync reads them (`resourcesync_schema`: a list may have no entries), with their
`rs:` elements taken out (ResourceSync's own schema is not shipped: they sit in the
schemas' strict `##other` slots), and their own `rs:md` and `rs:ln` checked by
ResourceSync's rules (`HEADS`). An endpoint that has no Source Description is "not
checked": ResourceSync is optional beside OAI-PMH.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from urllib.parse import urljoin

from lxml import etree

from ..links import schema_root
from ..resourcesync import RS_NS, SITEMAP_NS
from .catalogue import _FOLDER, Fetch
from .endpoint import Result, Status

NS = {"sm": SITEMAP_NS, "rs": RS_NS}
WELL_KNOWN = "/.well-known/resourcesync"
XSD = {"xsd": "http://www.w3.org/2001/XMLSchema"}
# What a document's own <rs:md> and <rs:ln> must hold, by its capability (ResourceSync 1.1,
# sections 8 to 12 and Appendix A): the time attributes its rs:md must have, each a W3C
# Datetime, and whether an <rs:ln rel="up"> must point to the document above it. A
# resource list and its index have `at`; a change list and its index `from`.
# The W3C's profile of ISO 8601 (https://www.w3.org/TR/NOTE-datetime): YYYY, YYYY-MM,
# YYYY-MM-DD, or a day with hh:mm, hh:mm:ss or hh:mm:ss.s and a time zone (Z or ±hh:mm).
W3C_DATETIME = re.compile(
    r"[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2}))?)?)?",
    re.ASCII,
)
HEADS: dict[str, tuple[tuple[str, ...], bool]] = {
    "description": ((), False),
    "capabilitylist": ((), True),
    "resourcelist": (("at",), True),
    "changelist": (("from",), True),
}


class _Missing(Exception):
    """A document that is not there, or not a valid ResourceSync document: why."""


def check_resourcesync(endpoint: str, fetch: Fetch) -> list[Result]:
    """The rules' results, in order; the Source Description is looked for at the root the
    endpoint's URL gives (`https://host/oai` → `https://host/.well-known/resourcesync`)."""
    results: list[Result] = []

    def add(rule: str, status: Status, detail: str) -> None:
        results.append(Result(rule, status, detail))

    url = (schema_root(endpoint) or endpoint.rstrip("/")) + WELL_KNOWN
    try:
        status, body = fetch(url)
    except OSError as e:
        add("resourcesync-source-description", "not checked", f"{url}: {e}")
        return results
    if status == 404:
        add("resourcesync-source-description", "not checked", f"{url}: none (HTTP 404)")
        return results
    try:
        description = _document(url, status, body, "description")
        named = _urls(description, "capabilitylist")
        if not named:
            raise _Missing(f"{url} names no capability list")
        capability_list = named[0]
    except _Missing as e:
        add("resourcesync-source-description", "fail", str(e))
        return results
    add("resourcesync-source-description", "pass", f"{url} names {capability_list}")
    capability_list = urljoin(url, capability_list)
    try:
        capabilities = _read(fetch, capability_list, "capabilitylist")
    except _Missing as e:
        add("resourcesync-capability-list", "fail", str(e))
        return results
    names = {
        md.get("capability") or "": element.findtext("sm:loc", "", NS)
        for element in capabilities.iterfind("sm:url", NS)
        if (md := element.find("rs:md", NS)) is not None
    }
    add("resourcesync-capability-list", "pass" if "resourcelist" in names else "fail",
        f"{capability_list} advertises {', '.join(sorted(names)) or 'nothing'}")  # fmt: skip
    for capability in ("resourcelist", "changelist"):
        rule = f"resourcesync-{capability}"
        if capability not in names:
            add(rule, "not checked", f"no {capability} advertised")
            continue
        try:
            _read(fetch, urljoin(capability_list, names[capability]), capability)
        except _Missing as e:
            add(rule, "fail", str(e))
        else:
            add(rule, "pass", f"{names[capability]}: a valid {capability}")
    return results


def _read(fetch: Fetch, url: str, capability: str) -> etree._Element:
    try:
        status, body = fetch(url)
    except OSError as e:
        raise _Missing(f"{url}: {e}") from None
    return _document(url, status, body, capability)


def _document(url: str, status: int, body: bytes, capability: str) -> etree._Element:
    """The document's root, if it is a valid sitemap (or index) of this capability."""
    if status != 200:
        raise _Missing(f"{url}: HTTP {status}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(body, parser)
        copy = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as e:
        raise _Missing(f"{url}: not well-formed XML: {e}") from None
    kind = etree.QName(root).localname
    if etree.QName(root).namespace != SITEMAP_NS or kind not in ("urlset", "sitemapindex"):
        raise _Missing(f"{url}: not a sitemap (root {root.tag})")
    for element in list(copy.iter(f"{{{RS_NS}}}*")):
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    schema = resourcesync_schema(kind)
    if not schema.validate(copy):
        errors = list(schema.error_log)  # type: ignore[call-overload]
        raise _Missing(f"{url}: invalid sitemap: line {errors[-1].line}: {errors[-1].message}")
    md = root.find("rs:md", NS)
    said = md.get("capability") if md is not None else None
    if said != capability:
        raise _Missing(f"{url}: rs:md capability {said!r}, expected {capability!r}")
    problems = head_problems(root)
    if problems:
        raise _Missing(f"{url}: {problems[0]}")
    return root


def head_problems(root: etree._Element) -> list[str]:
    """What the document's own `rs:md` and `rs:ln` lack by ResourceSync's rules (HEADS,
    for the capability its rs:md names): none for a document that keeps them."""
    md = root.find("rs:md", NS)
    if md is None:
        return ["no rs:md of the document itself"]
    capability = md.get("capability") or ""
    if capability not in HEADS:
        return [f"rs:md capability {capability!r} is none ResourceSync defines here"]
    times, up = HEADS[capability]
    problems = []
    for name in times:
        value = md.get(name)
        if value is None:
            problems.append(f"a {capability}'s rs:md has no {name}")
        elif not _w3c_datetime(value):
            problems.append(f"rs:md {name}={value!r} is not a W3C Datetime")
    if up and not [
        ln for ln in root.iterfind("rs:ln", NS) if ln.get("rel") == "up" and ln.get("href")
    ]:
        problems.append(f'a {capability} has no rs:ln rel="up" to the document above it')
    return problems


def _w3c_datetime(text: str) -> bool:
    """A W3C Datetime (the profile of ISO 8601 that ResourceSync's times are written in:
    a year, a month, a day, or a day and time with its time zone) of a real date."""
    if not W3C_DATETIME.fullmatch(text):
        return False
    year, month, day = ([*text[:10].split("-"), "01", "01"])[:3]
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def _urls(root: etree._Element, capability: str) -> list[str]:
    return [
        element.findtext("sm:loc", "", NS)
        for element in root.iterfind("sm:url", NS)
        if (md := element.find("rs:md", NS)) is not None and md.get("capability") == capability
    ]


@cache
def resourcesync_schema(kind: str) -> etree.XMLSchema:
    """sitemaps.org's schema of a `urlset` or `sitemapindex` as ResourceSync reads it:
    the shipped file, unchanged, with the one rule ResourceSync changes changed in the
    copy compiled here. ResourceSync 1.1 (section 7) gives a `urlset` zero or more `<url>`
    and a `sitemapindex` zero or more `<sitemap>`: a resource list of a repository with
    no records, or a change list of a time with no changes, says so by having none, where
    sitemaps.org's schema wants at least one. Everything else it says still holds."""
    name, entry = ("siteindex.xsd", "sitemap") if kind == "sitemapindex" else ("sitemap.xsd", "url")
    tree = etree.parse(str(_FOLDER / name))
    element = tree.getroot().find(f"xsd:element[@name='{kind}']//xsd:element[@name='{entry}']", XSD)
    assert element is not None, f"{name} declares no {entry} in {kind}"
    element.set("minOccurs", "0")
    return etree.XMLSchema(tree)
