"""The serve command: gunicorn (or Flask's development server) over the configured store."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import ConfigError, StoreUnavailable
from .opening import refuse_vanishing_database


@click.command()
@click.option("--host", help="Address to listen on ([server] host, OAIPMH_HOST; 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535),
              help="Port to listen on ([server] port, OAIPMH_PORT; 5000).")  # fmt: skip
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="gunicorn worker processes ([server] workers, OAIPMH_WORKERS; 2).",
)
@click.option(
    "--socket",
    "unix_socket",
    metavar="PATH",
    help="Listen on this Unix socket instead of host:port ([server] socket, OAIPMH_SOCKET).",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Also show gunicorn's and the libraries' own start-up and information lines.",
)
@click.option(
    "--dev",
    is_flag=True,
    help="Flask's development server with its reloader instead (and Werkzeug's debugger, "
    "on a loopback address only).",
)
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    unix_socket: str | None,
    verbose: bool,
    dev: bool,
) -> None:
    """Serve /oai over HTTP (gunicorn; --dev for Flask's development server)."""
    if not dev:  # the development server answers in one process
        _share_metrics_between_workers()
    try:
        _serve(host, port, workers, unix_socket, verbose, dev)
    finally:
        _remove_shared_metrics()


def _serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    unix_socket: str | None,
    verbose: bool,
    dev: bool,
) -> None:
    from ..web.app import create_app

    # The command line wins over the environment and the file; --host or --port given
    # there listen on TCP even when the configuration names a socket.
    given: dict[str, Any] = {"host": host, "port": port, "workers": workers}
    given = {name: value for name, value in given.items() if value is not None}
    if unix_socket is not None:
        given["socket"] = unix_socket
    elif host is not None or port is not None:
        given["socket"] = ""
    try:
        app = create_app(given)  # validates settings and opens the store before anything listens
    except (ConfigError, StoreUnavailable) as e:
        raise click.ClickException(str(e)) from None
    settings = app.extensions["oaipmh"].settings
    refuse_vanishing_database(settings)
    if settings.socket:
        _refuse_unusable_socket(settings.socket, unix_socket is not None)
    if not settings.base_url and not settings.socket and not _is_loopback(settings.host):
        click.echo(
            f"warning: serving on {settings.host} without [repository] base_url (development "
            "mode): the Host header each client sends decides every URL the server "
            "advertises (baseURL, page links, Signposting, sitemaps); set base_url to "
            "serve others",
            err=True,
        )
    if dev:
        _log_to_stderr(verbose)
        if settings.socket is not None:
            raise click.ClickException("--dev listens on host:port only, not on a Unix socket")
        debugger = _is_loopback(settings.host)
        if not debugger:
            click.echo(
                f"--dev on {settings.host}, not a loopback address: Werkzeug's interactive "
                "debugger is off (its console runs Python for whoever reaches it); the "
                "reloader is on.",
                err=True,
            )
        app.run(host=settings.host, port=settings.port, debug=True, use_debugger=debugger)
        return
    app.extensions["oaipmh"].store.close()
    _run_gunicorn(settings, given, verbose)


def _refuse_unusable_socket(path: str, from_command_line: bool) -> None:
    """A socket path taken by something else, refused in one line before gunicorn starts:
    found by fuzzing, a folder there was gunicorn's traceback (ValueError: not a socket).
    A folder that does not exist yet is left to gunicorn (systemd's RuntimeDirectory= may
    make it; gunicorn's own lines say so if not)."""
    import os
    import stat

    from ..config import setting_source

    if os.path.exists(path) and not stat.S_ISSOCK(os.stat(path).st_mode):
        source = "--socket" if from_command_line else setting_source("socket")
        raise click.ClickException(f"{source}: server.socket: {path} is there and is not a socket")


def _run_gunicorn(settings: Any, given: dict[str, Any], verbose: bool) -> None:
    from ..web.serving import gunicorn_options, run

    # The settings the master last read and found good: every worker it starts (at
    # first, on a reload, or in place of one that ended) takes these, never a file
    # changed since, so a mistake saved in it cannot stop a worker from starting.
    checked = [settings]

    def load() -> Any:
        from ..web.app import create_app

        _log_to_stderr(verbose)
        return create_app(settings=checked[0])

    def check() -> None:
        """Before a reload (HUP) starts new workers, in the master: the configuration
        read again and checked, and the store opened once, as a worker will."""
        from ..web.app import create_app

        provider = create_app(given).extensions["oaipmh"]
        provider.store.close()
        refuse_vanishing_database(provider.settings)
        checked[0] = provider.settings

    try:
        run(gunicorn_options(settings, verbose), load, check)
    except SystemExit as stopped:  # gunicorn's way out, its workers stopped
        _end_at_once(stopped)
        raise


def _end_at_once(stopped: SystemExit) -> None:
    """The master's end once gunicorn has stopped: the metrics folder removed, its lines
    flushed, then the process ends with gunicorn's status (os._exit), without Python's
    own finalization, which freed every object of the few hundred modules the master
    imported for memory the process gives back anyway (0.15 CPU-s a stop). A status that
    is not a number (a message) is left to Python, which prints it."""
    from ..web.serving import end_now

    if not isinstance(stopped.code, int | None):
        return
    _remove_shared_metrics()
    end_now(stopped.code)


def _is_loopback(host: str) -> bool:
    """Whether `host` only listens where this machine alone connects (127.0.0.0/8, ::1)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _share_metrics_between_workers() -> None:
    """prometheus_client's multiprocess mode: every worker writes its counts in one fresh
    folder, and /metrics adds them up. It must be set before the metrics are imported."""
    import os
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.mkdtemp(prefix="oaipmh-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        _made_metrics_folders.append((os.getpid(), folder))


# The metrics folders `serve` made itself (not one the operator named), with the process
# that made them: a worker leaves gunicorn through the same `finally` as the master.
_made_metrics_folders: list[tuple[int, str]] = []


def _remove_shared_metrics() -> None:
    """The folder of the workers' counts, once gunicorn has stopped: counts are of one
    run of the server, and a folder left behind per run fills /tmp."""
    import os
    import shutil

    for pid, folder in list(_made_metrics_folders):
        if pid == os.getpid():
            _made_metrics_folders.remove((pid, folder))
            shutil.rmtree(folder, ignore_errors=True)
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == folder:
                del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _log_to_stderr(verbose: bool = False) -> None:
    """The server's own lines (one JSON access line per request, warnings) on stderr;
    the libraries' information lines (gunicorn's "Booting worker …", Alembic's when a
    schema is created or migrated) only when asked (--verbose), their warnings always."""
    import logging

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr
    )
    logging.getLogger("oaipmh_server").setLevel(logging.INFO)
