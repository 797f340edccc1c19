"""The pages for crawlers: `/robots.txt`, `/sitemap.xml`, `/sitemaps/pages.xml` and
`/sitemaps/records.xml?start=…`.

They are routes of the pages' blueprint (`pages.robots`, `pages.sitemap`: [pages] enabled =
false turns the sitemaps off with the pages, robots.txt stays), added to it when
`web/app.py` imports this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from io import BytesIO
from typing import Any
from urllib.parse import quote, urlencode

from flask import Response, request
from lxml import etree

from .. import datestamps
from ..resourcesync import SITEMAP_NS
from .pages import LOCAL_ID, blueprint
from .provider import current_provider, site_link, site_url

SITEMAP_SIZE = 50_000  # sitemaps.org: at most 50,000 URLs per sitemap
SITEMAP_CHUNK = 2_000
_SITEMAP_NSMAP: Any = {None: SITEMAP_NS}


@blueprint.route("/robots.txt")
def robots() -> Response:
    """Crawlers may read the pages; the OAI-PMH endpoint is for harvesters (and with the
    pages off, only that is said)."""
    body = "User-agent: *\nDisallow: /oai\n"
    if current_provider().settings.pages_enabled:
        body += f"Allow: /\nSitemap: {site_url()}/sitemap.xml\n"
    return Response(body, 200, content_type="text/plain; charset=utf-8")


@blueprint.route("/sitemap.xml")
def sitemap_index() -> Response:
    """A sitemap index: the sitemap of the site's own pages first, then one sitemap per
    50,000 records in local id order, each named by the id it starts at, so serving any
    of them is a keyset read, never an offset. The pages' sitemap is always there, so
    even an empty repository's index lists one (sitemaps.org's schema wants one)."""
    starts = current_provider().store.sitemap_starts(SITEMAP_SIZE)
    base = site_link("pages.sitemap")
    locations = [site_link("pages.pages_sitemap")]
    locations += [f"{base}?{urlencode({'start': start})}" for start in starts]
    return _sitemap_document("sitemapindex", "sitemap", locations)


@blueprint.route("/sitemaps/pages.xml")
def pages_sitemap() -> Response:
    """The site's pages for people other than the records': the home page and each set's
    page (up to the 50,000 URLs a sitemap may hold; a repository has far fewer sets)."""
    sets = current_provider().store.list_sets(None, SITEMAP_SIZE - 1)
    locations = [site_url() + "/"]
    locations += [site_link("pages.set_page", spec=info.spec) for info in sets]
    return _sitemap_document("urlset", "url", locations)


def _sitemap_document(root: str, entry: str, locations: list[str]) -> Response:
    """A sitemap index (`sitemapindex` of `sitemap`s) or sitemap (`urlset` of `url`s) of
    these locations."""
    buffer = BytesIO()
    with etree.xmlfile(buffer, encoding="UTF-8") as xf:
        xf.write_declaration()
        with xf.element(f"{{{SITEMAP_NS}}}{root}", nsmap=_SITEMAP_NSMAP):
            for location in locations:
                xf.write(_url_element(location, entry))
    return Response(buffer.getvalue(), 200, content_type="application/xml; charset=utf-8")


@blueprint.route("/sitemaps/records.xml")
def sitemap() -> Response:
    """The live records of one sitemap (up to 50,000 records from `start`), streamed in
    chunks of a keyset read, each with its datestamp as lastmod. A range with no live
    record (all deleted since the index was read, or before: the ranges count deleted
    records) lists the home page instead: sitemaps.org's schema wants one URL or more,
    and a sitemap the index names is there, not 404 (docs/pages.md)."""
    start = request.args.get("start", "")
    if start and not LOCAL_ID.fullmatch(start):
        return Response("Not a sitemap of this site.\n", 404, content_type="text/plain")
    store = current_provider().store
    first = store.list_ids(start, None, SITEMAP_CHUNK)  # read before the first byte
    site = site_url()

    def body() -> Iterator[bytes]:
        buffer = BytesIO()
        rows = first
        seen = written = 0
        with etree.xmlfile(buffer, encoding="UTF-8") as xf:
            xf.write_declaration()
            with xf.element(f"{{{SITEMAP_NS}}}urlset", nsmap=_SITEMAP_NSMAP):
                while rows:
                    for local_id, stamp, deleted in rows[: SITEMAP_SIZE - seen]:
                        if deleted:
                            continue
                        url = _url_element(site + "/records/" + quote(local_id, safe="/"))
                        etree.SubElement(
                            url, f"{{{SITEMAP_NS}}}lastmod"
                        ).text = datestamps.format_datestamp(_aware(stamp))
                        xf.write(url)
                        written += 1
                    seen += len(rows)
                    xf.flush()
                    yield _drain(buffer)
                    if seen >= SITEMAP_SIZE or len(rows) < SITEMAP_CHUNK:
                        break
                    rows = store.list_ids(start, rows[-1][0], SITEMAP_CHUNK)
                if not written:
                    xf.write(_url_element(site + "/"))
        yield _drain(buffer)

    return Response(body(), 200, content_type="application/xml; charset=utf-8")


def _url_element(location: str, entry: str = "url") -> etree._Element:
    """A sitemap's `<url>` (or an index's `<sitemap>`) of one location."""
    element = etree.Element(f"{{{SITEMAP_NS}}}{entry}", nsmap=_SITEMAP_NSMAP)
    etree.SubElement(element, f"{{{SITEMAP_NS}}}loc").text = location
    return element


def _drain(buffer: BytesIO) -> bytes:
    data = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return data


def _aware(moment: datetime) -> datetime:
    return datestamps.to_utc_second(moment)
