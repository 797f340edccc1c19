"""The OAI-PMH endpoint over HTTP: /oai over GET and POST, handed to the protocol core.

The view hands the core the request's (name, value) pairs and the base URL, and sends back
what the core answers, always as HTTP 200 text/xml: OAI-PMH errors are documents, not HTTP
statuses. HTTP statuses are for what is not OAI-PMH at all: an unsupported method (405),
an oversized request (413, 414), a body that is not a form (415), a database that cannot
answer now (503 with Retry-After).
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import logging
import time
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from importlib import resources
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from flask import Blueprint, Response, g, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from werkzeug.routing import RequestRedirect

from .. import datestamps
from ..errors import StoreUnavailable
from ..protocol import COMPRESSIONS, Context, Reply, respond
from ..tokens import peek
from . import metrics
from .provider import MAX_BODY, MAX_QUERY_STRING, Provider, current_provider, request_url

blueprint = Blueprint("oai", __name__)
log = logging.getLogger(__name__)
access_log = logging.getLogger("oaipmh_server.access")

XML_TYPE = "text/xml; charset=utf-8"
SCHEMAS = frozenset({"dim.xsd", "qualifieddc.xsd"})
FORM_TYPE = "application/x-www-form-urlencoded"


def oai() -> Response:
    """The OAI-PMH endpoint, at every path of [server] paths (see `_routes`)."""
    provider = current_provider()
    if len(request.query_string) > MAX_QUERY_STRING:
        return _plain("Request-URI too long.\n", 414)
    pairs = query_arguments(request.query_string)
    if request.method == "POST":
        body = _body()
        if body and request.mimetype != FORM_TYPE:
            return _plain(f"POST a body of type {FORM_TYPE}.\n", 415)
        pairs += query_arguments(body)
    context = Context(
        settings=provider.settings,
        formats=provider.formats,
        source=provider.store,
        base_url=_base_url(provider.settings.base_url, provider.settings.paths),
        now=datestamps.now(),
    )
    g.arguments = pairs
    with list_place(pairs) as admitted:
        if not admitted:
            response = _plain("Too many harvests at once; try again later.\n", 503)
            response.headers["Retry-After"] = str(provider.settings.retry_after)
            return response
        return _answer(pairs, context)


def list_place(pairs: list[tuple[str, str]]) -> AbstractContextManager[bool]:
    """A place under [server] max_concurrent_lists for these arguments when they ask for
    a list (ListRecords, ListIdentifiers), held while the list is made: /oai and every
    page that runs one (/oai/view, which costs more than /oai, would otherwise walk
    around the limit). Yields False when none is free: the caller answers 503."""
    verbs = [value for name, value in pairs if name == "verb"]
    if verbs not in (["ListRecords"], ["ListIdentifiers"]):
        return nullcontext(True)
    return place(any(name == "resumptionToken" for name, _ in pairs))


@contextmanager
def place(resuming: bool) -> Iterator[bool]:
    """A flow-control place (admission.HarvestLimit), counted as throttled when none is free;
    always True when the server has no limit."""
    provider = current_provider()
    if provider.harvest_limit is None:
        yield True
        return
    with provider.harvest_limit.take(resuming) as admitted:
        if not admitted:
            metrics.THROTTLED.labels("busy").inc()
        yield admitted


def _body() -> bytes:
    """The POST body, counted by the bytes actually read: a chunked body has no
    Content-Length to check beforehand. Past MAX_BODY bytes: 413."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RequestEntityTooLarge()
    # A coding the server would not undo (gunicorn passes `gzip, chunked` on, dechunked
    # but still gzipped): the form would be read as garbage, so refused, not misread.
    codings = request.headers.get("Transfer-Encoding", "").lower().replace(" ", "")
    if codings not in ("", "chunked"):
        raise BadRequest()
    if request.headers.get("Content-Encoding", "identity").lower().strip() != "identity":
        raise UnsupportedMediaType()
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := request.stream.read(16 * 1024):
            size += len(chunk)
            if size > MAX_BODY:
                raise RequestEntityTooLarge()
            chunks.append(chunk)
    except OSError:  # the client stopped sending (serving.IDLE_SECONDS) or went away
        raise BadRequest() from None
    except HTTPException:  # 413 above, or Werkzeug's own for a body cut short
        raise
    except Exception as e:
        # The WSGI server's own body parser refusing the framing (gunicorn raises its
        # ParseException subclasses for a chunk size `0x0` or `-1`, a bad terminator, a
        # Content-Length trailer): the client's mistake, a 400 and one line, not a 500.
        log.warning("malformed request body: %s: %s", type(e).__name__, e)
        raise BadRequest() from None
    return b"".join(chunks)


def query_arguments(encoded: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a query string or form body. A byte that is not UTF-8
    (raw or %-escaped) becomes a lone surrogate, which the core refuses as an illegal
    character: the argument is a badArgument (the verb a badVerb), never dropped unseen."""
    return parse_qsl(
        encoded.decode("utf-8", "surrogateescape"),
        keep_blank_values=True,
        encoding="utf-8",
        errors="surrogateescape",
    )


@blueprint.record_once
def _routes(state: BlueprintSetupState) -> None:
    """One rule per configured path: /oai, and DSpace's /oai/request, so harvesters
    registered with a DSpace endpoint need no change."""
    provider: Provider = state.app.extensions["oaipmh"]
    for path in provider.settings.paths:
        state.add_url_rule(path, "oai", oai, methods=["GET", "POST"])


def _base_url(configured: str | None, paths: tuple[str, ...]) -> str:
    """The baseURL echoing the path asked: the configured one with its ending path (one
    of `paths`) replaced by this request's, else the URL the request came to."""
    if configured is None:
        return request_url(request.path)
    asked = request.url_rule.rule if request.url_rule is not None else request.path
    for path in sorted(paths, key=len, reverse=True):
        if configured.endswith(path):
            return configured[: -len(path)] + asked
    return configured


def _answer(pairs: list[tuple[str, str]], context: Context) -> Response:
    try:
        reply = respond(pairs, context)
    except StoreUnavailable as e:
        return _unavailable(e)
    g.reply = reply
    return _compressed(b"".join(reply.body))


@blueprint.route("/schemas/<name>")
def schema(name: str) -> Response:
    """The schemas this server advertises that nobody else publishes (dim, DSpace's qdc
    container), from package data: an advertised schema URL must resolve."""
    if name not in SCHEMAS:
        return _plain("No such schema.\n", 404)
    body = resources.files("oaipmh_server.schemas").joinpath(name).read_bytes()
    return Response(body, content_type="application/xml; charset=utf-8")


@blueprint.route("/metrics")
def metrics_page() -> Response:
    """Prometheus text format: requests per verb, error codes, latency, records, 503s,
    and the store's gauges. Only to [server] metrics_allow (the client address as the
    access log has it); to anyone else 404, as if there were no such page."""
    provider = current_provider()
    if not _allowed(request.remote_addr, provider.settings.metrics_allow):
        return _plain("404 Not Found\n", 404)
    try:
        body, content_type = metrics.exposition(provider.store)
    except StoreUnavailable as e:
        return _unavailable(e)
    return Response(body, status=200, content_type=content_type)


def _allowed(address: str | None, networks: tuple[str, ...]) -> bool:
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        return False  # no address (a Unix socket's peer without a proxy's header)
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return any(client in ipaddress.ip_network(network) for network in networks)


@blueprint.route("/healthz")
def healthz() -> Response:
    """For load balancers and monitoring: 200 when the database answers and a list's
    page could read its tables, else 503 (store.health)."""
    provider = current_provider()
    try:
        records = provider.store.health()
    except StoreUnavailable as e:
        # In JSON as its 200 is, for a monitor that reads the body; logged, counted and
        # with Retry-After as every other 503 of the database.
        response = _unavailable(e)
        response.set_data(json.dumps({"status": "unavailable"}) + "\n")
        response.content_type = "application/json"
        return response
    body = json.dumps({"status": "ok", "records": records}) + "\n"
    return Response(body, status=200, content_type="application/json")


@blueprint.before_app_request
def _start_clock() -> None:
    g.started = time.perf_counter()


@blueprint.before_app_request
def _redirect_by_path() -> Response | None:
    """The routing's redirect (//oai → /oai, 308) says where by path alone: Werkzeug's
    makes a URL of the Host header, and one with a port no URL can have (x:99999) failed
    as the response was sent, a 500."""
    redirect = request.routing_exception
    if not isinstance(redirect, RequestRedirect):
        return None
    parts = urlsplit(redirect.new_url)
    response = _plain(f"{redirect.code} {redirect.name}\n", redirect.code)
    response.headers["Location"] = urlunsplit(("", "", parts.path, parts.query, ""))
    return response


@blueprint.after_app_request
def _log_access(response: Response) -> Response:
    """One structured line per request: when, who (the client's address: X-Forwarded-For
    only from [server] trusted_proxies, see app._ForwardedFrom; its user agent), what was
    asked, what was answered, how fast."""
    reply: Reply | None = g.get("reply")
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "client": request.remote_addr or None,
        "agent": (request.user_agent.string or "")[:300] or None,
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "verb": reply.verb if reply else None,
        "arguments": {name[:40]: value[:200] for name, value in g.get("arguments", [])},
        "records": reply.records if reply else 0,
        "errors": reply.errors if reply else [],
        "harvest": _harvest(reply),
        "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1),
    }
    access_log.info(json.dumps(line, ensure_ascii=True))
    if reply is not None:
        verb = reply.verb or "none"
        metrics.REQUESTS.labels(verb).inc()
        metrics.LATENCY.labels(verb).observe(line["ms"] / 1000)
        if reply.records:
            metrics.RECORDS.labels(verb).inc(reply.records)
        for code in reply.errors:
            metrics.ERRORS.labels(code).inc()
    return response


def _harvest(reply: Reply | None) -> dict[str, object] | None:
    """The access line's `harvest`: which list chain the request belongs to and where in it,
    so `oaipmh-server harvests` can tell a harvest followed to its last page from one that
    stopped. A page served says so itself; a request that carried a token but was turned
    away (503) or refused says what its token claims (read unchecked: only a log)."""
    if reply is not None and reply.page is not None:
        page = reply.page
        return {"id": page.harvest, "cursor": page.cursor, "count": page.count,
                "size": page.size, "more": page.more}  # fmt: skip
    tokens = [value for name, value in g.get("arguments", []) if name == "resumptionToken"]
    if len(tokens) != 1:
        return None
    harvest, cursor = peek(tokens[0])
    return None if harvest is None and cursor is None else {"id": harvest, "cursor": cursor}


def _compressed(document: bytes) -> Response:
    """gzip or deflate when the client accepts it (3.1.3), at level 1: most of the size
    saved for a fraction of the time level 6 would cost on every page."""
    response = Response(document, status=200, content_type=XML_TYPE)
    response.headers["Vary"] = "Accept-Encoding"
    if request.headers.get("Accept-Encoding", "identity").strip().lower() == "identity":
        return response  # what harvesters mostly send, or nothing: not parsed
    accepted = request.accept_encodings
    for coding in COMPRESSIONS:
        if accepted[coding] > 0:
            if coding == "gzip":
                response.set_data(gzip.compress(document, compresslevel=1, mtime=0))
            else:
                response.set_data(zlib.compress(document, 1))
            response.headers["Content-Encoding"] = coding
            break
    return response


def _unavailable(error: StoreUnavailable) -> Response:
    log.warning("store unavailable: %s", _one_line(str(error.__cause__ or error)))
    metrics.THROTTLED.labels("database").inc()
    response = _plain("The repository's database is unavailable; try again later.\n", 503)
    provider = current_provider()
    response.headers["Retry-After"] = str(provider.settings.retry_after)
    return response


def _one_line(message: str) -> str:
    """The driver's message as one log line: logs are read line by line (journald, a
    shipper), and SQLAlchemy's pointer to its own web page names nothing of this server."""
    message = message.split("(Background on this error at:")[0]
    return " ".join(message.split())


@blueprint.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """Werkzeug's own errors (404, 405, 413, …) as short plain text, headers kept."""
    response = _plain(f"{error.code} {error.name}\n", error.code or 500)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


@blueprint.app_errorhandler(Exception)
def unexpected(error: Exception) -> Response:
    """A bug: logged with its traceback here, never shown to the client."""
    log.exception("unexpected error", exc_info=error)
    return _plain("Internal error.\n", 500)


def _plain(text: str, status: int) -> Response:
    return Response(text, status=status, content_type="text/plain; charset=utf-8")
