"""A consistent copy of a SQLite store, taken while it serves and even while a load writes.

Copying the database file (`cp`) is not a backup: in WAL mode the newest commits may
still be in the `-wal` file beside it, and a copy taken during a checkpoint mixes two
states. SQLite's online backup API (Python's `sqlite3.Connection.backup`, what the sqlite3
shell's `.backup` does) copies the pages of one read transaction: the state of the last
commit when it began, whatever writes meanwhile (a held load is neither in it nor blocked
by it). PostgreSQL has `pg_dump` for this; see docs/backups.md.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from ..errors import BackupFailed
from .sqlite_urls import database_file

LOCK_WAIT_SECONDS = 30


@dataclass(frozen=True)
class Backup:
    """What a backup holds, read back from the copy itself."""

    source: str
    destination: Path
    records: int
    revision: str | None
    size: int


def back_up(url: str, destination: Path) -> Backup:
    """Copy the SQLite database at `url` to `destination`, whole or not at all.

    The copy is written beside the destination (`<destination>.partial`, mode 0600: it
    holds the token secret and private fields), checked (`PRAGMA quick_check`), made a
    single self-contained file (rollback journal, no `-wal` beside it) and only then
    renamed over `destination`: a backup that fails leaves an earlier one in place."""
    source = _sqlite_path(url)
    if not source.is_file():  # sqlite3.connect would create an empty database there
        raise BackupFailed(f"no SQLite database at {source}")
    try:
        _check_destination(source, destination)
    except OSError as e:  # a name the file system refuses (too long, …): not a traceback
        raise BackupFailed(f"cannot back up {source} to {destination}: {e.strerror}") from e
    partial = destination.with_name(destination.name + ".partial")
    try:
        _remove(partial)
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with (
            closing(sqlite3.connect(source, timeout=LOCK_WAIT_SECONDS)) as reading,
            closing(sqlite3.connect(partial, isolation_level=None)) as copy,
        ):
            reading.backup(copy)  # every page in one step: one read transaction
            copy.execute("PRAGMA journal_mode=DELETE")
            checked = copy.execute("PRAGMA quick_check").fetchone()[0]
            if checked != "ok":
                raise BackupFailed(f"the copy of {source} failed SQLite's check: {checked}")
            records, revision = _contents(copy)
        os.replace(partial, destination)
    except (sqlite3.Error, OSError) as e:
        _remove(partial)
        raise BackupFailed(f"cannot back up {source} to {destination}: {e}") from e
    except BaseException:
        _remove(partial)
        raise
    return Backup(str(source), destination, records, revision, destination.stat().st_size)


def _check_destination(source: Path, destination: Path) -> None:
    """Refuse a destination that is the database, a folder, or in no folder; OSError if
    the file system refuses even to look at it."""
    # realpath, not Path.resolve: a link loop is then a name like any other (resolve
    # raises RuntimeError for one in Python 3.11, OSError later).
    if os.path.realpath(destination) == os.path.realpath(source):
        raise BackupFailed(f"{destination} is the database itself")
    if destination.is_dir():
        raise BackupFailed(f"{destination} is a folder; give the backup's file name")
    if destination.exists() and not destination.is_file():  # os.replace would take its name
        raise BackupFailed(
            f"{destination} is not a file but a pipe, device or socket; give the backup's file name"
        )
    if not destination.parent.is_dir():  # else OSError names the .partial file, not this
        raise BackupFailed(
            f"cannot back up {source} to {destination}: the folder {destination.parent} "
            "does not exist (make it first, e.g. mkdir -p -m 0700)"
        )


def _sqlite_path(url: str) -> Path:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise BackupFailed("the database URL is not one SQLAlchemy reads") from e
    if parsed.get_backend_name() != "sqlite":
        raise BackupFailed(
            f"`backup` copies a SQLite database; for {parsed.get_backend_name()} use its "
            "own tools (PostgreSQL: pg_dump -Fc, see docs/backups.md)"
        )
    source = database_file(parsed)
    if source is None:  # in memory, or a URI SQLite refuses
        raise BackupFailed("`backup` copies a SQLite database file, not this URL's")
    return source


def _contents(copy: sqlite3.Connection) -> tuple[int, str | None]:
    """The copy's record count and schema revision (an empty store has neither table)."""
    tables = {name for (name,) in copy.execute("SELECT name FROM sqlite_master")}
    records = (
        copy.execute("SELECT count(*) FROM records").fetchone()[0] if "records" in tables else 0
    )
    revision = None
    if "alembic_version" in tables:
        row = copy.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    return int(records), revision


def _remove(path: Path) -> None:
    for leftover in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        with suppress(FileNotFoundError):
            leftover.unlink()
