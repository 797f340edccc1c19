"""The commands that look after the store itself: stats, migrate, grants, backup and copy."""

from __future__ import annotations

import click

from ..errors import StoreUnavailable
from .opening import open_store, read_settings


@click.command()
def stats() -> None:
    """Counts per set, deleted records, earliest and latest datestamp."""
    from ..datestamps import format_datestamp

    settings = read_settings()
    store = open_store(settings, existing=True)
    from ..virtual_sets import META_KEY, stale_warning

    try:
        figures = store.stats()
        schema = store.schema()
        warning = stale_warning(settings, store.get_meta(META_KEY))
    except StoreUnavailable as e:
        raise click.ClickException(store.failure(e)) from None
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


@click.command()
@click.option(
    "--read-only-servers",
    "readers",
    is_flag=True,
    help="Also prepare the store for servers that cannot write it (a read-only role, hot "
    "standbys): keep a token secret and a list cut-off mark in it, and have every write "
    "raise the mark when it commits.",
)
def migrate(readers: bool) -> None:
    """Bring the database's schema up to this version's (serve and load also do it)."""
    from .. import __version__, datestamps

    settings = read_settings(lasting=True)
    # Opening the store migrates it, or says why it cannot; waiting for pg_dump, it says so.
    store = open_store(settings, on_wait=lambda line: click.echo(f"migrate: {line}", err=True))
    try:
        if readers:
            store.prepare_for_readers(datestamps.now())  # what they cannot make themselves
    except StoreUnavailable as e:
        raise click.ClickException(f"the database failed: {e}") from None
    finally:
        store.close()
    change = store.migration
    if change.changed:
        click.echo(
            f"schema: {change.before or 'none'} → {change.after} (oaipmh-server {__version__})"
        )
    else:
        click.echo(f"schema: {change.after}, up to date ({_written_by(change.written_by)})")
    if readers:  # what the option did, which the schema line does not show
        secret = (
            "the token secret is the configured one: give the servers the same"
            if settings.token_secret
            else "the token secret is kept in the database, for the servers to read"
        )
        click.echo(
            "prepared for servers that cannot write: every write now raises the list "
            f"cut-off mark as it commits; {secret}"
        )


@click.command()
@click.argument("role")
def grants(role: str) -> None:
    """Print the GRANT lines that let ROLE serve the PostgreSQL database read-only."""
    from ..store.readonly import grant_statements

    settings = read_settings()
    if not settings.database_url.startswith("postgresql"):
        raise click.ClickException(
            "grants are PostgreSQL's; a SQLite store is served read-only by opening it so: "
            "database_url = 'sqlite:///file:/path/to/oai.sqlite3?mode=ro&uri=true'"
        )
    try:
        lines = grant_statements(settings.database_url, settings.database_password, role)
    except StoreUnavailable as e:  # what could not be opened, and why
        raise click.ClickException(str(e)) from None
    for line in lines:
        click.echo(line)


@click.command()
@click.argument("destination", type=click.Path(path_type=str))
def backup(destination: str) -> None:
    """Copy the SQLite database to DESTINATION while it serves, even during a load."""
    from pathlib import Path

    from ..errors import BackupFailed
    from ..store.backups import back_up

    settings = read_settings()
    try:
        done = back_up(settings.database_url, Path(destination))
    except BackupFailed as e:
        raise click.ClickException(str(e)) from None
    click.echo(
        f"Backed up {done.source} to {done.destination}: {done.records} records, "
        f"schema {done.revision or 'none'}, {done.size:,} bytes."
    )


@click.command(name="copy")
@click.argument("target")
def copy_store(target: str) -> None:
    """Copy the store into the database at TARGET (a database URL with no records yet, e.g.
    PostgreSQL's): every record with its datestamp, tombstones, sets and token secret."""
    from ..config import masked_url
    from ..errors import CopyRefused
    from ..store import SqlStore
    from ..store.failures import Passwords, shown_url
    from ..store.sqlite_urls import vanishes

    if vanishes(target):  # "Copied", and the copy gone with the command
        raise click.ClickException(
            f"TARGET: {masked_url(target)!r} is an SQLite database in memory, gone when the "
            "command ends: the copy would be lost; name a file "
            "(sqlite:////var/lib/oai/oai.sqlite3) or a PostgreSQL database"
        )
    settings = read_settings()
    store = open_store(settings, existing=True)
    try:
        try:
            # TARGET's password is in its URL, or where libpq looks: not in
            # OAIPMH_DATABASE_PASSWORD, which is the configured store's.
            passwords = Passwords(
                refused="the password in TARGET's URL, or PGPASSWORD or ~/.pgpass",
                missing="give it in TARGET's URL, postgresql+psycopg://USER:PASSWORD@HOST/DB, "
                "or in PGPASSWORD or ~/.pgpass",
            )
            destination = SqlStore(target, passwords=passwords)
        except StoreUnavailable as e:  # what could not be opened, and why
            raise click.ClickException(f"TARGET: {e}") from None
        try:
            copied = store.copy_into(destination)
        except KeyboardInterrupt:  # Ctrl-C: the target's transaction is rolled back
            raise click.ClickException(
                "interrupted: nothing was copied, the target holds no records: copy again"
            ) from None
        except CopyRefused as e:
            raise click.ClickException(f"nothing was copied: {e}") from None
        except StoreUnavailable as e:
            raise click.ClickException(f"nothing was copied: {store.failure(e)}") from None
        finally:
            destination.close()
    finally:
        store.close()
    rows = copied.rows
    click.echo(
        f"Copied {rows['records']} records ({rows['memberships']} set memberships, "
        f"{rows['fragments']} stored formats, {rows['files']} files), {rows['sets']} sets "
        f"and the store's own {rows['meta']} values (counts, marks, token secret) into "
        f"{shown_url(destination.engine.url)}."
    )


def _written_by(version: str | None) -> str:
    if version is None:  # versions before 1.0.0 did not record it
        return "written by oaipmh-server before 1.0.0"
    return f"written by oaipmh-server {version}"
