"""The `oaipmh-server` command: load record files, serve the repository.

Commands parse their options, call the library and turn its errors into one clear message
and a non-zero exit: never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from .config import load_settings
from .errors import ConfigError, LoadBusy, LoadFailed, StoreUnavailable


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
@click.option(
    "--wait/--no-wait",
    default=None,
    help="While another load runs: wait for it, or stop at once (default: [load] wait).",
)
@click.option(
    "--sync",
    is_flag=True,
    help="The paths are the whole repository: every stored record they do not hold is "
    "withdrawn (a tombstone dated by the load), unless more than [load] sync_max_deleted "
    "percent of the stored records would be.",
)
@click.option(
    "--sync-allow-deletes",
    type=click.IntRange(min=0),
    metavar="N",
    help="With --sync: up to N records may be withdrawn, above [load] sync_max_deleted too.",
)
@click.option(
    "--changes",
    "changes_to",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
    metavar="FILE",
    help="Write a line per record the load changed (added, updated, deleted, withdrawn, "
    "then its id) to FILE, once it commits; - for standard output (the summary then goes "
    "to standard error).",
)
def load(
    paths: tuple[str, ...],
    progress: bool | None,
    wait: bool | None,
    sync: bool,
    sync_allow_deletes: int | None,
    changes_to: str | None,
) -> None:
    """Load record files (.json, .jsonl) or folders of them, all or nothing."""
    from tqdm import tqdm

    from .formats import build_formats
    from .ingest.load import Sync, load_paths

    if sync_allow_deletes is not None and not sync:
        raise click.UsageError("--sync-allow-deletes is a limit of --sync: give --sync too")
    settings = _settings()
    changes = _ChangesFile(changes_to) if changes_to is not None else None
    try:
        store = _open_store(settings)
    except BaseException:
        if changes is not None:
            changes.finish(committed=False)
        raise
    shown = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(unit=" records", disable=not shown, file=sys.stderr, leave=False, mininterval=0.5)

    def advance(records: int) -> None:
        bar.update(records)

    committed = False
    try:
        summary = load_paths(
            paths,
            store,
            settings,
            build_formats(settings),
            progress=advance,
            wait=settings.load_wait if wait is None else wait,
            on_wait=_say_waiting,
            sync=Sync(sync_allow_deletes) if sync else None,
            changes=None if changes is None else changes.write,
        )
        committed = True
    except LoadBusy as e:
        bar.close()
        raise click.ClickException(f"{e}; nothing was loaded (--wait waits for it)") from None
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
        from .store.failures import disk_full

        full = disk_full(settings.database_url, e.__cause__)
        why = f": {full}" if full else f" ({e})"
        raise click.ClickException(
            f"the database failed during the load{why}; nothing was loaded"
        ) from None
    finally:
        store.close()
        if changes is not None:
            changes.finish(committed)
    bar.close()
    to_stderr = changes_to == "-"  # standard output holds the changes alone
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"Loaded {summary.records} records: {summary.line()}.", err=to_stderr)
    if summary.clamped:
        click.echo(
            f"{summary.clamped} new record(s) dated at load time instead of their "
            "dc.date.accessioned, so incremental harvesters see them (keep_accessioned).",
            err=to_stderr,
        )
    _say_reevaluated(summary, "their definitions changed", err=to_stderr)


class _ChangesFile:
    """Where `load --changes FILE` writes: a temporary file beside FILE (made before the
    load, so a folder that cannot take it stops the load before it starts), moved onto FILE
    once the load committed, removed if it did not; for `-`, a temporary file copied to
    standard output. A failed load leaves FILE as it was: nothing it lists happened."""

    def __init__(self, target: str) -> None:
        import tempfile
        from pathlib import Path

        self.target = target
        self.handle: IO[str]
        self.name: str | None = None
        # The file outlives this method (a context manager's block): `finish` closes it.
        try:
            if target == "-":
                self.handle = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
            else:
                folder = Path(target).resolve().parent
                self.handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
                    "w", encoding="utf-8", dir=folder, prefix=".changes-", delete=False
                )
                self.name = self.handle.name
        except OSError as e:
            raise click.ClickException(
                f"--changes {target}: cannot write there ({e.strerror}); nothing was loaded"
            ) from None

    def write(self, kind: str, local_id: str) -> None:
        self.handle.write(f"{kind} {local_id}\n")

    def finish(self, committed: bool) -> None:
        """After the load: if it `committed`, its changes where they were asked for; else
        the temporary file removed."""
        import os
        import shutil

        try:
            if self.name is None:
                if committed:
                    self.handle.seek(0)
                    shutil.copyfileobj(self.handle, sys.stdout)
                    sys.stdout.flush()
                self.handle.close()
            elif committed:
                self.handle.close()
                os.chmod(self.name, 0o644)  # a list like any other, not a private file
                os.replace(self.name, self.target)
            else:
                self.handle.close()
                os.unlink(self.name)
        except OSError as e:
            if committed:
                raise click.ClickException(
                    f"the load committed, but --changes {self.target} could not be written: "
                    f"{e.strerror}"
                ) from None


@main.command("refresh-sets")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="While a load runs: wait for it, or stop at once (default: [load] wait).",
)
def refresh_sets(wait: bool | None) -> None:
    """Evaluate every record's virtual sets again ([virtual_sets]), as one write."""
    from .formats import build_formats
    from .ingest.load import refresh_sets as refresh

    settings = _settings()
    store = _open_store(settings)
    with _one_write(store, "changed", " (--wait waits for it)"):
        summary = refresh(
            store,
            settings,
            build_formats(settings),
            wait=settings.load_wait if wait is None else wait,
            on_wait=_say_waiting,
        )
    _say_reevaluated(summary, "as asked")


def _say_reevaluated(summary: Any, why: str, err: bool = False) -> None:
    """The records that entered and left virtual sets, and whether every record was
    evaluated again (`err`: on standard error)."""
    moves = "; ".join(
        f"{spec}: {entered} entered, {left} left"
        for spec, (entered, left) in sorted(summary.virtual_moves.items())
    )
    if summary.reevaluated:
        click.echo(
            f"Virtual sets evaluated again for every record ({why}); "
            f"{summary.redated} record(s) re-dated.",
            err=err,
        )
    if moves:
        click.echo(f"Virtual sets: {moves}.", err=err)


@main.command()
@click.argument("ids", nargs=-1, required=True)
def delete(ids: tuple[str, ...]) -> None:
    """Mark records deleted: tombstones dated now, kept in their sets. IDS are local ids
    (10722/212116) or the OAI identifiers served (oai:repository.example.org:10722/212116)."""
    from .formats import build_formats
    from .ingest.load import delete_records

    settings = _settings()
    ids = tuple(_local_id(i, settings.repository_identifier) for i in ids)
    store = _open_store(settings)
    with _one_write(store, "deleted"):
        summary = delete_records(
            ids,
            store,
            settings,
            build_formats(settings),
            wait=settings.load_wait,
            on_wait=_say_waiting,
        )
    click.echo(
        f"Deleted {summary.deleted} record(s); {len(set(ids)) - summary.deleted} already deleted."
    )


def _local_id(given: str, repository_identifier: str) -> str:
    """The local id an argument names: itself, or the local part of an OAI identifier
    (oai:<repository identifier>:<local id>, what harvesters and check reports show).
    One of another repository identifier is refused: deleting its local part here could
    delete a different record of the same local id."""
    from .setting_checks import REPOSITORY_IDENTIFIER

    scheme, _, rest = given.partition(":")
    repository, colon, local_id = rest.partition(":")
    if (
        scheme != "oai"
        or not colon
        or not local_id
        or not REPOSITORY_IDENTIFIER.fullmatch(repository)
    ):
        return given
    if repository != repository_identifier:
        raise click.ClickException(
            f"{given} is an OAI identifier of {repository}, not of this repository "
            f"({repository_identifier}); nothing was deleted"
        )
    return local_id


@main.command()
def stats() -> None:
    """Counts per set, deleted records, earliest and latest datestamp."""
    from .datestamps import format_datestamp

    settings = _settings()
    store = _open_store(settings)
    from .virtual_sets import META_KEY, stale_warning

    try:
        figures = store.stats()
        schema = store.schema()
        warning = stale_warning(settings, store.get_meta(META_KEY))
    except StoreUnavailable as e:
        raise click.ClickException(f"the database failed: {e}") from None
    finally:
        store.close()
    if warning is not None:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"records: {figures.records} ({figures.deleted} deleted)")
    for label, moment in (("earliest", figures.earliest), ("latest", figures.latest)):
        click.echo(f"{label} datestamp: {format_datestamp(moment) if moment else '-'}")
    for spec, (name, count) in figures.sets.items():
        click.echo(f"set {spec}: {count} ({name})")
    click.echo(f"schema: {schema.revision} ({_written_by(schema.written_by)})")


@main.command()
def migrate() -> None:
    """Bring the database's schema up to this version's (serve and load also do it)."""
    from . import __version__

    settings = _settings()
    store = _open_store(settings)  # opening the store migrates it, or says why it cannot
    store.close()
    change = store.migration
    if change.changed:
        click.echo(
            f"schema: {change.before or 'none'} → {change.after} (oaipmh-server {__version__})"
        )
    else:
        click.echo(f"schema: {change.after}, up to date ({_written_by(change.written_by)})")


@main.command()
@click.argument("destination", type=click.Path(path_type=str))
def backup(destination: str) -> None:
    """Copy the SQLite database to DESTINATION while it serves, even during a load."""
    from pathlib import Path

    from .errors import BackupFailed
    from .store.backups import back_up

    settings = _settings()
    try:
        done = back_up(settings.database_url, Path(destination))
    except BackupFailed as e:
        raise click.ClickException(str(e)) from None
    click.echo(
        f"Backed up {done.source} to {done.destination}: {done.records} records, "
        f"schema {done.revision or 'none'}, {done.size:,} bytes."
    )


def _written_by(version: str | None) -> str:
    if version is None:  # versions before 1.0.0 did not record it
        return "written by oaipmh-server before 1.0.0"
    return f"written by oaipmh-server {version}"


@main.command()
@click.argument("url", required=False)
@click.option(
    "--profile",
    type=click.Choice(["openaire", "base", "core", "driver"]),
    help="The aggregator whose rules apply (default: every rule of every profile).",
)
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="A report for people, or JSON for scripts.")  # fmt: skip
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on standard error (default: when it is a terminal).",
)
@click.option("--schema", "schemas", multiple=True, metavar="URL=FILE",
              help="URL: use FILE for the schema at URL (schemas not known offline).")  # fmt: skip
@click.option("--sample", default=200, show_default=True,
              help="URL: records of each format validated.")  # fmt: skip
def check(
    url: str | None,
    profile: str | None,
    output: str,
    progress: bool | None,
    schemas: tuple[str, ...],
    sample: int,
) -> None:
    """Check the stored records against aggregators' rules, or URL, a live endpoint.

    Without URL: every record against the profile's rules, a summary table, then one line
    per failure (ID: rule: detail); exit status 1 if a record fails a mandatory rule.
    With URL: the endpoint against the protocol and its advertised schemas, one line per
    rule; exit status 1 if any rule fails.
    """
    if url is not None:
        _check_endpoint(url, output, schemas, sample)
        return
    from tqdm import tqdm

    from .check.store import check_records, render_json, render_text

    settings = _settings()
    store = _open_store(settings)
    shown = sys.stderr.isatty() if progress is None else progress
    try:
        total = store.count_all() if shown else None
        with tqdm(total=total, unit=" records", disable=not shown, file=sys.stderr,
                  leave=False, mininterval=0.5) as bar:  # fmt: skip
            report = check_records(store.iter_records(), settings, profile, bar.update)
    except StoreUnavailable as e:
        raise click.ClickException(f"the database failed: {e}") from None
    finally:
        store.close()
    render = render_json if output == "json" else render_text
    with report:
        render(report, click.echo)
    if report.failed:
        sys.exit(1)


def _check_endpoint(url: str, output: str, schemas: tuple[str, ...], sample: int) -> None:
    import json

    from .check.endpoint import check_endpoint, http_fetch, render_text

    if not url.startswith(("http://", "https://")):
        raise click.ClickException(f"{url!r} is not an http(s) URL")
    given = {}
    for pair in schemas:
        schema_url, equals, path = pair.partition("=")
        if not equals or not path:
            raise click.ClickException(f"--schema {pair!r}: expected URL=FILE")
        given[schema_url] = path
    results = check_endpoint(url, http_fetch(), given, sample=sample)
    if output == "json":
        click.echo(json.dumps([r.__dict__ for r in results], indent=1))
    else:
        render_text(results, click.echo)
    if any(r.status == "fail" for r in results):
        sys.exit(1)


@main.group()
def config() -> None:
    """The configuration: check it before serving it."""


@config.command("check")
def config_check() -> None:
    """Read the configuration as `serve` will (OAIPMH_CONFIG, the environment, secret files,
    systemd credentials); print each setting and where it came from, secrets masked; exit 1
    naming every mistake. Nothing is started, and the database is not opened."""
    from .config import check_settings, describe_settings
    from .formats import build_formats

    checked = check_settings()
    problems = list(checked.problems)
    if checked.settings is not None:
        try:
            build_formats(checked.settings)  # [formats] names formats the registry must have
        except ConfigError as e:
            problems.extend(e.problems)
    for line in describe_settings(checked):
        click.echo(line)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        click.echo(f"{len(problems)} mistake(s); serve would refuse to start", err=True)
        sys.exit(1)
    click.echo("configuration OK", err=True)


@main.command()
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
    from .web.app import create_app

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
    if not settings.base_url and not settings.socket and not _is_loopback(settings.host):
        click.echo(
            f"warning: serving on {settings.host} without [server] base_url (development "
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


def _run_gunicorn(settings: Any, given: dict[str, Any], verbose: bool) -> None:
    from .web.serving import gunicorn_options, run

    # The settings the master last read and found good: every worker it starts (at
    # first, on a reload, or in place of one that ended) takes these, never a file
    # changed since, so a mistake saved in it cannot stop a worker from starting.
    checked = [settings]

    def load() -> Any:
        from .web.app import create_app

        _log_to_stderr(verbose)
        return create_app(settings=checked[0])

    def check() -> None:
        """Before a reload (HUP) starts new workers, in the master: the configuration
        read again and checked, and the store opened once, as a worker will."""
        from .web.app import create_app

        provider = create_app(given).extensions["oaipmh"]
        provider.store.close()
        checked[0] = provider.settings

    run(gunicorn_options(settings, verbose), load, check)


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
    the libraries' information lines (Alembic's "Context impl …", once per worker) only
    when asked (--verbose), their warnings always."""
    import logging

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr
    )
    logging.getLogger("oaipmh_server").setLevel(logging.INFO)


@contextmanager
def _one_write(store: Any, undone: str, busy_hint: str = "") -> Iterator[None]:
    """A write other than a load (refresh-sets, delete), its store closed after it, and its
    failures as one message each, saying that nothing was `undone`: all-or-nothing."""
    try:
        yield
    except LoadBusy as e:
        raise click.ClickException(f"{e}; nothing was {undone}{busy_hint}") from None
    except LoadFailed as failure:
        for problem in failure.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"nothing was {undone}, the store is unchanged") from None
    except StoreUnavailable as e:
        raise click.ClickException(f"the database failed ({e}); nothing was {undone}") from None
    finally:
        store.close()


def _say_waiting(who: str) -> None:
    click.echo(f"{who}; waiting for it to finish (Ctrl-C to stop)", err=True)


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
