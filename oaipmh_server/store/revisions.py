"""The schema's revision: bring it up to date (Alembic), record which oaipmh-server did,
and refuse a schema newer than this program knows.

Alembic keeps the revision in `alembic_version`; the meta table keeps the version of the
program that last created or migrated the schema (`WRITTEN_BY_KEY`). An older program
finding a revision its migrations do not know would otherwise end in Alembic's traceback
("Can't locate revision"); it stops instead with one sentence saying which oaipmh-server
the database needs, before it serves or writes anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, column, delete, insert, inspect, select, table

from ..errors import SchemaOutdated, SchemaTooNew
from .failures import shown_url
from .locks import waiting_told
from .readonly import why_read_only
from .schema import meta_table, metadata

if TYPE_CHECKING:
    from alembic.config import Config

WRITTEN_BY_KEY = "schema_written_by"
# Where Alembic keeps the revision (its default table, which env.py keeps).
VERSION_TABLE = table("alembic_version", column("version_num"))
# A migration's file is named by its revision: `0008_deleted_index.py` is revision 0008.
REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")
# Held by the one process that migrates a PostgreSQL database; the others wait, then find
# it done.
MIGRATION_LOCK = 4242424242


@dataclass(frozen=True)
class Schema:
    """Where a database's schema stands: its revision (None: no schema yet) and the
    version of oaipmh-server that last created or migrated it (None: one before 1.0.0,
    which did not record it)."""

    revision: str | None
    written_by: str | None


@dataclass(frozen=True)
class Migration:
    """What opening the store did to its schema: `before` → `after` (the same when it was
    up to date; `before` None when the schema was created)."""

    before: str | None
    after: str
    written_by: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def migrate(engine: Engine, on_wait: Callable[[str], None] | None = None) -> Migration:
    """Create the schema on first use, or bring an older one up to date (Alembic).

    The usual case, a schema already at the newest revision, only reads, so a server can
    start while a load holds the write lock. Otherwise one process at a time migrates
    (SQLite's write lock, PostgreSQL's advisory lock) and the others find it done. A
    revision newer than this program's raises SchemaTooNew before any lock is taken.
    `on_wait` is told what a PostgreSQL migration waits for, when it waits (locks.py).
    """
    with engine.connect() as conn:
        found = read_schema(conn)
        if found.revision is not None and found.revision == _newest():
            return Migration(found.revision, found.revision, found.written_by)
        # Only now is Alembic loaded (`_head`): importing it is a tenth of a second of CPU,
        # which every command (and every server) opening a store already up to date would
        # pay for nothing.
        head = _head()
        if found.revision == head:
            return Migration(head, head, found.written_by)
        _refuse_unknown(engine, found)
        _refuse_read_only(engine, conn, found, head)
    from alembic import command

    config = _config()
    with (
        engine.connect() as conn,
        waiting_told(engine, conn, on_wait),
        conn.execution_options(immediate=True).begin(),
    ):
        if conn.dialect.name == "postgresql":
            # A server's session bounds its lock waits (engine._bound_lock_waits); its
            # migration waits, as any other's, for pg_dump and for another migration.
            conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        found = read_schema(conn)  # another process may have migrated it meanwhile
        if found.revision == head:
            return Migration(head, head, found.written_by)
        _refuse_unknown(engine, found)
        config.attributes["connection"] = conn
        if not inspect(conn).has_table("records"):
            metadata.create_all(conn)
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")
        conn.execute(delete(meta_table).where(meta_table.c.key == WRITTEN_BY_KEY))
        conn.execute(insert(meta_table).values(key=WRITTEN_BY_KEY, value=_program()))
    return Migration(found.revision, head, _program())


def read_schema(conn: Connection) -> Schema:
    """The revision Alembic recorded and the version that wrote it, as they are. Read
    from Alembic's table as Alembic reads it (every row a head), without loading Alembic."""
    heads: list[str] = []
    if inspect(conn).has_table(VERSION_TABLE.name):
        heads = list(conn.execute(select(VERSION_TABLE.c.version_num)).scalars())
    revision = " ".join(heads) if heads else None
    written_by: str | None = None
    # Looked for first: a failed statement would end a PostgreSQL transaction.
    if revision is not None and inspect(conn).has_table(meta_table.name):
        written_by = conn.execute(
            select(meta_table.c.value).where(meta_table.c.key == WRITTEN_BY_KEY)
        ).scalar()
    return Schema(revision, written_by)


def _program() -> str:
    """This program's version, asked only when a schema is created or migrated, or refused
    (the package reads it when first asked)."""
    from .. import __version__

    return __version__


def _refuse_unknown(engine: Engine, found: Schema) -> None:
    if found.revision is None or all(r in _known() for r in found.revision.split()):
        return
    where = shown_url(engine.url)
    who = f"oaipmh-server {found.written_by}" if found.written_by else "a newer oaipmh-server"
    needed = f"oaipmh-server {found.written_by} or later" if found.written_by else "a newer one"
    raise SchemaTooNew(
        f"the database {where} is at schema revision {found.revision}, written by {who}; "
        f"this is oaipmh-server {_program()}, which knows revisions up to {_head()}: "
        f"run {needed} (or restore a backup taken before the upgrade)"
    )


def _refuse_read_only(engine: Engine, conn: Connection, found: Schema, head: str) -> None:
    """A schema to create or migrate, by a process that cannot write it: one sentence
    instead of the database's "permission denied" halfway through."""
    reason = why_read_only(conn)
    if reason is None:
        return
    where = shown_url(engine.url)
    stands = f"is at schema revision {found.revision}" if found.revision else "has no schema yet"
    raise SchemaOutdated(
        f"the database {where} {stands} and oaipmh-server {_program()} needs revision "
        f"{head}, but {reason}, so it cannot be migrated from here: run `oaipmh-server "
        "migrate` with a role that can write (on the primary), then start again"
    )


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    return config


@lru_cache(maxsize=1)
def _newest() -> str | None:
    """The newest revision this program's migrations know, by their files' names (no
    Alembic loaded): what a store opened is found at, almost always. Alembic's head
    (`_head`) decides everything else; test_the_newest_migration_file_is_alembics_head
    shows the two agree."""
    versions = resources.files("oaipmh_server.store.migrations").joinpath("versions")
    found = [m[1] for f in versions.iterdir() if (m := REVISION_FILE.match(f.name))]
    return max(found, default=None)


@lru_cache(maxsize=1)
def _head() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_config()).get_current_head())


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    """Every revision this program's migrations (store/migrations/versions) know."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return frozenset(script.revision for script in scripts.walk_revisions())
