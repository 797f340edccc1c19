"""What both blueprints are given: the process's settings, store, formats and harvest limit,
the sizes of the largest request they answer, and the site's root URL.

Apart from app.py so that views.py and pages.py import it and app.py imports them, all at
the top: the blueprints need these, not the factory that builds them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from flask import current_app, request, url_for

from ..formats import MetadataFormat
from ..settings import Settings
from ..store import SqlStore
from .admission import HarvestLimit


@dataclass(frozen=True)
class Provider:
    """What the views need, kept on the app (`app.extensions["oaipmh"]`)."""

    settings: Settings
    store: SqlStore
    formats: dict[str, MetadataFormat]
    harvest_limit: HarvestLimit | None  # admission of list requests; None when unlimited


# Far above any honest OAI-PMH request (the longest is a resumptionToken of a few hundred
# characters) and far below what could hurt: larger requests get 413 or 414. The query
# string's limit leaves room in gunicorn's largest request line (web/serving.py, 8,190 bytes)
# for the method, the path and the HTTP version, so the app, not gunicorn, answers it.
MAX_QUERY_STRING = 8000
MAX_BODY = 64 * 1024


def current_provider() -> Provider:
    """The Provider of the app answering this request."""
    provider: Provider = current_app.extensions["oaipmh"]
    return provider


# A Host header a URL is made of: a name or an IPv4 address, and a port. Anything else
# (an IPv6 address's brackets, '_', quotes, spaces, a port no URL can have) is the
# client's choice and is not echoed: localhost stands in.
_HOST = re.compile(r"[A-Za-z0-9.\-]+(?::([0-9]{1,5}))?", re.ASCII)
# What a path keeps as it is: werkzeug's get_current_url's set, a URL path segment's
# characters and '%' (an escape the proxy already made); a '%' that starts no escape is one.
_PATH_SAFE = "!$&'()*+,/:;=@%"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def site_url() -> str:
    """The site's root, without a trailing slash, for absolute links (Signposting, the
    sitemap, citation_abstract_html_url): the configured base_url without its last path
    segment (`https://repo.example.org/oai` → `https://repo.example.org`), else the URL
    this request came to up to its script root (request_url)."""
    base = current_provider().settings.base_url
    if base:
        parts = urlsplit(base)
        path = parts.path.rstrip("/")
        path = path[: path.rfind("/")] if "/" in path else ""
        return f"{parts.scheme}://{parts.netloc}{path}"
    return request_url()


def site_link(endpoint: str, **values: Any) -> str:
    """An absolute link to one of the site's documents (a sitemap, a ResourceSync list):
    the site's root, which holds the script root, and the endpoint's path without the
    copy of the script root url_for puts before it (else /prefix/prefix/…)."""
    return site_url() + url_for(endpoint, **values).removeprefix(link_root(request.root_path))


@lru_cache(maxsize=64)
def link_root(root: str) -> str:
    """The script root as every link writes it, without a trailing slash: url_for puts it
    before each path the pages link to (web/app.py gives Flask's URL adapter this one,
    not the root as the request brought it, which a URL cannot carry when it holds a
    space, '#', '?' or 'ü'), and request_url before the site's absolute ones. Worked
    out once per root (every request, /oai's too, makes an adapter); a site has one or
    two, and only a trusted proxy's X-Forwarded-Prefix chooses another.

    It begins with one '/', as WSGI's SCRIPT_NAME must, whatever the prefix: without,
    `repo` would join the host (`http://oai.example.orgrepo/oai`) and make the pages'
    links relative; with two, `//evil.example` makes every link name another host."""
    path = root.strip("/")
    return quote_path("/" + path) if path else ""


def quote_path(path: str) -> str:
    """A URL's path as it is written: percent-encoded as UTF-8, so always ASCII, with
    what a path keeps as it is (_PATH_SAFE) and each escape the proxy already made
    kept; a '%' that starts no escape is one itself."""
    return _LONE_PERCENT.sub("%25", quote(path, safe=_PATH_SAFE))


def request_url(path: str = "") -> str:
    """The URL this request came to, its script root and then `path` (none: the site's
    root): the baseURL when none is configured, and the root of the site's links. The
    one place a URL is made of the request's Host, so a fix to it is made once."""
    return _url_came_to(request.scheme, request.host, request.root_path, path)


@lru_cache(maxsize=64)
def _url_came_to(scheme: str, host: str, root: str, path: str) -> str:
    """Worked out once per host and path (werkzeug's request.base_url makes an IRI of the
    URL on every request, a tenth of a harvest page's time at the web edge); the cache is
    bounded, so a client sending many Hosts only evicts its own. A Host (or a scheme a
    proxy passed on) that would not make a valid URI is not echoed; the script root and
    the path are percent-encoded as UTF-8, so the URL is always an ASCII URI."""
    found = _HOST.fullmatch(host)
    # A port is 1 to 65535: 0 names none (Werkzeug 3.1.9 reads no host in `x:0`; 3.1.8 did).
    if scheme not in ("http", "https") or found is None or not 0 < int(found[1] or 80) <= 65_535:
        scheme, host = web_scheme(scheme), "localhost"
    url = f"{scheme}://{host.lower()}{link_root(root)}"
    if path:
        url += "/" + quote_path(path.lstrip("/"))
    return url


def web_scheme(scheme: str) -> str:
    """The scheme of a URL made from a request that names no valid one: its own when
    that is http or https, else http (a proxy passing on X-Forwarded-Proto as a client
    sent it makes the scheme anything)."""
    return scheme if scheme in ("http", "https") else "http"


def oai_base() -> str:
    """The OAI-PMH base URL links and documents name: the configured base_url, else the
    site's root with /oai."""
    return current_provider().settings.base_url or site_url() + "/oai"
