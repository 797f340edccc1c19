"""The web edge: /oai over GET and POST. Only this module (with app and cli) knows Flask.

The view hands the core the request's (name, value) pairs and the base URL, and sends back
what the core answers, always as HTTP 200 text/xml: OAI-PMH errors are documents, not HTTP
statuses. HTTP statuses are for what is not OAI-PMH at all: an unsupported method (405),
an oversized request (413, 414), a body that is not a form (415), a database that cannot
answer now (503 with Retry-After).
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from . import datestamps
from .app import MAX_QUERY_STRING, Provider
from .errors import StoreUnavailable
from .protocol import Context, respond

blueprint = Blueprint("oai", __name__)
log = logging.getLogger(__name__)

XML_TYPE = "text/xml; charset=utf-8"
FORM_TYPE = "application/x-www-form-urlencoded"
RETRY_AFTER_SECONDS = 30
SAFE_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/\-]*)?")


@blueprint.route("/oai", methods=["GET", "POST"])
def oai() -> Response:
    provider: Provider = current_app.extensions["oaipmh"]
    if len(request.query_string) > MAX_QUERY_STRING:
        return _plain("Request-URI too long.\n", 414)
    if request.method == "POST":
        if request.content_length and request.mimetype != FORM_TYPE:
            return _plain(f"POST a body of type {FORM_TYPE}.\n", 415)
        pairs = [*request.args.items(multi=True), *request.form.items(multi=True)]
    else:
        pairs = list(request.args.items(multi=True))
    context = Context(
        settings=provider.settings,
        formats=provider.formats,
        source=provider.store,
        base_url=provider.settings.base_url or _request_base_url(),
        now=datestamps.now(),
    )
    try:
        reply = respond(pairs, context)
    except StoreUnavailable as e:
        log.warning("store unavailable: %s", e.__cause__ or e)
        response = _plain("The repository's database is unavailable; try again later.\n", 503)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return Response(b"".join(reply.body), status=200, content_type=XML_TYPE)


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


def _request_base_url() -> str:
    """The URL this request came to, as the baseURL when none is configured. The Host
    header is the client's to choose: one that would not make a valid URI is not echoed."""
    url = request.base_url
    if SAFE_URL.fullmatch(url):
        return url
    return f"{request.scheme}://localhost{request.script_root}/oai"


def _plain(text: str, status: int) -> Response:
    return Response(text, status=status, content_type="text/plain; charset=utf-8")
