"""The pages people and search engines read: the web edge of `landing.py` (a web-edge
module, so it imports Flask).

`/` the repository, `/records/<local id>` a record's landing page (410 once deleted),
`/sets/<spec>` a set and its records, `/oai/view?…` any OAI-PMH request made readable,
`/sitemap.xml` with `/sitemaps/records.xml?start=…`, and `/robots.txt` (web/sitemaps.py,
routes of this blueprint). They read through the same store and formats as the verbs,
and render with autoescaped Jinja2 templates
(oaipmh_server/web/templates/, after an operator's [pages] template_folder): no JavaScript,
one stylesheet (oaipmh_server/web/static/). [pages] enabled = false turns them all off.
`/oai` itself is untouched: it answers XML to every client, whatever its Accept header.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request, url_for
from jinja2 import ChoiceLoader, FileSystemLoader
from lxml import etree
from markupsafe import Markup

from .. import datestamps, landing
from ..crosswalk import Crosswalk
from ..errors import StoreUnavailable
from ..files import is_open
from ..links import linker_of
from ..protocol import SAMPLE_LOCAL_ID, Context, respond
from ..record_source import Header, Position, Selection, SetInfo
from ..settings import Settings
from ..store import StoreStats
from ..verbs import SET_SPEC
from ..xml import xml_language
from .provider import MAX_QUERY_STRING, current_provider, oai_base, site_url
from .views import list_place, place, query_arguments

blueprint = Blueprint("pages", __name__)

HTML_TYPE = "text/html; charset=utf-8"


def content_security_policy(styles: str = "'self'", images: str = "'self'") -> str:
    """Pages are data and a stylesheet: nothing runs, nothing is framed, nothing loads from
    elsewhere (the JSON-LD <script> is data, which script-src does not govern), except the
    styles and images [pages] adds (the accent's <style> element, the logo's host)."""
    return (
        f"default-src 'none'; style-src {styles}; img-src {images}; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


CONTENT_SECURITY_POLICY = content_security_policy()
# WCAG 2 AA for text (links are text), against the lightest and darkest backgrounds links
# stand on: the page (#fff) and the header and footer band (--band, #f3f5f8).
READABLE_CONTRAST = 4.5
BAND = "#f3f5f8"
SET_PAGE_SIZE = 50
LATEST = 10
SETS_ON_HOME = 200
SUBSETS_SHOWN = 200
STATS_SECONDS = 300  # a store's counts not kept are counted at most every five minutes
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
VIEW_PREFIX = "view_prefix"
# What a local id can be: the local part of an OAI identifier is printable ASCII
# (verbs.IDENTIFIER). Anything else cannot be a record, and never reaches the database
# (PostgreSQL refuses a NUL as an error, not as a miss).
LOCAL_ID = re.compile(r"[!-~]{1,1000}", re.ASCII)


@dataclass(frozen=True)
class Site:
    """What makes the pages the institution's ([pages]), as every page's frame uses it:
    its name, logo, footer line and language, the <style> element setting the accent
    colour ("" for the stylesheet's own), and the Content-Security-Policy allowing that
    element (by its hash) and the logo's host, and nothing else."""

    name: str
    logo_url: str
    footer: str
    lang: str
    style: str
    policy: str


def site_of(settings: Settings) -> Site:
    """Made once per app, when the blueprint is registered: every page reads it."""
    style = f":root {{ --accent: {settings.pages_accent_color}; }}"
    style = style if settings.pages_accent_color else ""
    styles = "'self'"
    if style:
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        styles += f" 'sha256-{digest}'"
    images = "'self'"
    logo = urlsplit(settings.pages_logo_url)
    if logo.scheme and logo.netloc:
        images += f" {logo.scheme}://{logo.netloc}"
    return Site(
        name=settings.pages_name or settings.repository_name,
        logo_url=settings.pages_logo_url,
        footer=settings.pages_footer,
        lang=settings.pages_lang,
        style=style,
        policy=content_security_policy(styles, images),
    )


@blueprint.record_once
def _set_up(state: Any) -> None:
    """No blank lines where template tags stood (the app renders only these templates);
    `xml_language`: a stored language (`en_US`) as HTML's `lang` takes it (`en-US`).
    An operator's template folder comes before the built-in templates, so a template
    there takes the place of the built-in one of its name. With the pages turned off,
    every page and the stylesheet answer 404."""
    app: Flask = state.app
    settings: Settings = app.extensions["oaipmh"].settings
    app.extensions["oaipmh_site"] = site_of(settings)
    if settings.pages_template_folder:
        built_in = FileSystemLoader(str(Path(app.root_path) / "templates"))
        app.jinja_loader = ChoiceLoader(
            [FileSystemLoader(settings.pages_template_folder), built_in]
        )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.filters["xml_language"] = xml_language
    app.jinja_env.finalize = page_text
    if not settings.pages_enabled:
        app.before_request(_no_pages)


def warn_of_unreadable_accent(settings: Settings) -> None:
    """The accent colour is the operator's choice; one that makes links unreadable on the
    header band is said (by create_app, where the settings are read), and still applied."""
    if not settings.pages_enabled or not settings.pages_accent_color:
        return
    ratio = contrast(settings.pages_accent_color, BAND)
    if ratio < READABLE_CONTRAST:
        logging.getLogger("oaipmh_server").warning(
            "warning: [pages] accent_color %s has a contrast of %.1f:1 with the header band "
            "(%s), below the %.1f:1 that makes links readable (WCAG AA)",
            settings.pages_accent_color, ratio, BAND, READABLE_CONTRAST,
        )  # fmt: skip


# Characters that change the direction of the text after them (embeddings, overrides,
# isolates, marks): a title holding U+202E RIGHT-TO-LEFT OVERRIDE shows what follows it
# reversed ("Thesis \u202efdp.exe" reads "Thesis exe.pdf"), in the page around it too.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def isolate_bidi(text: str) -> str:
    """Text a template writes (through `page_text`), put between FIRST STRONG ISOLATE and
    POP DIRECTIONAL ISOLATE when it holds a bidi control, which ends the control's effect
    there, in link text, headings and <title> alike (where <bdi> cannot go)."""
    if BIDI_CONTROLS.search(text):
        return f"\u2068{text}\u2069"
    return text


# What HTML forbids in a document (each one a parse error): the controls but ASCII
# whitespace (C0, DEL, C1) and the noncharacters. A URL can carry any of them (a 404 page
# shows the id asked for), and a record may hold those XML allows (DEL, C1, U+10FFFF).
HTML_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufdd0-\ufdef\ud800-\udfff"
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17))
    + "]"
)


def page_text(value: Any) -> Any:
    """Every value a template writes (Jinja's `finalize`): each character HTML forbids
    shown as U+FFFD, then bidi controls isolated (`isolate_bidi`). Markup (made by the
    templates, `tojson`'s escaped JSON) and values that are not text pass unchanged."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return isolate_bidi(HTML_FORBIDDEN.sub("\ufffd", value))
    return value


def contrast(color: str, background: str) -> float:
    """WCAG 2's contrast ratio of two #rgb/#rrggbb colours (1 to 21)."""

    def luminance(hex_color: str) -> float:
        digits = hex_color[1:]
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        linear = []
        for i in (0, 2, 4):
            c = int(digits[i : i + 2], 16) / 255
            linear.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(color), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _no_pages() -> None:
    """Pages off: every page, sitemap and the stylesheet are not found (robots.txt stays,
    keeping crawlers off /oai); the OAI-PMH endpoint, /healthz and /metrics answer."""
    if request.endpoint == "static" or (
        request.blueprint == "pages" and request.endpoint != "pages.robots"
    ):
        abort(404)


@blueprint.after_request
def _headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = _site().policy
        response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.errorhandler(StoreUnavailable)
def _unavailable(error: StoreUnavailable) -> Response:
    provider = current_provider()
    response = _page("message.html", 503, heading="Try again later",
                     message="The repository's database is unavailable just now.")  # fmt: skip
    response.headers["Retry-After"] = str(provider.settings.retry_after)
    return response


# -- the repository ------------------------------------------------------------------------


@blueprint.route("/")
def home() -> Response:
    provider = current_provider()
    store = provider.store
    stats = _stats()
    latest = store.latest_headers(LATEST)
    titles = _titles([h.local_id for h in latest])
    top = [(spec, name, n) for spec, (name, n) in stats.sets.items() if ":" not in spec]
    sets = top[:SETS_ON_HOME]
    base = oai_base()
    sample = latest[0].local_id if latest else SAMPLE_LOCAL_ID
    examples = [
        (text, f"{base}?{query}", f"{url_for('pages.oai_view')}?{query}")
        for text, query in landing.example_requests(base, _oai_identifier(sample))
    ]
    return _page(
        "home.html",
        200,
        name=_site().name,
        description=provider.settings.repository_description,
        stats=stats,
        sets=sets,
        more_sets=len(top) > SETS_ON_HOME,
        latest=[(h, titles.get(h.local_id)) for h in latest],
        examples=examples,
    )


def _busy() -> Response:
    """A page that runs a list, when every flow-control place is taken: 503, as /oai."""
    response = _page("message.html", 503, heading="Try again later",
                     message="Too many lists are being made at once.")  # fmt: skip
    response.headers["Retry-After"] = str(current_provider().settings.retry_after)
    return response


# -- a record ------------------------------------------------------------------------------


@blueprint.route("/records/<path:local_id>")
def record(local_id: str) -> Response:
    provider = current_provider()
    header = provider.store.get_header(local_id) if LOCAL_ID.fullmatch(local_id) else None
    if header is None:
        return _page("message.html", 404, heading="No such record",
                     message="This repository holds no record of the id asked for:",
                     code=local_id)  # fmt: skip
    if header.deleted:
        return _page("gone.html", 410, local_id=local_id,
                     deleted=datestamps.format_datestamp(header.datestamp))  # fmt: skip
    fields = provider.store.get_fields(local_id) or ()
    page = landing.record_page(
        header,
        fields,
        provider.store.get_sets(header.set_specs),
        settings=provider.settings,
        formats=provider.formats,
        page_url=record_url(local_id),
        oai_base=oai_base(),
        oai_identifier=_oai_identifier(local_id),
        files=files_of(header),
        crosswalk=_crosswalk(),
    )
    response = _page("record.html", 200, record=page)
    if links := landing.link_header(page.links):
        response.headers["Link"] = links
    return response


def files_of(header: Header) -> list[landing.FileLink]:
    """The record's content files (ORIGINAL bundle, in sequence order) that anonymous
    users may read: the page's file list, its JSON-LD `encoding`, and where a file has a
    link ([files] url), its citation_pdf_url and Signposting `item` links. A file without
    a link is named, not linked; a file others may not read is never shown, not even by
    name. The server does not serve the files: the links lead where the pattern says
    (DSpace, or any web server)."""
    provider = current_provider()
    linker = linker_of(provider.settings)
    found = []
    for linked in linker.linked(header.local_id, provider.store.get_files(header.local_id)):
        file = linked.file
        if is_open(file):
            url = landing.safe_url(linked.url) if linked.url is not None else None
            found.append(landing.FileLink(file.name, file.mime, file.size, url))
    return found


def record_url(local_id: str) -> str:
    return site_url() + "/records/" + quote(local_id, safe="/")


# -- a set ---------------------------------------------------------------------------------


@blueprint.route("/sets/<spec>")
def set_page(spec: str) -> Response:
    provider = current_provider()
    found = provider.store.get_sets([spec]) if SET_SPEC.fullmatch(spec) else []
    if not found:
        return _page("message.html", 404, heading="No such set",
                     message="This repository has no set of the spec asked for:",
                     code=spec)  # fmt: skip
    try:
        after = _position(request.args.get("after"), request.args.get("id"))
    except ValueError:
        return _page("message.html", 400, heading="Bad request",
                     message="The page position in this address is not valid.")  # fmt: skip
    selection = Selection(spec, None, datestamps.now())
    with place(resuming=after is not None) as admitted:  # a list, as ListIdentifiers
        if not admitted:
            return _busy()
        page = provider.store.list_headers(selection, after, SET_PAGE_SIZE + 1, header_version="")
    headers = [r.header for r in page[:SET_PAGE_SIZE]]
    titles = _titles([h.local_id for h in headers if not h.deleted])
    following = None
    if len(page) > SET_PAGE_SIZE:
        last = headers[-1]
        query = {"after": datestamps.format_datestamp(last.datestamp), "id": last.local_id}
        following = url_for("pages.set_page", spec=spec) + "?" + urlencode(query)
    parents = provider.store.get_sets(
        [":".join(spec.split(":")[:i]) for i in range(1, spec.count(":") + 1)]
    )
    return _page(
        "set.html",
        200,
        info=found[0],
        parents=parents,
        subsets=provider.store.list_subsets(spec, SUBSETS_SHOWN),
        records=[(h, titles.get(h.local_id)) for h in headers],
        paged=after is not None,
        following=following,
        oai_query=urlencode({"verb": "ListRecords", "metadataPrefix": "oai_dc", "set": spec}),
    )


def _position(stamp: str | None, local_id: str | None) -> Position | None:
    """The keyset position in a set page's address (None: the first page); ValueError
    when it is not a valid one."""
    if stamp is None and local_id is None:
        return None
    if not stamp or not local_id or not LOCAL_ID.fullmatch(local_id):
        raise ValueError("a position is a datestamp and an id")
    moment, _ = datestamps.parse_datestamp(stamp)
    return Position(moment, local_id)


# -- OAI-PMH, for people -------------------------------------------------------------------


@dataclass
class Node:
    """One XML element as the readable rendering shows it."""

    name: str
    attributes: list[tuple[str, str]]
    text: str
    lang: str | None
    href: str | None
    page: str | None  # the landing page of an identifier
    children: list[Node]


@blueprint.route("/oai/view", methods=["GET"])
def oai_view() -> Response:
    """The same `respond` as /oai, its XML rendered for people, with links to follow."""
    provider = current_provider()
    if len(request.query_string) > MAX_QUERY_STRING:
        return _page("message.html", 414, heading="Request too long", message="")
    # The format that header identifiers link to (GetRecord) in a resumed list, whose own
    # arguments are only the token: a view-only argument, never handed to `respond`. The
    # arguments are read as /oai reads them: a byte that is not UTF-8 is refused there, not
    # read as U+FFFD (which Flask's request.args would make of it).
    pairs = [(k, v) for k, v in query_arguments(request.query_string) if k != VIEW_PREFIX]
    context = Context(
        settings=provider.settings,
        formats=provider.formats,
        source=provider.store,
        base_url=oai_base(),
        now=datestamps.now(),
    )
    with list_place(pairs) as admitted:
        if not admitted:
            return _busy()
        reply = respond(pairs, context)
        body = b"".join(reply.body)
    root = etree.fromstring(body)
    verb = reply.verb or ""  # a verb the server knows, never other text from the URL
    prefix = next((value for name, value in pairs if name == "metadataPrefix"), None)
    prefix = prefix or request.args.get(VIEW_PREFIX) or "oai_dc"
    query = urlencode(pairs, errors="surrogateescape")  # a byte not UTF-8 %-escaped back
    return _page(
        "oai_view.html",
        200,
        verb=verb,
        errors=reply.errors,
        tree=_node(root, verb, prefix),
        raw=f"{oai_base()}?{query}" if query else oai_base(),
    )


def _node(element: etree._Element, verb: str, prefix: str) -> Node:
    qname = etree.QName(element)
    name = f"{element.prefix}:{qname.localname}" if element.prefix else qname.localname
    attributes = []
    for key, value in element.attrib.items():
        attribute = etree.QName(key)
        shown = "xml:lang" if key == XML_LANG else attribute.localname
        if attribute.namespace == "http://www.w3.org/2001/XMLSchema-instance":
            shown = f"xsi:{attribute.localname}"
        attributes.append((shown, str(value)))
    text = (element.text or "").strip()
    href = page = None
    local = qname.localname
    view = url_for("pages.oai_view")
    if text:
        if local == "resumptionToken" and verb:
            query = {"verb": verb, "resumptionToken": text, VIEW_PREFIX: prefix}
            href = f"{view}?{urlencode(query)}"
        elif local == "identifier" and _parent_name(element) == "header":
            query = {"verb": "GetRecord", "metadataPrefix": prefix, "identifier": text}
            href = f"{view}?{urlencode(query)}"
            local_id = _local_id(text)
            if local_id is not None:
                page = url_for("pages.record", local_id=local_id)
        elif local == "metadataPrefix":
            href = f"{view}?{urlencode({'verb': 'ListRecords', 'metadataPrefix': text})}"
        elif local == "setSpec":
            query = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "set": text}
            href = f"{view}?{urlencode(query)}"
            page = url_for("pages.set_page", spec=text)
        else:
            href = landing.safe_url(text)
    children = [_node(child, verb, prefix) for child in element if isinstance(child.tag, str)]
    lang = element.get(XML_LANG)
    return Node(name, attributes, text, lang, href, page, children)


def _parent_name(element: etree._Element) -> str | None:
    parent = element.getparent()
    return None if parent is None else etree.QName(parent).localname


# -- helpers -------------------------------------------------------------------------------


def _site() -> Site:
    site: Site = current_app.extensions["oaipmh_site"]
    return site


def _page(template: str, status: int, **values: Any) -> Response:
    site = _site()
    html = render_template(template, repository=site.name, site=site, oai_base=oai_base(), **values)
    return Response(html, status, content_type=HTML_TYPE)


def _oai_identifier(local_id: str) -> str:
    return f"oai:{current_provider().settings.repository_identifier}:{local_id}"


def _local_id(identifier: str) -> str | None:
    prefix = f"oai:{current_provider().settings.repository_identifier}:"
    if identifier.startswith(prefix) and len(identifier) > len(prefix):
        return identifier[len(prefix) :]
    return None


def _crosswalk() -> Crosswalk:
    cache = current_app.extensions.setdefault("oaipmh_pages", {})
    if "crosswalk" not in cache:
        cache["crosswalk"] = Crosswalk.from_settings(current_provider().settings)
    crosswalk: Crosswalk = cache["crosswalk"]
    return crosswalk


def _titles(local_ids: list[str]) -> dict[str, landing.Value | None]:
    crosswalk = _crosswalk()
    fields = current_provider().store.get_fields_of(local_ids)
    return {lid: landing.title_of(f, crosswalk) for lid, f in fields.items()}


_stats_lock = threading.Lock()


def _stats() -> StoreStats:
    """The store's counts, as the last write kept them: a few rows, read at every visit, so
    they agree with the latest records listed beside them. A store last written by a
    version that kept none has them counted (its memberships scanned: 123 ms at a million
    records), at most every five minutes per process, not at every visit of `/`."""
    cache = current_app.extensions.setdefault("oaipmh_pages", {})
    with _stats_lock:
        counted = cache.get("stats")
        if counted is None or time.monotonic() - counted[0] > STATS_SECONDS:
            stats = current_provider().store.stats()
            if not stats.counted:
                return stats
            counted = cache["stats"] = (time.monotonic(), stats)
    cached: StoreStats = counted[1]
    return cached


__all__ = ["SetInfo", "blueprint"]
