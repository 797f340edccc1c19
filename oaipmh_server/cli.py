"""The `oaipmh-server` command: load record files, serve the repository.

Commands parse their options, call the library and turn its errors into one clear message
and a non-zero exit: never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .config import load_settings
from .errors import ConfigError, LoadFailed, StoreUnavailable


@click.group()
@click.version_option(package_name="oaipmh-server")
def main() -> None:
    """An OAI-PMH 2.0 data provider for DSpace-style Dublin Core records.

    Configuration: OAIPMH_CONFIG (a TOML file like config/oaipmh.toml), OAIPMH_DATABASE_URL,
    OAIPMH_BASE_URL; the environment wins over the file.
    """
    from .config import unknown_variables

    for warning in unknown_variables():  # every command: a misspelt name changes nothing
        click.echo(f"warning: {warning}", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on standard error (default: when it is a terminal).",
)
def load(paths: tuple[str, ...], progress: bool | None) -> None:
    """Load record files (.json, .jsonl) or folders of them, all or nothing."""
    from tqdm import tqdm

    from .formats import build_formats
    from .ingest.load import load_paths

    settings = _settings()
    store = _open_store(settings)
    shown = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(unit=" records", disable=not shown, file=sys.stderr, leave=False, mininterval=0.5)

    def advance(records: int) -> None:
        bar.update(records)

    try:
        summary = load_paths(
            paths,
            store,
            settings,
            build_formats(settings),
            progress=advance,
        )
    except LoadFailed as failure:
        bar.close()
        for problem in failure.problems:
            click.echo(str(problem), err=True)
        if failure.total > len(failure.problems):
            click.echo(f"… and {failure.total - len(failure.problems)} more problem(s)", err=True)
        raise click.ClickException(
            f"{failure.total} problem(s) found; nothing was loaded, the store is unchanged."
        ) from None
    except StoreUnavailable as e:
        bar.close()
        raise click.ClickException(
            f"the database failed during the load ({e}); nothing was loaded"
        ) from None
    finally:
        store.close()
    bar.close()
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"Loaded {summary.records} records: {summary.line()}.")
    if summary.clamped:
        click.echo(
            f"{summary.clamped} new record(s) dated at load time instead of their "
            "dc.date.accessioned, so incremental harvesters see them (keep_accessioned)."
        )


@main.command()
@click.argument("ids", nargs=-1, required=True)
def delete(ids: tuple[str, ...]) -> None:
    """Mark records deleted: tombstones dated now, kept in their sets."""
    from .formats import build_formats
    from .ingest.load import delete_records

    settings = _settings()
    store = _open_store(settings)
    try:
        summary = delete_records(ids, store, settings, build_formats(settings))
    except LoadFailed as failure:
        for problem in failure.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException("nothing was deleted, the store is unchanged") from None
    except StoreUnavailable as e:
        raise click.ClickException(f"the database failed ({e}); nothing was deleted") from None
    finally:
        store.close()
    click.echo(
        f"Deleted {summary.deleted} record(s); {len(set(ids)) - summary.deleted} already deleted."
    )


@main.command()
def stats() -> None:
    """Counts per set, deleted records, earliest and latest datestamp."""
    from .datestamps import format_datestamp

    settings = _settings()
    store = _open_store(settings)
    try:
        figures = store.stats()
    except StoreUnavailable as e:
        raise click.ClickException(f"the database failed: {e}") from None
    finally:
        store.close()
    click.echo(f"records: {figures.records} ({figures.deleted} deleted)")
    for label, moment in (("earliest", figures.earliest), ("latest", figures.latest)):
        click.echo(f"{label} datestamp: {format_datestamp(moment) if moment else '-'}")
    for spec, (name, count) in figures.sets.items():
        click.echo(f"set {spec}: {count} ({name})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes.",
)
@click.option("--dev", is_flag=True, help="Flask's development server with its reloader instead.")
def serve(host: str, port: int, workers: int, dev: bool) -> None:
    """Serve /oai over HTTP (gunicorn; --dev for Flask's development server)."""
    _share_metrics_between_workers()
    from .app import create_app

    try:
        app = create_app()  # validates settings and opens the store before anything listens
    except (ConfigError, StoreUnavailable) as e:
        raise click.ClickException(str(e)) from None
    if dev:
        _log_to_stderr()
        app.run(host=host, port=port, debug=True)
        return
    app.extensions["oaipmh"].store.close()
    _run_gunicorn(host, port, workers)


def _run_gunicorn(host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "timeout": 120,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from .app import create_app

            _log_to_stderr()
            return create_app()

    Application().run()


def _share_metrics_between_workers() -> None:
    """prometheus_client's multiprocess mode: every worker writes its counts in one fresh
    folder, and /metrics adds them up. It must be set before the metrics are imported."""
    import os
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="oaipmh-metrics-")


def _log_to_stderr() -> None:
    """The server's own lines (one JSON access line per request, warnings) on stderr."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def _settings() -> Any:
    from .formats import build_formats

    try:
        settings = load_settings()
        build_formats(settings)  # [formats] names formats the registry must have
        return settings
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _open_store(settings: Any) -> Any:
    from .store import SqlStore

    try:
        return SqlStore(
            settings.database_url,
            token_secret=settings.token_secret,
            password=settings.database_password,
        )
    except StoreUnavailable as e:  # what could not be opened, and why (store.failures)
        raise click.ClickException(str(e)) from None
