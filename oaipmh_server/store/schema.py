"""The tables, as SQLAlchemy Core tables. Only the store package imports SQLAlchemy.

records       one row per item: datestamp, deleted flag, its sets, its fields (compressed
              JSON, in order), a content hash so re-loading identical content changes nothing, and
              its <header> rendered once, as served.
memberships   (set, record) for the record's sets *and their ancestors*, with the record's
              datestamp copied in: a set-selective page is one range scan of the index
              (set_spec, datestamp, local_id), parent sets included, no join to find order.
fragments     each record rendered once per format at ingest, with the crosswalk version
              (on PostgreSQL stored uncompressed: revision 0007).
files         a record's files (DSpace bitstreams), one row each, keyed (local_id, sequence).
sets          spec, name, optional description, the spec of its parent set (the tree).
meta          small key/value facts: the generated token secret, fragment versions, the
              highest cut-off any list has been given (see store/writes.py), whether
              servers that cannot write serve the store (store/readonly.py).
writers       the writes in progress: each load commits one row here before it writes, and
              removes it in its own transaction, so lists never pass an uncommitted change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    event,
    text,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (both SQLite and PostgreSQL order it correctly), read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("datestamps must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if isinstance(value, datetime) else value


def stored_datetime(value: Any) -> datetime:
    """A datestamp read without its column type's processing: SQLite gives the text the
    type wrote, other drivers a naive datetime; either way naive UTC, made aware (the
    text parsed with its zone: a fifth of the time of parsing it and then replacing it)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")
    return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


# The deleted records, as ix_records_deleted's predicate says it on each database: a
# partial index serves a query whose WHERE says the same (meta.stored_counts).
DELETED_ROWS = {"sqlite": "deleted = 1", "postgresql": "deleted"}


# Core tables, not ORM classes: the store reads and writes through Connections and never
# through a Session, and SQLAlchemy's ORM (its import and the declarative mapping of these
# classes) cost every process 0.2-0.25 CPU-s, a third of a short command such as `stats`.
metadata = MetaData()


def _record_key() -> Column[str]:
    """The record a row of memberships, fragments or files belongs to: part of its primary
    key, and gone with the record (ON DELETE CASCADE)."""
    return Column(
        "local_id",
        String(255),
        ForeignKey("records.local_id", ondelete="CASCADE"),
        primary_key=True,
    )


records_table = Table(
    "records",
    metadata,
    Column("local_id", String(255), primary_key=True),
    Column("datestamp", UTCDateTime(), nullable=False),
    Column("deleted", Boolean(), nullable=False),
    # The record's own set specs, space-separated (a setSpec cannot contain a space).
    Column("set_specs", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("accessioned", UTCDateTime()),
    # Which repository identifier `header` was rendered for (see xml.header_version),
    # and the record's <header> as served; NULL until a load renders it.
    Column("header_version", String(64)),
    Column("header", LargeBinary),
    # The fields, packed (packing.pack_fields: compressed JSON). Last: SQLite stores a
    # row's columns in order, and reading a column after this big one (spilling onto
    # overflow pages) would mean walking through it. A TEXT column on SQLite, where a
    # column's type does not bind its values (rows written before revision 0003 hold
    # JSON text there), bytea on PostgreSQL (revision 0003).
    Column("fields", Text().with_variant(LargeBinary(), "postgresql"), nullable=False),
    Index("ix_records_datestamp_id", "datestamp", "local_id"),
    # The deleted records alone (a few in a hundred): each write counts them for
    # /metrics (meta.stored_counts) on this index instead of reading every row.
    Index(
        "ix_records_deleted",
        "local_id",
        sqlite_where=text(DELETED_ROWS["sqlite"]),
        postgresql_where=text(DELETED_ROWS["postgresql"]),
    ),
)

# Each write keeps every set's size, its count of these rows (meta.SET_COUNTS_KEY, by
# LoadTransaction's _leave_sets and _join_sets): anything else that adds or removes
# memberships (a migration) deletes that key, and the next write counts them again.
memberships_table = Table(
    "memberships",
    metadata,
    Column("set_spec", String(255), primary_key=True),
    _record_key(),
    Column("datestamp", UTCDateTime(), nullable=False),
    Index("ix_memberships_set_datestamp_id", "set_spec", "datestamp", "local_id"),
    Index("ix_memberships_local_id", "local_id"),
)

fragments_table = Table(
    "fragments",
    metadata,
    _record_key(),
    Column("prefix", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
)

# On PostgreSQL the fragments are stored uncompressed, out of line (revision 0007: a page
# no longer decompresses a hundred of them); a new store is made so too.
UNCOMPRESSED_FRAGMENTS = "ALTER TABLE fragments ALTER COLUMN body SET STORAGE EXTERNAL"
event.listen(
    fragments_table,
    "after_create",
    DDL(UNCOMPRESSED_FRAGMENTS).execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
)

# A record's file (records.File), revision 0006.
#
# A table of its own rather than a packed column of `records`: a record without files
# (most records of a metadata-only repository) costs no byte and no statement; a harvest
# of a format that carries no files (dim, qdc, oai_dc from its stored fragment) never
# reads it; on SQLite a column added to `records` would land after the big `fields`
# column, and reading it would walk through that one's overflow pages; the formats and
# pages that need files read a page's in one query on the primary key's range; vsets'
# "has an open file" can be asked in SQL. A load writes a record's files with one bulk
# insert per batch, and deletes them with the record: by the loads' own deletes (as the
# other tables) and by the foreign key's ON DELETE CASCADE for anything else.
files_table = Table(
    "files",
    metadata,
    _record_key(),
    Column("sequence", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("bundle", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("mime", Text, nullable=False),
    Column("description", Text),
    Column("is_primary", Boolean(), nullable=False),
    Column("access", String(16), nullable=False),
    Column("permissions", Text),
    Column("uuid", Text),
)

sets_table = Table(
    "sets",
    metadata,
    Column("spec", String(255), primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    # The spec of the set containing this one (a community), or NULL (revision 0005).
    Column("parent", String(255)),
)

meta_table = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# A write in progress, committed before it writes anything (store/writes.py).
writers_table = Table(
    "writers",
    metadata,
    Column("id", String(32), primary_key=True),
    # Every change the write makes is dated at or after this; lists stop one second before.
    Column("since", UTCDateTime(), nullable=False),
    # Who writes (host, process, command), for "another load is running" messages.
    Column("holder", Text, nullable=False),
)
