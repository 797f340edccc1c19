"""The load transaction: one load's writes in one database transaction, and the value
types it reads and writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..errors import CannotWrite, LoadBusy
from ..files import ORIGINAL
from ..packing import unpack_fields
from ..record_source import Field, File, Header, SetInfo
from . import readonly, writes
from .bulk import among, id_chunks, insert_rows
from .columns import FIELDS, FILE_COLUMNS, datetime_binder, files_of, fragment_join, row_headers
from .engine import bound_load_lock_waits, refresh_statistics, unavailable, unbound_lock_waits
from .meta import (
    COUNTS_KEY,
    LAST_WRITE_KEY,
    SET_COUNTS_KEY,
    MetaKeys,
    counted_set_counts,
    read_kept_set_counts,
    set_counts_value,
    stored_counts,
)
from .schema import (
    UTCDateTime,
    files_table,
    fragments_table,
    memberships_table,
    meta_table,
    records_table,
    sets_table,
)

# SQLite's page cache during a load, in KiB (negative: a size, not pages): the indexes
# being filled stay in memory instead of going back and forth to the write-ahead log.
LOAD_CACHE_SIZE = -65536


def ancestors(spec: str) -> list[str]:
    """`a:b:c` → [`a`, `a:b`, `a:b:c`]: a record in a set is in every set above it."""
    parts = spec.split(":")
    return [":".join(parts[: i + 1]) for i in range(len(parts))]


class Loading(MetaKeys):
    """SqlStore's write side: a load's transaction, and the writes in progress."""

    # -- the write side -------------------------------------------------------------------

    def list_cutoff(self, now: datetime) -> datetime:
        """The cut-off of a list that starts at `now` (see store/writes.py): never past a
        change that is not committed yet, never before one handed out already."""
        with unavailable(), self.engine.connect() as conn:
            if self.read_only is not None:
                return readonly.cutoff(conn)
            return writes.list_cutoff(conn, self._lease, now)

    def writers(self) -> list[writes.Writer]:
        """The writes in progress (a dead writer's row included until the next write)."""
        with unavailable(), self.engine.connect() as conn:
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
        if self.read_only is not None:
            raise CannotWrite(
                f"cannot write the store: {self.read_only}; run this where the store can be "
                "written (the primary, a role that can write)"
            )
        with unavailable(), self.engine.connect() as conn:
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
                bound_load_lock_waits(conn)
                write = writes.register(
                    conn, clock, keep_dates, exclusive=not isinstance(lease, writes.NoLease)
                )
                try:
                    yield from self._load_transaction(conn, write, clock)
                except BaseException:
                    with suppress(DBAPIError, SQLAlchemyError):
                        writes.abandon(conn, write)
                    raise
            finally:
                unbound_lock_waits(conn)
                lease.release(conn)

    def _load_transaction(
        self, conn: Connection, write: writes.Write, clock: Callable[[], datetime]
    ) -> Iterator[LoadTransaction]:
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
            writes.finish(conn, write, clock, tx.latest)
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA cache_size=-2000")  # type: ignore[union-attr]  # SQLite's default


def _keep_figures(tx: LoadTransaction) -> None:
    """In the transaction that commits a write: the counts /metrics reports, so a scrape
    reads them instead of counting a million rows (one pass here, per write), and each
    set's size, for the home page and a set's list (the last write's, changed by what
    this one added and removed)."""
    records, deleted = stored_counts(tx.conn)
    sizes = tx.set_sizes()
    written = datetime.now(UTC).isoformat()
    tx.set_meta(COUNTS_KEY, f"{records} {deleted}")
    tx.set_meta(LAST_WRITE_KEY, written)
    tx.set_meta(SET_COUNTS_KEY, set_counts_value(written, sizes))


@dataclass(frozen=True, slots=True)
class RecordState:
    """A stored record's place in the protocol: what its header says (id, datestamp,
    deleted or not, sets). The load's value types below are this with what each adds."""

    local_id: str
    datestamp: datetime
    deleted: bool
    set_specs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Existing(RecordState):
    """What a load needs to know of a record already stored."""

    content_hash: str


@dataclass(frozen=True, slots=True)
class StoredState(RecordState):
    """A stored record as the re-evaluation of virtual sets reads it."""

    accessioned: datetime | None
    fields: bytes  # packed (see unpack_fields)


@dataclass(frozen=True, slots=True)
class Restamp(RecordState):
    """A record whose set specs change, with what changes with them (LoadTransaction.
    restamp): the tree of sets changed above it, or it entered or left a virtual set.
    Its `deleted` stays as stored."""

    content_hash: str
    header: bytes
    header_version: str


@dataclass(frozen=True, slots=True)
class RecordWrite(RecordState):
    """One record to insert or replace, with its renderings per format."""

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
        self._bind_datetime = datetime_binder(conn.dialect)
        self._datetimes: dict[datetime, Any] = {}
        # The latest datestamp this write gave a record: the mark rises past it at the
        # commit (writes.finish), so servers that only read the mark list it at once.
        self.latest: datetime | None = None
        self._served: dict[tuple[str, ...], tuple[str, ...]] = {}
        # The memberships this write added less those it removed, per set.
        self._members: Counter[str] = Counter()

    def is_empty(self) -> bool:
        return self.conn.execute(select(records_table.c.local_id).limit(1)).first() is None

    def existing(self, local_ids: Iterable[str]) -> dict[str, Existing]:
        ids = list(local_ids)
        found: dict[str, Existing] = {}
        c = records_table.c
        for chunk in id_chunks(self.conn, ids):
            query = select(c.local_id, c.content_hash, c.datestamp, c.deleted, c.set_specs).where(
                among(self.conn, c.local_id, chunk)
            )
            for lid, content_hash, datestamp, deleted, specs in self.conn.execute(query):
                found[lid] = Existing(lid, datestamp, deleted, tuple(specs.split()), content_hash)
        return found

    def stored_fields(self, local_ids: Sequence[str]) -> dict[str, tuple[Field, ...]]:
        """The stored fields of these records."""
        return {lid: unpack_fields(packed) for lid, packed in self.packed_fields(local_ids).items()}

    def packed_fields(self, local_ids: Sequence[str]) -> dict[str, str | bytes]:
        """The stored fields of these records as they are stored (`unpack_fields` reads
        them): a metadata CSV row is merged with them, by a worker process if the load
        has any, so they are handed on as they are, ready to be sent."""
        found: dict[str, str | bytes] = {}
        for chunk in id_chunks(self.conn, list(local_ids)):
            query = select(records_table.c.local_id, FIELDS).where(
                among(self.conn, records_table.c.local_id, chunk)
            )
            found.update(
                (lid, packed if isinstance(packed, str | bytes) else bytes(packed))
                for lid, packed in self.conn.execute(query)
            )
        return found

    def stored_files(self, local_ids: Sequence[str]) -> dict[str, tuple[File, ...]]:
        """The stored files of these records (only those that have files)."""
        return files_of(self.conn, local_ids)

    def content_file_permissions(self) -> list[tuple[str, str]]:
        """(local_id, permissions) of each live record's content file that has permissions:
        the only files whose access the calendar changes (an embargo: files.embargo_of)."""
        f, r = files_table.c, records_table.c
        query = (
            select(f.local_id, f.permissions)
            .join(records_table, r.local_id == f.local_id)
            .where(f.permissions.is_not(None), f.bundle == ORIGINAL, r.deleted.is_(False))
        )
        return [(local_id, permissions) for local_id, permissions in self.conn.execute(query)]

    def ids_with_hashes(self, hashes: set[int]) -> dict[int, str]:
        """The stored ids whose Python hash is one of `hashes` (a load names the records
        it found twice, having kept only their hashes)."""
        found: dict[int, str] = {}
        after = ""
        while True:
            query = (
                select(records_table.c.local_id)
                .where(records_table.c.local_id > after)
                .order_by(records_table.c.local_id)
                .limit(10_000)
            )
            ids = self.conn.execute(query).scalars().all()
            if not ids:
                return found
            found.update((hash(lid), lid) for lid in ids if hash(lid) in hashes)
            after = ids[-1]

    def count_live(self) -> int:
        """How many records are stored and not deleted (a --sync load's guard is a share
        of them): all of them less the deleted ones, each counted on an index, in this
        transaction. Counting the rows not deleted read every row of the table (0.35 s at
        1,000,000 records, warm)."""
        total, deleted = stored_counts(self.conn)
        return total - deleted

    def live_ids(self, batch: int = 10_000) -> Iterator[list[str]]:
        """The ids of the records stored and not deleted, in id order, a batch at a time
        (a --sync load tombstones those its export does not hold)."""
        after = ""
        while True:
            query = (
                select(records_table.c.local_id)
                .where(records_table.c.local_id > after, records_table.c.deleted.is_(False))
                .order_by(records_table.c.local_id)
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
        for chunk in id_chunks(self.conn, list(replacing)):
            self._leave_sets(chunk)
            for table in (fragments_table, files_table, records_table):
                self.conn.execute(delete(table).where(among(self.conn, table.c.local_id, chunk)))
        if not records:
            return
        self._dated(max(r.datestamp for r in records))
        stamp = self._datetime
        self._insert(
            records_table,
            ("local_id", "datestamp", "deleted", "set_specs", "content_hash", "accessioned",
             "header_version", "header", "fields"),
            [
                (r.local_id, stamp(r.datestamp), r.deleted, " ".join(r.set_specs),
                 r.content_hash, stamp(r.accessioned), r.header_version, r.header,
                 r.fields)
                for r in records
            ],
        )  # fmt: skip
        served = self._served_in
        memberships = [
            (spec, r.local_id, stamp(r.datestamp)) for r in records for spec in served(r.set_specs)
        ]
        self._join_sets(memberships)
        fragments = [
            (r.local_id, prefix, version, body)
            for r in records
            for prefix, (version, body) in r.fragments.items()
        ]
        if fragments:
            self._insert(fragments_table, ("local_id", "prefix", "version", "body"), fragments)
        files = [(r.local_id, *f) for r in records for f in r.files]
        if files:
            self._insert(files_table, FILE_COLUMNS, files)

    def members(self, specs: Iterable[str]) -> list[str]:
        """The records (deleted ones too) served in any of `specs`, in id order."""
        wanted = sorted(set(specs))
        found: set[str] = set()
        for chunk in id_chunks(self.conn, wanted):
            query = select(memberships_table.c.local_id).where(
                among(self.conn, memberships_table.c.set_spec, chunk)
            )
            found.update(self.conn.execute(query).scalars())
        return sorted(found)

    def _leave_sets(self, local_ids: Sequence[str]) -> None:
        """Take these records out of every set (to be written again), counted per set."""
        c = memberships_table.c
        gone = delete(memberships_table).where(among(self.conn, c.local_id, local_ids))
        self._members.subtract(self.conn.execute(gone.returning(c.set_spec)).scalars())

    def _join_sets(self, memberships: list[tuple[str, str, Any]]) -> None:
        """Insert memberships (set, record, datestamp), counted per set."""
        if memberships:
            self._insert(memberships_table, ("set_spec", "local_id", "datestamp"), memberships)
            self._members.update(spec for spec, _, _ in memberships)

    def set_sizes(self) -> dict[str, int]:
        """Each set's records once this write commits: the sizes the last write kept,
        changed by the memberships this one added and removed. Counted on the membership
        index instead when none were kept (a store last written before 1.1, or by a
        version that does not keep them), or if they do not add up."""
        kept = read_kept_set_counts(self.conn)
        if kept is None:
            return counted_set_counts(self.conn)
        sizes = Counter(kept)
        sizes.update(self._members)
        if any(n < 0 for n in sizes.values()):
            return counted_set_counts(self.conn)
        return {spec: n for spec, n in sizes.items() if n}

    def _insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Bulk insert straight through the driver (store/bulk.py: COPY on PostgreSQL,
        executemany on SQLite): a load writes millions of rows, and SQLAlchemy's per-row
        parameter handling would cost more than the database's own work. Values arrive
        ready: datetimes through `_datetime`, the rest as the driver takes them (str,
        bytes, bool, int, None)."""
        insert_rows(self.conn, table, columns, rows)

    def _dated(self, latest: datetime) -> None:
        if self.latest is None or latest > self.latest:
            self.latest = latest

    def _served_in(self, set_specs: tuple[str, ...]) -> tuple[str, ...]:
        """The sets a record with these specs is a member of (ancestors included), sorted,
        remembered: a repository's records fall in a few combinations of sets, and working
        them out again for every record cost a load's writing process a tenth of its time."""
        served = self._served.get(set_specs)
        if served is None:
            if len(self._served) >= 4096:
                self._served.clear()
            served = tuple(sorted({a for s in set_specs for a in ancestors(s)}))
            self._served[set_specs] = served
        return served

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
        c = records_table.c
        changed = (
            update(records_table)
            .where(c.local_id == bindparam("id"))
            .values(header=bindparam("xml"), header_version=header_version)
        )
        while True:
            query = (
                select(c.local_id, c.datestamp, c.set_specs, c.deleted)
                .where(
                    c.local_id > after,
                    c.header_version.is_(None) | (c.header_version != header_version),
                )
                .order_by(c.local_id)
                .limit(1000)
            )
            rows = self.conn.execute(query).all()
            if not rows:
                return
            self.conn.execute(
                changed,
                [
                    {"id": row[0], "xml": render_header(header)}
                    for row, header in zip(rows, row_headers(rows), strict=True)
                ],
            )
            after = rows[-1][0]

    def known_sets(self) -> dict[str, SetInfo]:
        rows = self.conn.execute(
            select(
                sets_table.c.spec, sets_table.c.name, sets_table.c.description, sets_table.c.parent
            )
        )
        return {
            spec: SetInfo(spec, name, description, parent)
            for spec, name, description, parent in rows
        }

    def put_set(self, info: SetInfo, exists: bool) -> None:
        values = {"name": info.name, "description": info.description, "parent": info.parent}
        if exists:
            self.conn.execute(
                update(sets_table).where(sets_table.c.spec == info.spec).values(**values)
            )
        else:
            self.conn.execute(insert(sets_table).values(spec=info.spec, **values))

    def get_meta(self, key: str) -> str | None:
        return self.conn.execute(select(meta_table.c.value).where(meta_table.c.key == key)).scalar()

    def remove_set(self, spec: str) -> None:
        """A set no longer served (a virtual set taken out of the configuration, its
        records gone from it first)."""
        self.conn.execute(delete(sets_table).where(sets_table.c.spec == spec))

    def records_in_batches(self, batch: int) -> Iterator[list[StoredState]]:
        """Every record as a load's re-evaluation of virtual sets needs it, in batches keyed
        on local_id (each read whole before the caller rewrites any of it)."""
        after = ""
        while True:
            query = (
                select(records_table.c.local_id, records_table.c.datestamp, records_table.c.deleted,
                       records_table.c.set_specs, records_table.c.accessioned, FIELDS)
                .where(records_table.c.local_id > after)
                .order_by(records_table.c.local_id)
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
        self._dated(max(c.datestamp for c in changes))
        changed = (
            update(records_table)
            .where(records_table.c.local_id == bindparam("id"))
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
        for chunk in id_chunks(self.conn, ids):
            self._leave_sets(chunk)
        stamp = self._datetime
        served = self._served_in
        memberships = [
            (spec, c.local_id, stamp(c.datestamp)) for c in changes for spec in served(c.set_specs)
        ]
        self._join_sets(memberships)

    def forget_meta(self, key: str) -> None:
        self.conn.execute(delete(meta_table).where(meta_table.c.key == key))

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(delete(meta_table).where(meta_table.c.key == key))
        self.conn.execute(insert(meta_table).values(key=key, value=value))

    def stale_records(
        self, prefix: str, version: str, batch: int
    ) -> Iterator[list[tuple[str, tuple[Field, ...]]]]:
        """Live records whose `prefix` rendering is missing or from another version, in
        batches of (local_id, fields), keyed on local_id so rewriting them is safe."""
        after = ""
        while True:
            query = (
                select(records_table.c.local_id, FIELDS)
                .outerjoin(fragments_table, fragment_join(records_table.c.local_id, prefix))
                .where(
                    records_table.c.deleted.is_(False),
                    records_table.c.local_id > after,
                    (fragments_table.c.version.is_(None)) | (fragments_table.c.version != version),
                )
                .order_by(records_table.c.local_id)
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
            delete(fragments_table).where(
                fragments_table.c.prefix == prefix, fragments_table.c.local_id.in_(ids)
            )
        )
        self.conn.execute(
            insert(fragments_table),
            [
                {"local_id": lid, "prefix": prefix, "version": version, "body": b}
                for lid, b in bodies
            ],
        )

    def optimize(self) -> None:
        refresh_statistics(self.conn)
