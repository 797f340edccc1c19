"""Reading the settings and opening the store for a command, their failures as one line."""

from __future__ import annotations

from typing import Any

import click

from ..config import load_settings, masked_url, setting_source
from ..errors import ConfigError, StoreUnavailable, escaped


def read_settings(*, lasting: bool = False) -> Any:
    """The settings a command runs with, checked before anything is opened (`[formats]
    stored` among them); a mistake is one line, not a traceback. `lasting`: the command
    writes or serves the store, so a database that vanishes with it is refused."""
    try:
        settings = load_settings()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if lasting:
        refuse_vanishing_database(settings)
    return settings


def refuse_vanishing_database(settings: Any) -> None:
    """A ClickException if the settings name a database that is gone when the process
    ends (store.engine.vanishes): load, delete, refresh-sets and migrate would say they
    wrote what nobody can read, and serve would serve an empty store, each worker its own.
    Where the URL came from is read again (the configuration's sources) only to say so."""
    from ..store.sqlite_urls import vanishes

    url = settings.database_url
    if vanishes(url):
        raise click.ClickException(_vanishing(url, setting_source("database_url")))


def vanishing_database(url: str, source: str) -> str | None:
    """The mistake of naming a database that vanishes, as `config check` and the commands
    that refuse it say it, or None for a database that lasts."""
    from ..store.sqlite_urls import vanishes

    return _vanishing(url, source) if vanishes(url) else None


def _vanishing(url: str, source: str) -> str:
    return (f"{source}: store.database_url: {masked_url(url)!r} is an SQLite database in "
            "memory, gone when the command ends: what load, delete, refresh-sets and migrate "
            "write would be lost, and serve would serve an empty store; name a file "
            "(sqlite:////var/lib/oai/oai.sqlite3) or a PostgreSQL database")  # fmt: skip


def open_store(settings: Any, *, existing: bool = False, on_wait: Any = None) -> Any:
    """The store `settings` name, migrated; what could not be opened is one line.
    `existing`: the command only reads the store (stats, check), so an SQLite file that is
    not there is refused, not made: in a folder without one (the default URL is relative)
    it would report the 0 records of an empty store it had just created; and it gives up
    waiting for another session's lock after a while (store.engine.READ_LOCK_WAIT_SECONDS).
    `on_wait`: told what a migration waits for, when it waits."""
    from ..store import SqlStore, database_file

    file = database_file(settings.database_url)
    # A folder that is not there (or a file where one should be) the store's own opening
    # names more exactly (store.failures), and makes nothing.
    if existing and file is not None and file.parent.is_dir() and not file.exists():
        source = setting_source("database_url")
        raise click.ClickException(
            f"no database at {escaped(str(file))} ({source}: store.database_url): load "
            "records into it first (oaipmh-server load PATH…), or name the repository's "
            "database with OAIPMH_DATABASE_URL or the file OAIPMH_CONFIG names"
        )
    try:
        return SqlStore(
            settings.database_url,
            token_secret=settings.token_secret,
            password=settings.database_password,
            reading=existing,
            on_wait=on_wait,
        )
    except StoreUnavailable as e:  # what could not be opened, and why (store.failures)
        raise click.ClickException(str(e)) from None
