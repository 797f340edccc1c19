"""`oaipmh-server check URL`'s rules of ResourceSync: the Source Description at the
endpoint's host (`/.well-known/resourcesync`), the Capability List it names, and the
resource list and change list that one advertises, each there and a valid sitemap.

Documents are validated against sitemaps.org's schemas (shipped, schemas/SOURCES.md) with
their `rs:` elements taken out (ResourceSync's own schema is not shipped: they sit in the
schemas' strict `##other` slots), and their `rs:md capability` checked. An endpoint that
has no Source Description is "not checked": ResourceSync is optional beside OAI-PMH.
"""

from __future__ import annotations

from functools import cache
from urllib.parse import urljoin

from lxml import etree

from ..links import schema_root
from ..resourcesync import RS_NS, SITEMAP_NS
from .catalogue import _FOLDER, Fetch
from .endpoint import Result, Status

NS = {"sm": SITEMAP_NS, "rs": RS_NS}
WELL_KNOWN = "/.well-known/resourcesync"


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
    schema = _schema(kind)
    if not schema.validate(copy):
        errors = list(schema.error_log)  # type: ignore[call-overload]
        raise _Missing(f"{url}: invalid sitemap: line {errors[-1].line}: {errors[-1].message}")
    md = root.find("rs:md", NS)
    said = md.get("capability") if md is not None else None
    if said != capability:
        raise _Missing(f"{url}: rs:md capability {said!r}, expected {capability!r}")
    return root


def _urls(root: etree._Element, capability: str) -> list[str]:
    return [
        element.findtext("sm:loc", "", NS)
        for element in root.iterfind("sm:url", NS)
        if (md := element.find("rs:md", NS)) is not None and md.get("capability") == capability
    ]


@cache
def _schema(kind: str) -> etree.XMLSchema:
    name = "siteindex.xsd" if kind == "sitemapindex" else "sitemap.xsd"
    return etree.XMLSchema(etree.parse(str(_FOLDER / name)))
