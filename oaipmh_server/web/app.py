"""The Flask application factory: settings, store and formats, wired once per process."""

from __future__ import annotations

import codecs
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from flask import Flask, Request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import MapAdapter
from werkzeug.utils import cached_property

from ..config import load_settings
from ..errors import StoreUnavailable
from ..formats import build_formats
from ..settings import Settings
from ..store import SqlStore
from ..virtual_sets import META_KEY, stale_warning
from . import pages, resourcesync, sitemaps, views  # noqa: F401 (sitemaps adds its routes to pages.blueprint)
from .admission import HarvestLimit
from .provider import MAX_BODY, Provider, link_root


def _as_escapes(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: the bytes that are not UTF-8 written as their %-escapes."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(f"%{byte:02X}" for byte in bad), error.end


# A byte that is not UTF-8 is read as its %-escape, as Werkzeug reads an escape that is
# not UTF-8 (%E9 stays %E9); registered here, not Werkzeug's own handler of that name.
QUOTED = "oaipmh_server.percent_escapes"
codecs.register_error(QUOTED, _as_escapes)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def create_app(
    overrides: Mapping[str, Any] | None = None, *, settings: Settings | None = None
) -> Flask:
    """The app, its settings read (with `overrides`), or given as already read and checked
    (`serve`'s workers take the ones their master checked: see cli/serving.py, _run_gunicorn).
    What is amiss with the settings is said where they are read, once per start or reload:
    the master's workers, given them, do not say it again."""
    read_here = settings is None
    if settings is None:
        settings = load_settings(overrides)
    harvest_limit = None  # first: a folder it refuses stops the app before the store is open
    if settings.max_concurrent_lists:
        harvest_limit = HarvestLimit.for_database(
            settings.max_concurrent_lists, settings.database_url, settings.places_folder
        )
    store = SqlStore(
        settings.database_url,
        token_secret=settings.token_secret,
        password=settings.database_password,
        serving=True,
    )
    _serving_read_only(store)
    if read_here:
        _warn_of_stale_virtual_sets(settings, store)
        pages.warn_of_unreadable_accent(settings)
    app = _App(__name__)
    app.config.update(
        # views._body counts a body's bytes; Werkzeug's stream refuses any read at its
        # limit, so at MAX_BODY a body of exactly MAX_BODY bytes without Content-Length
        # (chunked) could not be read to its end.
        MAX_CONTENT_LENGTH=MAX_BODY + 1,
        MAX_FORM_MEMORY_SIZE=MAX_BODY,
        MAX_FORM_PARTS=100,
    )
    app.extensions["oaipmh"] = Provider(settings, store, build_formats(settings), harvest_limit)

    if settings.trusted_proxies or settings.socket:
        app.wsgi_app = _ForwardedFrom(  # type: ignore[method-assign]
            app.wsgi_app, settings.trusted_proxies, unix=settings.socket is not None
        )

    app.register_blueprint(views.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(resourcesync.blueprint)
    return app


class _Request(Request):
    """Flask's request, its query string's arguments read whatever bytes it holds."""

    @cached_property
    def args(self) -> ImmutableMultiDict[str, str]:
        """The query's arguments as Werkzeug reads them (an escape that is not UTF-8, %E9,
        stays %E9), a raw byte that is not UTF-8 too: a server hands the bytes on as they
        came, and Werkzeug's own decoding of them raised (a 500 on every page reading an
        argument). /oai reads the bytes itself (views._arguments)."""
        return ImmutableMultiDict(
            parse_qsl(
                self.query_string.decode("utf-8", QUOTED),
                keep_blank_values=True,
                errors=QUOTED,
            )
        )


class _App(Flask):
    """Flask, its links made under the script root as a URL writes it (link_root): url_for
    (in the pages' templates, an operator's too, and in provider.site_link) puts the
    root before each path as the request brought it, decoded, so under `/my repo` every
    page linked `/my repo/records/…`, a raw space, and under `/a#b` a link whose path
    ended at the '#'. Only building reads the adapter's script name: routing reads the
    path after it (PATH_INFO), and a redirect Werkzeug makes is now encoded too."""

    request_class = _Request

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        adapter = super().create_url_adapter(request)
        if adapter is not None and request is not None:
            adapter.script_name = link_root(request.root_path) + "/"
        return adapter


def _serving_read_only(store: SqlStore) -> None:
    """A store this process cannot write is served as it stands (store/readonly.py), once
    it holds what serving needs; said once per process, since lists then lag as the
    mark does."""
    try:
        store.check_serving()
    except StoreUnavailable:
        store.close()
        raise
    if store.read_only is not None:
        logging.getLogger("oaipmh_server").info(
            "serving read-only: %s; lists are cut off at the mark the writes keep",
            store.read_only,
        )


def _warn_of_stale_virtual_sets(settings: Settings, store: SqlStore) -> None:
    """Definitions of virtual sets changed without a load since: the server goes on serving
    the stored memberships, which the records' datestamps account for, and says so."""

    try:
        warning = stale_warning(settings, store.get_meta(META_KEY))
    except StoreUnavailable:
        return  # the first request will say so
    if warning is not None:
        logging.getLogger("oaipmh_server").warning("warning: %s", warning)


class _ForwardedFrom:
    """X-Forwarded-Proto, -Host, -Port, -Prefix and -For, honoured (as one proxy sets them,
    by Werkzeug's ProxyFix) on requests from the configured proxies only: from anyone
    else they would let a client choose the advertised baseURL's scheme and host."""

    def __init__(
        self, wsgi_app: WSGIApplication, proxies: tuple[str, ...], unix: bool = False
    ) -> None:
        self.direct = wsgi_app
        self.forwarded = ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
        self.networks = [ipaddress.ip_network(proxy) for proxy in proxies]
        # Served on a Unix socket ([server] socket): its peers have no address, and are the
        # processes its file mode lets in (0660: the proxy), believed as gunicorn does.
        self.unix = unix

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.unix and not environ.get("REMOTE_ADDR"):
            return self.forwarded(environ, start_response)
        try:
            peer = ipaddress.ip_address(environ.get("REMOTE_ADDR") or "")
        except ValueError:
            return self.direct(environ, start_response)
        if any(peer in network for network in self.networks):
            return self.forwarded(environ, start_response)
        return self.direct(environ, start_response)
