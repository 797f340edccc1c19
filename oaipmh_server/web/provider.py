"""What both blueprints are given: the process's settings, store, formats and harvest limit,
the sizes of the largest request they answer, and the site's root URL.

Apart from app.py so that views.py and pages.py import it and app.py imports them, all at
the top: the blueprints need these, not the factory that builds them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, request

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


_SAFE_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?")


def site_url() -> str:
    """The site's root, without a trailing slash, for absolute links (Signposting, the
    sitemap, citation_abstract_html_url): the configured base_url without its last path
    segment (`https://repo.example.org/oai` → `https://repo.example.org`), else the host
    this request came to, when it makes a valid URL."""
    base = current_provider().settings.base_url
    if base:
        parts = urlsplit(base)
        path = parts.path.rstrip("/")
        path = path[: path.rfind("/")] if "/" in path else ""
        return f"{parts.scheme}://{parts.netloc}{path}"
    try:
        root = request.host_url.rstrip("/")
    except ValueError:  # a port no URL can have (Host: x:99999), which urllib refuses
        root = ""
    if _SAFE_URL.fullmatch(root):
        return root + request.script_root
    return f"{web_scheme(request.scheme)}://localhost{request.script_root}"


def web_scheme(scheme: str) -> str:
    """The scheme of a URL made from a request that names no valid one: its own when
    that is http or https, else http (a proxy passing on X-Forwarded-Proto as a client
    sent it makes the scheme anything)."""
    return scheme if scheme in ("http", "https") else "http"


def oai_base() -> str:
    """The OAI-PMH base URL links and documents name: the configured base_url, else the
    site's root with /oai."""
    return current_provider().settings.base_url or site_url() + "/oai"
