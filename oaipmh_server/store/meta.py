"""Meta keys: what the store keeps about itself (the token secret, the last write's counts
and time that /metrics reports)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    bindparam,
    func,
    insert,
    select,
    text,
)

from . import readonly, writes
from .engine import Connected, unavailable
from .schema import (
    DELETED_ROWS,
    fragments_table,
    memberships_table,
    meta_table,
    records_table,
)

TOKEN_SECRET_KEY = "token_secret"  # noqa: S105  # the meta key, not a secret


class MetaKeys(Connected):
    """The token secret and the figures, read from the meta table."""

    _secret: str | None

    def token_secret(self) -> str:
        """The configured secret, or the one kept in the database, read (or made) when
        first needed: a load never needs it, so it never writes it."""
        if self._secret is None:
            with unavailable():
                self._secret = self._stored_secret()
        return self._secret

    def get_meta(self, key: str) -> str | None:
        """A fact the loads keep in the meta table (what virtual sets were evaluated with)."""
        value: str | None = self._scalar(select(meta_table.c.value).where(meta_table.c.key == key))
        return value

    def _stored_secret(self) -> str:
        """The token secret kept in the database, made on first use and shared by every
        process that serves this database, so tokens outlive restarts and move between
        workers."""
        query = select(meta_table.c.value).where(meta_table.c.key == TOKEN_SECRET_KEY)
        with self.engine.connect() as conn:
            stored = conn.execute(query).scalar()
        if stored is not None:
            return str(stored)  # the usual case: no write, so no wait behind a running load
        with self.engine.begin() as conn:
            _insert_ignore(
                conn, meta_table, {"key": TOKEN_SECRET_KEY, "value": secrets.token_hex(32)}
            )
            return str(conn.execute(query).scalar_one())

    def figures(self, now: datetime) -> StoreFigures:
        """What /metrics shows of the store, at a few rows' cost: the counts and the time
        kept by the last write (`_keep_figures`), the schema revision, the cut-off a list
        would get now. A store last written by an older version has no counts kept: they
        are counted (a full scan) until its next write."""
        keys = (COUNTS_KEY, LAST_WRITE_KEY)
        with unavailable(), self.engine.connect() as conn, conn.begin():
            query = select(meta_table.c.key, meta_table.c.value).where(meta_table.c.key.in_(keys))
            kept: dict[str, str] = {key: value for key, value in conn.execute(query)}
            records, deleted = kept_counts(kept.get(COUNTS_KEY)) or stored_counts(conn)
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            if self.read_only is not None:
                cutoff = readonly.cutoff(conn)
            else:
                cutoff = writes.current_cutoff(conn, self._lease, now)
        last = kept.get(LAST_WRITE_KEY)
        return StoreFigures(
            records=records,
            deleted=deleted,
            last_write=datetime.fromisoformat(last) if last else None,
            revision=None if revision is None else str(revision),
            cutoff=cutoff,
        )


@dataclass(frozen=True)
class StoreFigures:
    """The store's state as /metrics reports it (SqlStore.figures)."""

    records: int  # deleted ones included
    deleted: int
    last_write: datetime | None  # when the last load (delete, refresh-sets) committed
    revision: str | None  # the schema's Alembic revision
    cutoff: datetime  # of a list starting now


# Meta keys each write commits with its changes: "RECORDS DELETED", its commit time, and
# each set's size as "COMMIT-TIME {JSON: spec → records}" (`kept_set_counts`).
COUNTS_KEY = "counts"
LAST_WRITE_KEY = "last_write"
SET_COUNTS_KEY = "set_counts"


# The value of the counts the last write kept.
KEPT_COUNTS = select(meta_table.c.value).where(meta_table.c.key == COUNTS_KEY)
# The store's earliest and latest datestamps (each one step on the datestamp index) and
# the counts the last write kept, from one snapshot. (Counted with the rows in one
# statement, SQLite read the whole table at 1,000,000 records, its plan chosen by the
# index statistics: 377 ms.)
WHOLE_STORE = select(
    select(func.min(records_table.c.datestamp)).scalar_subquery(),
    select(func.max(records_table.c.datestamp)).scalar_subquery(),
    KEPT_COUNTS.scalar_subquery(),
)


# /healthz's statement: the counts the last write kept, and the first key of each table
# a list's page reads (one step on its primary key's index each), so that a table no
# statement can read (another session's ACCESS EXCLUSIVE lock on PostgreSQL) makes
# /healthz wait and fail as the page would (SqlStore.health).
HEALTH = select(
    KEPT_COUNTS.scalar_subquery(),
    select(func.min(records_table.c.local_id)).scalar_subquery(),
    select(func.min(fragments_table.c.local_id)).scalar_subquery(),
    select(func.min(memberships_table.c.set_spec)).scalar_subquery(),
)


# The sets' sizes the last write kept, with that write's time to check them by.
KEPT_SET_COUNTS = select(meta_table.c.key, meta_table.c.value).where(
    meta_table.c.key.in_((SET_COUNTS_KEY, LAST_WRITE_KEY))
)


# A set's earliest and latest datestamps (each one step on the membership index) and the
# sets' sizes the last write kept, with its time, from one snapshot.
WHOLE_SET = select(
    select(func.min(memberships_table.c.datestamp))
    .where(memberships_table.c.set_spec == bindparam("set_spec"))
    .scalar_subquery(),
    select(func.max(memberships_table.c.datestamp))
    .where(memberships_table.c.set_spec == bindparam("set_spec"))
    .scalar_subquery(),
    select(meta_table.c.value).where(meta_table.c.key == SET_COUNTS_KEY).scalar_subquery(),
    select(meta_table.c.value).where(meta_table.c.key == LAST_WRITE_KEY).scalar_subquery(),
)


def kept_set_counts(kept: Mapping[str, str | None]) -> dict[str, int] | None:
    """Each set's records (deleted ones included: a set's list shows its tombstones) as
    the last write kept them, from the meta values `kept` (SET_COUNTS_KEY's and
    LAST_WRITE_KEY's); None when they must be counted instead: none kept (a store last
    written before 1.1), not readable, or kept by an earlier write than the last. A
    version that does not keep them still changes the write time, so sizes it left stale
    (an operator back on it for a while) are never read."""
    value, last_write = kept.get(SET_COUNTS_KEY), kept.get(LAST_WRITE_KEY)
    if not value or not last_write:
        return None
    written, _, counts = value.partition(" ")
    if written != last_write:
        return None
    try:
        sizes = orjson.loads(counts)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(sizes, dict) or not all(type(n) is int and n > 0 for n in sizes.values()):
        return None
    return sizes


def read_kept_set_counts(conn: Connection) -> dict[str, int] | None:
    """The sets' sizes the last write kept, read in one statement with that write's time
    (`kept_set_counts`); None when they must be counted."""
    return kept_set_counts({key: value for key, value in conn.execute(KEPT_SET_COUNTS)})


def counted_set_counts(conn: Connection) -> dict[str, int]:
    """Each set's records (deleted ones included), counted on the membership index: what
    the writes keep, for a store whose sizes are not kept."""
    per_set = select(memberships_table.c.set_spec, func.count()).group_by(
        memberships_table.c.set_spec
    )
    return {spec: int(n) for spec, n in conn.execute(per_set)}


def set_counts_value(written: str, sizes: Mapping[str, int]) -> str:
    """SET_COUNTS_KEY's value for the sets' `sizes`, kept by the write committed at
    `written` (LAST_WRITE_KEY's value)."""
    return written + " " + orjson.dumps(dict(sorted(sizes.items()))).decode()


def kept_counts(value: str | None) -> tuple[int, int] | None:
    """The records (deleted included) and deleted records a write kept (COUNTS_KEY's
    value), or None when there are none (a store last written before 1.0.0) or they are
    not two numbers: then they are counted."""
    counts = (value or "").split()
    if len(counts) != 2 or not all(n.isdigit() for n in counts):
        return None
    return int(counts[0]), int(counts[1])


def stored_counts(conn: Connection) -> tuple[int, int]:
    """Records (deleted included, on the smallest index) and deleted records."""
    total = conn.execute(select(func.count()).select_from(records_table)).scalar_one()
    return int(total), deleted_count(conn)


def deleted_count(conn: Connection) -> int:
    """The deleted records, counted on the index of them alone (ix_records_deleted, whose
    predicate the query repeats so the database uses it): one pass over the rows
    themselves took 41 s at 8,000,000 records, in every write's transaction."""
    predicate = DELETED_ROWS.get(conn.dialect.name)
    where = text(predicate) if predicate else records_table.c.deleted.is_(True)
    return int(
        conn.execute(select(func.count()).select_from(records_table).where(where)).scalar_one()
    )


def _insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> None:
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
    else:
        if conn.execute(select(table).filter_by(key=values["key"])).first() is None:
            conn.execute(insert(table).values(**values))
        return
    conn.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())
