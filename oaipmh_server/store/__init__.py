"""The SQL record store: SQLite by default, any SQLAlchemy URL (PostgreSQL in production).

Reads are keyset queries on (datestamp, local_id), or (set_spec, datestamp, local_id) for a
set, so page 10,000 costs what page 1 costs. A load is one transaction (`SqlStore.loading`):
readers see the store before it or after it, never half of it. SQLAlchemy errors are turned
into StoreUnavailable here, at the edge, so nothing above knows SQL.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import NullType

from ..errors import LoadBusy, StoreUnavailable
from ..records import Field, File, Header, Position, Selection, SetInfo, StoredRecord
from . import writes
from .revisions import Migration, Schema, migrate, read_schema
from .schema import (
    FileRow,
    FragmentRow,
    MembershipRow,
    MetaRow,
    RecordRow,
    SetRow,
    UTCDateTime,
    stored_datetime,
)

# SQLite's page cache during a load, in KiB (negative: a size, not pages): the indexes
# being filled stay in memory instead of going back and forth to the write-ahead log.
LOAD_CACHE_SIZE = -65536
# The page size of a new SQLite store (an existing one keeps its own). A record's row and
# its fragment take a few kB each: on 16 KiB pages they rarely spill onto overflow pages,
# a load writes fewer, larger pages (its write-ahead log's index, in the loading
# process's memory, has a quarter of the entries) and a page of records reads fewer.
SQLITE_PAGE_SIZE = 16384
# How long a SQLite connection waits for another's lock before "database is locked".
LOCK_WAIT_SECONDS = 30
TOKEN_SECRET_KEY = "token_secret"  # noqa: S105  # the meta key, not a secret
AnySelect = Select[*tuple[Any, ...]]


def plain_fields(fields: Sequence[Field]) -> list[tuple[Any, ...]]:
    """The fields as JSON-ready rows: [name, value, lang], with [authority, confidence]
    after them only for a value that has either (few do: a row stays what it was before
    authorities were kept, so a record's stored form and its content hash are unchanged
    by them, and a load does not pay for them)."""
    return [tuple(f) if f[3] is not None or f[4] is not None else f[:3] for f in fields]


def pack_fields(fields: Sequence[Field]) -> bytes:
    """A record's fields as stored: JSON [[name, value, lang-or-null], ...] in the record's
    order (`plain_fields`), compressed (zlib level 1: a seed-shaped record's 4 kB become
    1.7 kB, so a load writes a quarter fewer bytes, for about 35 µs a record in the
    workers)."""
    return zlib.compress(orjson.dumps(plain_fields(fields)), 1)


def unpack_fields(stored: str | bytes | memoryview) -> tuple[Field, ...]:
    """The fields from their stored form, including the uncompressed JSON of rows written
    before revision 0003 (text on SQLite; bytes beginning with "[" on PostgreSQL, where
    the column became bytea). A row is [name, value, lang] or, with an authority or a
    confidence, [name, value, lang, authority, confidence]."""
    return tuple(Field(*row) for row in unpack_rows(stored))


def unpack_rows(stored: str | bytes | memoryview) -> list[list[Any]]:
    """The fields from their stored form as rows (`unpack_fields`), not yet `Field`s: a
    merge that replaces most of a record's values builds only the ones it keeps."""
    data = stored if isinstance(stored, str) else bytes(stored)
    if isinstance(data, bytes) and not data.startswith(b"["):
        data = zlib.decompress(data)
    rows: list[list[Any]] = orjson.loads(data)
    return rows


def ancestors(spec: str) -> list[str]:
    """`a:b:c` → [`a`, `a:b`, `a:b:c`]: a record in a set is in every set above it."""
    parts = spec.split(":")
    return [":".join(parts[: i + 1]) for i in range(len(parts))]


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (DBAPIError, SQLAlchemyError) as e:
        # The message of the driver may hold SQL and paths: log-worthy, never shown to clients.
        raise StoreUnavailable(type(e).__name__) from e


class SqlStore:
    """A RecordSource over SQL, plus the write side that ingest uses."""

    def __init__(
        self, url: str, *, token_secret: str | None = None, password: str | None = None
    ) -> None:
        self.url = url
        self.engine = _create_engine(url, password)
        self._driver_statements: dict[tuple[str, _Shape, bool], _DriverStatement] = {}
        from .failures import opening  # what could not be opened, and why

        with opening(url, password, self.engine):
            # What opening did to the schema (`oaipmh-server migrate` prints it).
            self.migration: Migration = migrate(self.engine)
        self._secret = token_secret

    def close(self) -> None:
        self.engine.dispose()

    # -- RecordSource ---------------------------------------------------------------------

    def token_secret(self) -> str:
        """The configured secret, or the one kept in the database, read (or made) when
        first needed: a load never needs it, so it never writes it."""
        if self._secret is None:
            with _unavailable():
                self._secret = self._stored_secret()
        return self._secret

    def get_meta(self, key: str) -> str | None:
        """A fact the loads keep in the meta table (what virtual sets were evaluated with)."""
        value: str | None = self._scalar(select(MetaRow.value).where(MetaRow.key == key))
        return value

    def schema(self) -> Schema:
        """The schema's revision and the oaipmh-server version that last migrated it."""
        with _unavailable(), self.engine.connect() as conn:
            return read_schema(conn)

    def count_all(self) -> int:
        """How many records (deleted included) the store holds; a health check's query."""
        return int(self._scalar(select(func.count()).select_from(RecordRow)) or 0)

    def earliest_datestamp(self) -> datetime | None:
        earliest: datetime | None = self._scalar(select(func.min(RecordRow.datestamp)))
        return earliest

    def has_sets(self) -> bool:
        return self._scalar(select(SetRow.spec).limit(1)) is not None

    def count_sets(self) -> int:
        return int(self._scalar(select(func.count()).select_from(SetRow)) or 0)

    def list_sets(self, after: str | None, limit: int) -> list[SetInfo]:
        query = select(SetRow.spec, SetRow.name, SetRow.description).order_by(SetRow.spec)
        if after is not None:
            query = query.where(SetRow.spec > after)
        with _unavailable(), self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [SetInfo(spec, name, description) for spec, name, description in rows]

    def get_header(self, local_id: str) -> Header | None:
        query = select(
            RecordRow.local_id, RecordRow.datestamp, RecordRow.set_specs, RecordRow.deleted
        ).where(RecordRow.local_id == local_id)
        with _unavailable(), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _header(*row)

    def get_record(
        self,
        local_id: str,
        prefix: str,
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> StoredRecord | None:
        query = (
            _record_columns()
            .select_from(RecordRow)
            .outerjoin(FragmentRow, _fragment_join(RecordRow.local_id, prefix))
            .where(RecordRow.local_id == local_id)
        )
        with _unavailable(), self.engine.connect() as conn:
            rows = conn.execute(query).all()
            records = self._with_fields(conn, rows, version, header_version, with_files)
        return records[0] if records else None

    def get_fields(self, local_id: str) -> tuple[Field, ...] | None:
        query = select(_FIELDS).where(RecordRow.local_id == local_id)
        text = self._scalar(query)
        return None if text is None else unpack_fields(text)

    def get_files(self, local_id: str) -> tuple[File, ...]:
        with _unavailable(), self.engine.connect() as conn:
            return _files_of(conn, [local_id]).get(local_id, ())

    def get_files_of(self, local_ids: Sequence[str]) -> dict[str, tuple[File, ...]]:
        """Several records' files in one query per 500 (only records that have files)."""
        with _unavailable(), self.engine.connect() as conn:
            return _files_of(conn, local_ids)

    def stats(self) -> StoreStats:
        """What an operator asks first: how many, how many deleted, which dates, per set."""
        per_set = (
            select(MembershipRow.set_spec, func.count())
            .group_by(MembershipRow.set_spec)
            .order_by(MembershipRow.set_spec)
        )
        overall = select(func.count(), func.min(RecordRow.datestamp), func.max(RecordRow.datestamp))
        deleted = select(func.count()).select_from(RecordRow).where(RecordRow.deleted.is_(True))
        with _unavailable(), self.engine.connect() as conn:
            total, earliest, latest = conn.execute(overall).one()
            sets = {spec: int(n) for spec, n in conn.execute(per_set)}
            named = dict(conn.execute(select(SetRow.spec, SetRow.name)).all())
            return StoreStats(
                records=int(total),
                deleted=int(conn.execute(deleted).scalar() or 0),
                earliest=earliest,
                latest=latest,
                sets={spec: (named.get(spec, spec), sets.get(spec, 0)) for spec in sorted(named)},
            )

    def iter_fields(self, batch: int = 2000) -> Iterator[tuple[str, tuple[Field, ...]]]:
        """Every live record's (local id, fields), in local id order, a batch per query
        (keyset, never OFFSET, and no transaction held across batches): a check of a
        million records reads them in constant memory and time per batch."""
        for local_id, fields, _ in self.iter_records(batch, with_files=False):
            yield local_id, fields

    def iter_records(
        self, batch: int = 2000, *, with_files: bool = True
    ) -> Iterator[tuple[str, tuple[Field, ...], tuple[File, ...]]]:
        """`iter_fields` with each record's files (read a batch at a time too)."""
        after: str | None = None
        while True:
            query = select(RecordRow.local_id, _FIELDS).where(RecordRow.deleted.is_(False))
            if after is not None:
                query = query.where(RecordRow.local_id > after)
            query = query.order_by(RecordRow.local_id).limit(batch)
            with _unavailable(), self.engine.connect() as conn:
                rows = conn.execute(query).all()
                files = _files_of(conn, [row[0] for row in rows]) if with_files else {}
            for local_id, packed in rows:
                yield local_id, unpack_fields(packed), files.get(local_id, ())
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def count_records(self, selection: Selection) -> int:
        query = _page_query("count", _shape(selection), False)
        return int(self._scalar(query, _page_parameters(selection, None)) or 0)

    def list_headers(
        self, selection: Selection, after: Position | None, limit: int, header_version: str
    ) -> list[StoredRecord]:
        with _unavailable(), self.engine.connect() as conn:
            rows = self._page(conn, "headers", selection, after, {"limit": limit})
            return [
                StoredRecord(
                    _header(local_id, stored_datetime(datestamp), set_specs, deleted),
                    None,
                    None,
                    header if stored_version == header_version else None,
                )
                for local_id, datestamp, set_specs, deleted, header, stored_version in rows
            ]

    def list_records(
        self,
        selection: Selection,
        after: Position | None,
        limit: int,
        prefix: str,
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> list[StoredRecord]:
        with _unavailable(), self.engine.connect() as conn:
            rows = self._page(conn, "records", selection, after, {"limit": limit, "prefix": prefix})
            return self._with_fields(conn, rows, version, header_version, with_files)

    # -- for the pages people read (pages.py) ----------------------------------------------

    def get_sets(self, specs: Sequence[str]) -> list[SetInfo]:
        """The named sets among `specs` (a record's own), in the order of `specs` (a
        header's: its communities, nearest first, then its collections)."""
        if not specs:
            return []
        query = select(SetRow.spec, SetRow.name, SetRow.description).where(
            SetRow.spec.in_(list(specs))
        )
        with _unavailable(), self.engine.connect() as conn:
            found = {row[0]: SetInfo(*row) for row in conn.execute(query)}
        return [found[spec] for spec in dict.fromkeys(specs) if spec in found]

    def list_subsets(self, spec: str, limit: int) -> list[SetInfo]:
        """The sets just below `spec`, in spec order: those whose parent it is (DSpace's
        flat specs, with the tree kept in `parent`), and in the hierarchical style `a:b`
        below `a` (not `a:b:c`), a range of the primary key, `a:` up to `a;`."""
        columns = (SetRow.spec, SetRow.name, SetRow.description)
        children = select(*columns).where(SetRow.parent == spec)
        nested = select(*columns).where(SetRow.spec > f"{spec}:", SetRow.spec < f"{spec};")
        depth = spec.count(":") + 1
        with _unavailable(), self.engine.connect() as conn:
            found = {row[0]: SetInfo(*row) for row in conn.execute(children.limit(limit))}
            for row in conn.execute(nested.order_by(SetRow.spec)):
                if row[0].count(":") == depth:
                    found.setdefault(row[0], SetInfo(*row))
        return [found[key] for key in sorted(found)][:limit]

    def get_fields_of(self, local_ids: Sequence[str]) -> dict[str, tuple[Field, ...]]:
        """Several records' fields in one query (a page listing records shows their titles)."""
        if not local_ids:
            return {}
        query = select(RecordRow.local_id, _FIELDS).where(RecordRow.local_id.in_(list(local_ids)))
        with _unavailable(), self.engine.connect() as conn:
            return {lid: unpack_fields(packed) for lid, packed in conn.execute(query)}

    def latest_headers(self, limit: int, among: int = 200) -> list[Header]:
        """The live records among the `among` most recently stamped, newest first, at most
        `limit`: the datestamp index read backwards for a bounded number of rows, so it
        costs the same at any size, even when a mass deletion put thousands of tombstones
        at the top (skipping them in SQL would read every one)."""
        query = (
            select(RecordRow.local_id, RecordRow.datestamp, RecordRow.set_specs, RecordRow.deleted)
            .order_by(RecordRow.datestamp.desc(), RecordRow.local_id.desc())
            .limit(among)
        )
        with _unavailable(), self.engine.connect() as conn:
            headers = [_header(*row) for row in conn.execute(query)]
        return [h for h in headers if not h.deleted][:limit]

    def sitemap_starts(self, size: int) -> list[str]:
        """The local id each sitemap of `size` records begins with, in local id order
        (deleted records included, so the walk stays on the primary key's index): one
        short index walk per sitemap, a few dozen at a million records."""
        starts: list[str] = []
        first = select(RecordRow.local_id).order_by(RecordRow.local_id).limit(1)
        with _unavailable(), self.engine.connect() as conn:
            start = conn.execute(first).scalar()
            while start is not None:
                starts.append(start)
                step = (
                    select(RecordRow.local_id)
                    .where(RecordRow.local_id >= start)
                    .order_by(RecordRow.local_id)
                    .offset(size)
                    .limit(1)
                )
                start = conn.execute(step).scalar()
        return starts

    def list_ids(
        self, start: str, after: str | None, limit: int
    ) -> list[tuple[str, datetime, bool]]:
        """(local id, datestamp, deleted) from `start` on (after `after`, when continuing),
        in local id order: one sitemap read in keyset chunks."""
        query = select(RecordRow.local_id, RecordRow.datestamp, RecordRow.deleted)
        if after is None:
            query = query.where(RecordRow.local_id >= start)
        else:
            query = query.where(RecordRow.local_id > after)
        query = query.order_by(RecordRow.local_id).limit(limit)
        with _unavailable(), self.engine.connect() as conn:
            return [(lid, stamp, bool(deleted)) for lid, stamp, deleted in conn.execute(query)]

    # -- helpers of the read side -----------------------------------------------------------

    def _page(
        self,
        conn: Connection,
        kind: str,
        selection: Selection,
        after: Position | None,
        extra: dict[str, Any],
    ) -> Sequence[Any]:
        """A page's rows, by the page statement compiled once for this database and run
        through the driver: a harvest runs it thousands of times, and SQLAlchemy's
        per-execution work (parameter and result processing) cost as much as SQLite's."""
        sql, order, constants = self._driver_page_statement(
            kind, _shape(selection), after is not None
        )
        values = {**constants, **_page_parameters(selection, after), **extra}
        for name in _DATETIME_PARAMETERS.intersection(values):
            values[name] = self._bind_datetime(values[name])
        parameters: Any = values if order is None else tuple(values[name] for name in order)
        return conn.exec_driver_sql(sql, parameters).all()

    @cached_property
    def _bind_datetime(self) -> Callable[[datetime], Any]:
        return _datetime_binder(self.engine.dialect)

    def _driver_page_statement(
        self, kind: str, shape: _Shape, after_shape: bool
    ) -> _DriverStatement:
        """(SQL, the order of its parameters or None when the driver takes them by name,
        the values of the parameters the compiler added, such as SQLite's OFFSET 0)."""
        key = (kind, shape, after_shape)
        statement = self._driver_statements.get(key)
        if statement is None:
            compiled = _page_query(kind, shape, after_shape).compile(dialect=self.engine.dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            constants = {k: v for k, v in compiled.params.items() if v is not None}
            statement = self._driver_statements[key] = (str(compiled), order, constants)
        return statement

    def _scalar(self, query: AnySelect, parameters: dict[str, Any] | None = None) -> Any:
        with _unavailable(), self.engine.connect() as conn:
            return conn.execute(query, parameters).scalar()

    def _with_fields(
        self,
        conn: Connection,
        rows: Sequence[Any],
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> list[StoredRecord]:
        """Records whose stored fragment is missing or stale come with their fields instead
        (and their files, `with_files`); a stored header of another version is left out
        (rendered afresh)."""
        stale = [row[0] for row in rows if not row[3] and row[6] != version]
        fields: dict[str, tuple[Field, ...]] = {}
        files: dict[str, tuple[File, ...]] = {}
        if stale:
            query = select(RecordRow.local_id, _FIELDS).where(RecordRow.local_id.in_(stale))
            fields = {lid: unpack_fields(text) for lid, text in conn.execute(query)}
            if with_files:
                files = _files_of(conn, stale)
        records = []
        for local_id, datestamp, set_specs, deleted, header_xml, stored_version, _, body in rows:
            header = _header(local_id, stored_datetime(datestamp), set_specs, deleted)
            if stored_version != header_version:
                header_xml = None
            if deleted:
                records.append(StoredRecord(header, None, None, header_xml))
            elif local_id in fields:
                records.append(StoredRecord(header, None, fields[local_id], header_xml,
                                            files.get(local_id, ())))  # fmt: skip
            else:
                records.append(StoredRecord(header, body, None, header_xml))
        return records

    def _stored_secret(self) -> str:
        """The token secret kept in the database, made on first use and shared by every
        process that serves this database, so tokens outlive restarts and move between
        workers."""
        query = select(MetaRow.value).where(MetaRow.key == TOKEN_SECRET_KEY)
        with self.engine.connect() as conn:
            stored = conn.execute(query).scalar()
        if stored is not None:
            return str(stored)  # the usual case: no write, so no wait behind a running load
        with self.engine.begin() as conn:
            _insert_ignore(conn, MetaRow, {"key": TOKEN_SECRET_KEY, "value": secrets.token_hex(32)})
            return str(conn.execute(query).scalar_one())

    def figures(self, now: datetime) -> StoreFigures:
        """What /metrics shows of the store, at a few rows' cost: the counts and the time
        kept by the last write (`_keep_figures`), the schema revision, the cut-off a list
        would get now. A store last written by an older version has no counts kept: they
        are counted (a full scan) until its next write."""
        keys = (COUNTS_KEY, LAST_WRITE_KEY)
        with _unavailable(), self.engine.connect() as conn, conn.begin():
            query = select(MetaRow.key, MetaRow.value).where(MetaRow.key.in_(keys))
            kept: dict[str, str] = {key: value for key, value in conn.execute(query)}
            counts = kept.get(COUNTS_KEY, "").split()
            records, deleted = (int(n) for n in counts) if len(counts) == 2 else _counts(conn)
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            cutoff = writes.current_cutoff(conn, self._lease, now)
        last = kept.get(LAST_WRITE_KEY)
        return StoreFigures(
            records=records,
            deleted=deleted,
            last_write=datetime.fromisoformat(last) if last else None,
            revision=None if revision is None else str(revision),
            cutoff=cutoff,
        )

    # -- the write side -------------------------------------------------------------------

    def list_cutoff(self, now: datetime) -> datetime:
        """The cut-off of a list that starts at `now` (see store/writes.py): never past a
        change that is not committed yet, never before one handed out already."""
        with _unavailable(), self.engine.connect() as conn:
            return writes.list_cutoff(conn, self._lease, now)

    def writers(self) -> list[writes.Writer]:
        """The writes in progress (a dead writer's row included until the next write)."""
        with _unavailable(), self.engine.connect() as conn:
            return writes.writers(conn)

    @contextmanager
    def loading(
        self,
        clock: Callable[[], datetime],
        *,
        keep_dates: bool = False,
        wait: bool = True,
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[LoadTransaction]:
        """One transaction for a whole load: commit on success, roll back on any exception
        (including KeyboardInterrupt); a killed process leaves an uncommitted transaction,
        which the database discards.

        One load at a time: another one running is waited for (`on_wait` is told who it
        is) or, with `wait` false, is a LoadBusy. The load is registered as a write in
        progress before it writes (store/writes.py), which dates its changes: `tx.dating`.
        """
        with _unavailable(), self.engine.connect() as conn:
            lease = self._new_lease()  # this load's own: it holds state while held
            if not lease.acquire(conn, wait=False):
                with conn.begin():
                    running = [w.describe() for w in writes.writers(conn)]
                who = f"another load is running ({'; '.join(running) or 'starting'})"
                if not wait:
                    raise LoadBusy(who)
                if on_wait is not None:
                    on_wait(who)
                lease.acquire(conn, wait=True)
            # Made now if it is to be made, while no reader waits for the write lock.
            self.token_secret()
            # SQLite: our transactions take the write lock at once, so loads queue
            # instead of failing midway.
            conn = conn.execution_options(immediate=True)
            try:
                write = writes.register(
                    conn, clock, keep_dates, exclusive=not isinstance(lease, writes.NoLease)
                )
                try:
                    yield from self._load_transaction(conn, write)
                except BaseException:
                    with suppress(DBAPIError, SQLAlchemyError):
                        writes.abandon(conn, write)
                    raise
            finally:
                lease.release(conn)

    def _load_transaction(self, conn: Connection, write: writes.Write) -> Iterator[LoadTransaction]:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # on the driver's connection: SQLAlchemy's would begin a transaction
            conn.connection.driver_connection.execute(f"PRAGMA cache_size={LOAD_CACHE_SIZE}")  # type: ignore[union-attr]
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # Readers are not blocked; anything else writing records waits for us.
                conn.exec_driver_sql("LOCK TABLE records IN EXCLUSIVE MODE")
            tx = LoadTransaction(conn, write)
            yield tx
            _keep_figures(tx)
            writes.finish(conn, write)
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA cache_size=-2000")  # type: ignore[union-attr]  # SQLite's default

    @cached_property
    def _lease(self) -> writes.Lease:
        """The lease as lists look at it (whether a writer lives)."""
        return self._new_lease()

    def _new_lease(self) -> writes.Lease:
        return writes.lease_for(self.engine.dialect.name, self.engine.url.database)


@dataclass(frozen=True)
class StoreStats:
    records: int
    deleted: int
    earliest: datetime | None
    latest: datetime | None
    sets: dict[str, tuple[str, int]]  # spec → (name, records in it or below it)


@dataclass(frozen=True)
class StoreFigures:
    """The store's state as /metrics reports it (SqlStore.figures)."""

    records: int  # deleted ones included
    deleted: int
    last_write: datetime | None  # when the last load (delete, refresh-sets) committed
    revision: str | None  # the schema's Alembic revision
    cutoff: datetime  # of a list starting now


# Meta keys each write commits with its changes: "RECORDS DELETED", and its commit time.
COUNTS_KEY = "counts"
LAST_WRITE_KEY = "last_write"


def _keep_figures(tx: LoadTransaction) -> None:
    """In the transaction that commits a write: the counts /metrics reports, so a scrape
    reads them instead of counting a million rows (one pass here, per write)."""
    records, deleted = _counts(tx.conn)
    tx.set_meta(COUNTS_KEY, f"{records} {deleted}")
    tx.set_meta(LAST_WRITE_KEY, datetime.now(UTC).isoformat())


def _counts(conn: Connection) -> tuple[int, int]:
    """Records (deleted included) and deleted records, in one pass over the table."""
    query = select(func.count(), func.count().filter(RecordRow.deleted.is_(True)))
    total, deleted = conn.execute(query).one()
    return int(total), int(deleted)


@dataclass(frozen=True)
class Existing:
    """What a load needs to know of a record already stored."""

    content_hash: str
    datestamp: datetime
    deleted: bool
    set_specs: tuple[str, ...]


class StoredState(NamedTuple):
    """A stored record as the re-evaluation of virtual sets reads it."""

    local_id: str
    datestamp: datetime
    deleted: bool
    set_specs: tuple[str, ...]
    accessioned: datetime | None
    fields: bytes  # packed (see unpack_fields)


class Restamp(NamedTuple):
    """A record whose set specs change, with what changes with them (LoadTransaction.
    restamp): the tree of sets changed above it, or it entered or left a virtual set."""

    local_id: str
    datestamp: datetime
    set_specs: tuple[str, ...]
    content_hash: str
    header: bytes
    header_version: str


@dataclass(frozen=True)
class RecordWrite:
    """One record to insert or replace, with its renderings per format."""

    local_id: str
    datestamp: datetime
    deleted: bool
    set_specs: tuple[str, ...]
    fields: bytes  # see pack_fields
    content_hash: str
    accessioned: datetime | None
    fragments: dict[str, tuple[str, bytes]]  # prefix → (version, body)
    header: bytes  # the <header> as served, rendered for `datestamp`
    header_version: str
    files: tuple[File, ...] = ()


class LoadTransaction:
    """The write operations of one load, all inside one database transaction."""

    def __init__(self, conn: Connection, write: writes.Write) -> None:
        self.conn = conn
        # When this load dates what it changes (store/writes.py).
        self.dating = write
        self._bind_datetime = _datetime_binder(conn.dialect)
        self._datetimes: dict[datetime, Any] = {}

    def is_empty(self) -> bool:
        return self.conn.execute(select(RecordRow.local_id).limit(1)).first() is None

    def existing(self, local_ids: Iterable[str]) -> dict[str, Existing]:
        ids = list(local_ids)
        found: dict[str, Existing] = {}
        for start in range(0, len(ids), 500):
            query = select(
                RecordRow.local_id,
                RecordRow.content_hash,
                RecordRow.datestamp,
                RecordRow.deleted,
                RecordRow.set_specs,
            ).where(RecordRow.local_id.in_(ids[start : start + 500]))
            for lid, content_hash, datestamp, deleted, specs in self.conn.execute(query):
                found[lid] = Existing(content_hash, datestamp, deleted, tuple(specs.split()))
        return found

    def stored_fields(self, local_ids: Sequence[str]) -> dict[str, tuple[Field, ...]]:
        """The stored fields of these records."""
        return {lid: unpack_fields(packed) for lid, packed in self.packed_fields(local_ids).items()}

    def packed_fields(self, local_ids: Sequence[str]) -> dict[str, str | bytes]:
        """The stored fields of these records as they are stored (`unpack_fields` reads
        them): a metadata CSV row is merged with them, by a worker process if the load
        has any, so they are handed on as they are, ready to be sent."""
        found: dict[str, str | bytes] = {}
        for start in range(0, len(local_ids), 500):
            chunk = list(local_ids[start : start + 500])
            query = select(RecordRow.local_id, _FIELDS).where(RecordRow.local_id.in_(chunk))
            found.update(
                (lid, packed if isinstance(packed, str | bytes) else bytes(packed))
                for lid, packed in self.conn.execute(query)
            )
        return found

    def stored_files(self, local_ids: Sequence[str]) -> dict[str, tuple[File, ...]]:
        """The stored files of these records (only those that have files)."""
        return _files_of(self.conn, local_ids)

    def ids_with_hashes(self, hashes: set[int]) -> dict[int, str]:
        """The stored ids whose Python hash is one of `hashes` (a load names the records
        it found twice, having kept only their hashes)."""
        found: dict[int, str] = {}
        after = ""
        while True:
            query = (
                select(RecordRow.local_id)
                .where(RecordRow.local_id > after)
                .order_by(RecordRow.local_id)
                .limit(10_000)
            )
            ids = self.conn.execute(query).scalars().all()
            if not ids:
                return found
            found.update((hash(lid), lid) for lid in ids if hash(lid) in hashes)
            after = ids[-1]

    def count_live(self) -> int:
        """How many records are stored and not deleted (a --sync load's guard is a share
        of them)."""
        query = select(func.count()).select_from(RecordRow).where(RecordRow.deleted.is_(False))
        return int(self.conn.execute(query).scalar_one())

    def live_ids(self, batch: int = 10_000) -> Iterator[list[str]]:
        """The ids of the records stored and not deleted, in id order, a batch at a time
        (a --sync load tombstones those its export does not hold)."""
        after = ""
        while True:
            query = (
                select(RecordRow.local_id)
                .where(RecordRow.local_id > after, RecordRow.deleted.is_(False))
                .order_by(RecordRow.local_id)
                .limit(batch)
            )
            ids = list(self.conn.execute(query).scalars())
            if not ids:
                return
            yield ids
            after = ids[-1]

    def write(self, records: Sequence[RecordWrite], replacing: Iterable[str]) -> None:
        """Insert new records and replace the ones named in `replacing`, with their
        memberships (ancestors included) and fragments."""
        replaced = list(replacing)
        for start in range(0, len(replaced), 500):
            chunk = replaced[start : start + 500]
            for table in (MembershipRow, FragmentRow, FileRow, RecordRow):
                self.conn.execute(delete(table).where(table.local_id.in_(chunk)))
        if not records:
            return
        stamp = self._datetime
        self._insert(
            RecordRow,
            ("local_id", "datestamp", "deleted", "set_specs", "content_hash", "accessioned",
             "header_version", "header", "fields"),
            [
                (r.local_id, stamp(r.datestamp), r.deleted, " ".join(r.set_specs),
                 r.content_hash, stamp(r.accessioned), r.header_version, r.header,
                 r.fields)
                for r in records
            ],
        )  # fmt: skip
        memberships = [
            (spec, r.local_id, stamp(r.datestamp))
            for r in records
            for spec in sorted({a for s in r.set_specs for a in ancestors(s)})
        ]
        if memberships:
            self._insert(MembershipRow, ("set_spec", "local_id", "datestamp"), memberships)
        fragments = [
            (r.local_id, prefix, version, body)
            for r in records
            for prefix, (version, body) in r.fragments.items()
        ]
        if fragments:
            self._insert(FragmentRow, ("local_id", "prefix", "version", "body"), fragments)
        files = [(r.local_id, *f) for r in records for f in r.files]
        if files:
            self._insert(FileRow, _FILE_COLUMNS, files)

    def members(self, specs: Iterable[str]) -> list[str]:
        """The records (deleted ones too) served in any of `specs`, in id order."""
        wanted = sorted(set(specs))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            query = select(MembershipRow.local_id).where(
                MembershipRow.set_spec.in_(wanted[start : start + 500])
            )
            found.update(self.conn.execute(query).scalars())
        return sorted(found)

    def _insert(self, table: Any, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Bulk insert straight through the driver's executemany: a load writes millions of
        rows, and SQLAlchemy's per-row parameter handling would cost more than SQLite's
        own work. Values arrive ready: datetimes through `_datetime`, the rest as the
        driver takes them (str, bytes, bool, None)."""
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        names = ", ".join(columns)  # this module's constants, never input
        sql = f"INSERT INTO {table.__tablename__} ({names}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608, E501
        self.conn.exec_driver_sql(sql, rows)

    def _datetime(self, value: datetime | None) -> Any:
        """A datetime as the column type binds it on this database (SQLite: its text),
        remembered: a record's datestamp is bound for it and each of its memberships, and
        records loaded together often share their accessioned second."""
        if value is None:
            return None
        bound = self._datetimes.get(value)
        if bound is None:
            if len(self._datetimes) >= 4096:
                self._datetimes.clear()
            bound = self._datetimes[value] = self._bind_datetime(value)
        return bound

    def refresh_headers(
        self, render_header: Callable[[Header], bytes], header_version: str
    ) -> None:
        """Render the stored <header> of every record whose header is of another version (or
        missing), keyed on local_id so rewriting them is safe."""
        after = ""
        changed = (
            update(RecordRow)
            .where(RecordRow.local_id == bindparam("id"))
            .values(header=bindparam("xml"), header_version=header_version)
        )
        while True:
            query = (
                select(
                    RecordRow.local_id,
                    RecordRow.datestamp,
                    RecordRow.set_specs,
                    RecordRow.deleted,
                )
                .where(
                    RecordRow.local_id > after,
                    RecordRow.header_version.is_(None)
                    | (RecordRow.header_version != header_version),
                )
                .order_by(RecordRow.local_id)
                .limit(1000)
            )
            rows = self.conn.execute(query).all()
            if not rows:
                return
            self.conn.execute(
                changed, [{"id": row[0], "xml": render_header(_header(*row))} for row in rows]
            )
            after = rows[-1][0]

    def known_sets(self) -> dict[str, SetInfo]:
        rows = self.conn.execute(
            select(SetRow.spec, SetRow.name, SetRow.description, SetRow.parent)
        )
        return {
            spec: SetInfo(spec, name, description, parent)
            for spec, name, description, parent in rows
        }

    def put_set(self, info: SetInfo, exists: bool) -> None:
        values = {"name": info.name, "description": info.description, "parent": info.parent}
        if exists:
            self.conn.execute(update(SetRow).where(SetRow.spec == info.spec).values(**values))
        else:
            self.conn.execute(insert(SetRow).values(spec=info.spec, **values))

    def get_meta(self, key: str) -> str | None:
        return self.conn.execute(select(MetaRow.value).where(MetaRow.key == key)).scalar()

    def remove_set(self, spec: str) -> None:
        """A set no longer served (a virtual set taken out of the configuration, its
        records gone from it first)."""
        self.conn.execute(delete(SetRow).where(SetRow.spec == spec))

    def records_in_batches(self, batch: int) -> Iterator[list[StoredState]]:
        """Every record as a load's re-evaluation of virtual sets needs it, in batches keyed
        on local_id (each read whole before the caller rewrites any of it)."""
        after = ""
        while True:
            query = (
                select(RecordRow.local_id, RecordRow.datestamp, RecordRow.deleted,
                       RecordRow.set_specs, RecordRow.accessioned, _FIELDS)
                .where(RecordRow.local_id > after)
                .order_by(RecordRow.local_id)
                .limit(batch)
            )  # fmt: skip
            rows = [
                StoredState(lid, stamp, bool(deleted), tuple(specs.split()), accessioned, packed)
                for lid, stamp, deleted, specs, accessioned, packed in self.conn.execute(query)
            ]
            if not rows:
                return
            yield rows
            after = rows[-1].local_id

    def restamp(self, changes: Sequence[Restamp]) -> None:
        """Give records new set specs (and with them a new datestamp, content hash and
        header), their memberships rewritten; their fields and fragments stay."""
        if not changes:
            return
        changed = (
            update(RecordRow)
            .where(RecordRow.local_id == bindparam("id"))
            .values(
                datestamp=bindparam("stamp", type_=UTCDateTime()),
                set_specs=bindparam("specs"),
                content_hash=bindparam("hash"),
                header=bindparam("xml"),
                header_version=bindparam("version"),
            )
        )
        self.conn.execute(
            changed,
            [
                {"id": c.local_id, "stamp": c.datestamp, "specs": " ".join(c.set_specs),
                 "hash": c.content_hash, "xml": c.header, "version": c.header_version}
                for c in changes
            ],
        )  # fmt: skip
        ids = [c.local_id for c in changes]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            self.conn.execute(delete(MembershipRow).where(MembershipRow.local_id.in_(chunk)))
        stamp = self._datetime
        memberships = [
            (spec, c.local_id, stamp(c.datestamp))
            for c in changes
            for spec in sorted({a for s in c.set_specs for a in ancestors(s)})
        ]
        if memberships:
            self._insert(MembershipRow, ("set_spec", "local_id", "datestamp"), memberships)

    def forget_meta(self, key: str) -> None:
        self.conn.execute(delete(MetaRow).where(MetaRow.key == key))

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(delete(MetaRow).where(MetaRow.key == key))
        self.conn.execute(insert(MetaRow).values(key=key, value=value))

    def stale_records(
        self, prefix: str, version: str, batch: int
    ) -> Iterator[list[tuple[str, tuple[Field, ...]]]]:
        """Live records whose `prefix` rendering is missing or from another version, in
        batches of (local_id, fields), keyed on local_id so rewriting them is safe."""
        after = ""
        while True:
            query = (
                select(RecordRow.local_id, _FIELDS)
                .outerjoin(FragmentRow, _fragment_join(RecordRow.local_id, prefix))
                .where(
                    RecordRow.deleted.is_(False),
                    RecordRow.local_id > after,
                    (FragmentRow.version.is_(None)) | (FragmentRow.version != version),
                )
                .order_by(RecordRow.local_id)
                .limit(batch)
            )
            rows = [(lid, unpack_fields(text)) for lid, text in self.conn.execute(query)]
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    def put_fragments(self, prefix: str, version: str, bodies: Sequence[tuple[str, bytes]]) -> None:
        ids = [lid for lid, _ in bodies]
        self.conn.execute(
            delete(FragmentRow).where(FragmentRow.prefix == prefix, FragmentRow.local_id.in_(ids))
        )
        self.conn.execute(
            insert(FragmentRow),
            [
                {"local_id": lid, "prefix": prefix, "version": version, "body": b}
                for lid, b in bodies
            ],
        )

    def optimize(self) -> None:
        """Keep the planner's statistics fresh after a load, so page queries stay on the index."""
        if self.conn.dialect.name == "sqlite" or self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("ANALYZE")


# -- queries ------------------------------------------------------------------------------

# The datestamp is read raw and made a datetime by `stored_datetime`: the same result as
# the column type's processing, for a fraction of its cost on a page of a hundred rows.
_HEADER_COLUMNS = (
    RecordRow.local_id,
    type_coerce(RecordRow.datestamp, NullType()).label("datestamp"),
    RecordRow.set_specs,
    RecordRow.deleted,
    RecordRow.header,
    RecordRow.header_version,
)
_RECORD_COLUMNS = (*_HEADER_COLUMNS, FragmentRow.version, FragmentRow.body)
# Read as the driver gives it (see unpack_fields): older stores hold text there.
_FIELDS: Any = type_coerce(RecordRow.fields, NullType())


# The files table's columns in records.File's order, after the record's id.
_FILE_COLUMNS = ("local_id", "name", "bundle", "size", "md5", "mime", "sequence",
                 "description", "is_primary", "access", "permissions", "uuid")  # fmt: skip
_FILE_SELECT = tuple(getattr(FileRow, c) for c in _FILE_COLUMNS)


def _files_of(conn: Connection, local_ids: Sequence[str]) -> dict[str, tuple[File, ...]]:
    """The files of these records, each record's in sequence order (records without files
    are not in the answer): one query per 500 ids, on the primary key."""
    found: dict[str, list[File]] = {}
    ids = list(dict.fromkeys(local_ids))
    for start in range(0, len(ids), 500):
        query = (
            select(*_FILE_SELECT)
            .where(FileRow.local_id.in_(ids[start : start + 500]))
            .order_by(FileRow.local_id, FileRow.sequence)
        )
        for lid, *values in conn.execute(query):
            values[7] = bool(values[7])
            found.setdefault(lid, []).append(File(*values))
    return {lid: tuple(files) for lid, files in found.items()}


def _record_columns() -> AnySelect:
    return select(*_RECORD_COLUMNS)


def _fragment_join(local_id: Any, prefix: Any) -> Any:
    return (FragmentRow.local_id == local_id) & (FragmentRow.prefix == prefix)


_Shape = tuple[bool, bool]  # (in a set, with a from date)
_DriverStatement = tuple[str, tuple[str, ...] | None, dict[str, Any]]


@lru_cache(maxsize=64)
def _page_query(kind: str, selection_shape: _Shape, after_shape: bool) -> AnySelect:
    """The statement for one kind of page ("count", "headers" or "records") and one shape
    of selection, built once with bind parameters for the values (`_page_parameters`):
    pages run it compiled, through the driver (`SqlStore._page`), the count through
    SQLAlchemy.

    Restricted to the selection and continued after a keyset position, in datestamp order.
    For a set the order is the membership index's: (set_spec, datestamp, local_id).
    """
    columns: Any
    if kind == "count":
        columns = [func.count()]
    elif kind == "headers":
        columns = _HEADER_COLUMNS
    else:
        columns = _RECORD_COLUMNS
    query = select(*columns)
    in_set, with_from = selection_shape
    if in_set:
        datestamp, local_id = MembershipRow.datestamp, MembershipRow.local_id
        query = (
            query.select_from(MembershipRow)
            .join(RecordRow, RecordRow.local_id == MembershipRow.local_id)
            .where(MembershipRow.set_spec == bindparam("set_spec"))
        )
    else:
        datestamp, local_id = RecordRow.datestamp, RecordRow.local_id
        query = query.select_from(RecordRow)
    if kind == "records":
        query = query.outerjoin(
            FragmentRow, _fragment_join(RecordRow.local_id, bindparam("prefix"))
        )
    if with_from:
        query = query.where(datestamp >= bindparam("from_", type_=UTCDateTime()))
    query = query.where(datestamp <= bindparam("until", type_=UTCDateTime()))
    if after_shape:
        query = query.where(
            tuple_(datestamp, local_id)
            > tuple_(bindparam("after_datestamp", type_=UTCDateTime()), bindparam("after_id"))
        )
    if kind == "count":
        return query
    return query.order_by(datestamp, local_id).limit(bindparam("limit"))


def _shape(selection: Selection) -> _Shape:
    return selection.set_spec is not None, selection.from_ is not None


def _datetime_binder(dialect: Dialect) -> Callable[[datetime], Any]:
    """A datetime as the column type binds it on this database (SQLite: its text), for
    statements run through the driver."""
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


# The page statements' parameters that are datestamps, bound as the column type binds them.
_DATETIME_PARAMETERS = frozenset({"from_", "until", "after_datestamp"})


def _page_parameters(selection: Selection, after: Position | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"until": selection.until}
    if selection.set_spec is not None:
        parameters["set_spec"] = selection.set_spec
    if selection.from_ is not None:
        parameters["from_"] = selection.from_
    if after is not None:
        parameters["after_datestamp"] = after.datestamp
        parameters["after_id"] = after.local_id
    return parameters


def _header(local_id: str, datestamp: datetime, set_specs: str, deleted: bool) -> Header:
    return Header(local_id, datestamp, tuple(set_specs.split()), bool(deleted))


# -- engine and schema --------------------------------------------------------------------


def _create_engine(url: str, password: str | None = None) -> Engine:
    try:
        if password is not None:
            url = make_url(url).set(password=password).render_as_string(hide_password=False)
        if url.startswith("sqlite"):
            memory = url in ("sqlite://", "sqlite:///:memory:")
            if not memory:
                _create_private_file(url)
            engine = create_engine(
                url,
                poolclass=StaticPool if memory else None,
                connect_args={"timeout": LOCK_WAIT_SECONDS},
            )
            _tune_sqlite(engine)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as e:
        from .failures import cannot_open

        raise StoreUnavailable(cannot_open(url, e, password)) from e


def _create_private_file(url: str) -> None:
    """Create a new SQLite database file readable and writable by its owner only (0600),
    before SQLite creates it as the umask says (usually 0644): it holds the token secret
    and private fields. SQLite gives the -wal and -shm files the database file's mode.
    An existing file keeps its mode; a `file:` URI is SQLite's to open."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with suppress(OSError):  # it exists, or SQLite will say why it cannot be opened
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _tune_sqlite(engine: Engine) -> None:
    """WAL lets readers go on while a load writes; explicit BEGINs make transactions real
    (the sqlite3 module otherwise starts them late and on its own). The page size is set
    first, as it only takes effect before a new database's first write."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        _wal(cursor)
        for pragma in (
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A load takes the write lock at once, so two loads queue instead of failing midway.
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _wal(cursor: Any) -> None:
    """Put the database in WAL mode, waiting as long as for any lock. SQLite does
    not wait on its own here: a new database that another process is creating at that
    moment (two loads, or a load and a server, started together) answers "database is
    locked" at once."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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
