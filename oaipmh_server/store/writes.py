"""Writes in progress and list cut-offs: a datestamp is handed out only once what it dates
can be seen.

An incremental harvester asks `from=` the responseDate of its previous list, and a list is
what the repository held up to its cut-off, one second before that responseDate. So the
one rule that loses nothing is: no list is given a cut-off at or after the datestamp of a
change it cannot see yet. A load writes for minutes in one transaction; its changes must
not be dated before the cut-offs handed out while it ran, and no cut-off may be handed out
past them before they are committed. How it holds:

- A write (a load, a delete) first takes the *writer lease*: one live writer per database,
  released by the operating system or the database server when its process or host dies.
- It then commits a row in `writers` whose `since` is the lowest datestamp it will give
  any change, and raises the *high-water mark* (meta `cutoff`, the highest cut-off any list
  may have been given) to `since` - 1 s, in the same short transaction. `since` is later
  than the mark, so later than every cut-off already handed out, whatever the clocks of
  the hosts say: a clock stepped back cannot date a change before a harvest that missed it.
- A list's cut-off is one second before now, but at most `since` - 1 s while a live writer
  has a row, and never below the mark (cut-offs never go backwards). A cut-off above the
  mark is first written to it, in a transaction that sees the writers' rows as a writer
  commits them, so a writer's `since` is always past it.
- The writer deletes its row in the transaction that commits its changes: lists move past
  `since` exactly when they can see what is dated there.
- A row whose writer died (`kill -9`, a lost host) is ignored once its lease is free, and
  deleted by the next writer. SQLite: the lease is an flock on `<database>-writer` beside
  the database, freed by the kernel when the process ends. PostgreSQL: a session advisory
  lock, freed when the server ends the session; the writer's session asks the server to
  probe the connection (TCP keepalives), so a dead host is noticed within about a minute.
- Once servers that cannot write serve the store (READERS_KEY, set by `oaipmh-server
  migrate --read-only-servers`), the writer raises the mark again in the transaction that
  commits its changes: to one second before its clock, or to the latest datestamp it gave
  when that is later (not past its clock; never lower, never to or past another live
  writer's `since`). What it dated up to there is committed with it, and no other writer
  is live. Without such servers it does not: a list raises the mark when one is asked for,
  and a later load keeping its records' own dates keeps those after the last list's.

The cost to a harvester: while a load runs, lists stop one second before the load began
(their responseDate is the load's start), and what the load changes is listed once it has
committed, dated at its start.

Why a cut-off at or below the mark is always safe (on SQLite files and PostgreSQL, whose
leases keep writers one at a time), so that a server that cannot write (a read-only
role, a hot standby: store/readonly.py) may hand out the mark it reads: every change
dated at or before the mark was committed before the mark was raised there, or in the
same transaction. The mark rises in three places. A writer registering raises it to
`since` - 1 s, below everything it will date, and only once it holds the lease, so every
earlier writer has committed or died (a dead one's transaction is rolled back). A list
raises it only in a transaction that takes the mark's row first (PostgreSQL: FOR UPDATE;
SQLite: the write lock) and then finds no live writer: every write that registered
before has committed, and one registering after finds the new mark and dates its
changes past it. A writer committing raises it (READERS_KEY) with its own changes, as
the only live writer. Clocks play no part: each step compares with the mark, not with
another host's clock. On a standby the same holds of what it has replayed, since replay
applies the primary's commits in their order: a replayed mark comes after every commit it
covers.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import OperationalError

from ..datestamps import EPOCH, format_datestamp
from ..errors import CannotWrite, escaped
from .schema import meta_table, records_table, writers_table

SECOND = timedelta(seconds=1)
HIGH_WATER_KEY = "cutoff"
# Set (to "1") once servers that cannot write serve the store (`oaipmh-server migrate
# --read-only-servers`): from then on each write raises the mark when it commits.
READERS_KEY = "read_only_servers"
# The PostgreSQL advisory lock of the writer lease (the schema migration's is 4242424242).
WRITER_LOCK = 4242424243
# How long a list waits for SQLite's write lock to raise the mark before it looks again at
# the writers (a load holds that lock for minutes, and has a row by then).
MARK_WAIT_MS = 100
MARK_ATTEMPTS = 50


class Lease(Protocol):
    """Held by the one live writer of a database."""

    def acquire(self, conn: Connection, wait: bool) -> bool: ...

    def release(self, conn: Connection) -> None: ...

    def alive(self, conn: Connection) -> bool:
        """Whether any writer holds it now (its rows in `writers` are then live)."""
        ...


class FileLease:
    """SQLite: an exclusive flock on a file beside the database. flock, not fcntl locks:
    two opens in one process conflict too, and the kernel frees it when the process dies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, conn: Connection, wait: bool) -> bool:
        """CannotWrite if the file cannot be opened or locked (made 0600 by another user,
        a folder this user may not write, a file system without locks): no write can run
        here, said in one line."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise _unusable(self.path, e) from e
        try:
            if wait:
                fcntl.flock(fd, fcntl.LOCK_EX)
            elif not _try_flock(fd):
                os.close(fd)
                return False
        except OSError as e:
            os.close(fd)
            raise _unusable(self.path, e) from e
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self, conn: Connection) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file frees the lock
            self._fd = None

    def alive(self, conn: Connection) -> bool:
        """A file this process cannot open or lock (another user's, mode 0600) cannot show
        the writer dead: it is taken as alive, so lists stop before its `since`, which
        loses nothing (the next load that can take the lease removes a dead one's row)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: a writer holds it
            return True
        finally:
            os.close(fd)
        return False


def _unusable(path: str, error: OSError) -> CannotWrite:
    return CannotWrite(
        f"cannot open the writer lease {path} ({error.strerror}): each write locks it, so "
        "whoever loads must be able to write it"
    )


def _try_flock(fd: int) -> bool:
    """An exclusive lock without waiting for a writer, but through the instants in which a
    list looks whether a writer is alive (it takes the lock shared to see)."""
    for _ in range(50):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.01)
    return False


class AdvisoryLease:
    """PostgreSQL: a session-level advisory lock, freed when the session ends."""

    def acquire(self, conn: Connection, wait: bool) -> bool:
        with conn.begin():
            # A dead host's session ends when the server notices: ask it to probe early.
            for setting in ("tcp_keepalives_idle = 20", "tcp_keepalives_interval = 5",
                            "tcp_keepalives_count = 4"):  # fmt: skip
                conn.exec_driver_sql(f"SET {setting}")
            function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            got = conn.exec_driver_sql(f"SELECT {function}({WRITER_LOCK})").scalar()
        return got is not False

    def release(self, conn: Connection) -> None:
        try:
            with conn.begin():
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({WRITER_LOCK})")
        except Exception:
            # A pooled connection must never keep the lease: drop the session instead.
            conn.invalidate()

    def alive(self, conn: Connection) -> bool:
        return bool(conn.exec_driver_sql(_LEASE_HELD).scalar())


# Whether any session of this database holds the writer lease (a bigint key < 2**32 is
# classid 0, objid the key, objsubid 1 in pg_locks).
_LEASE_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::bigint = 0 AND objid::bigint = 4242424243 AND objsubid = 1)"
)
assert str(WRITER_LOCK) in _LEASE_HELD


class NoLease:
    """An in-memory SQLite database (or another database): its writers cannot die apart
    from its readers, so every row in `writers` is live."""

    def acquire(self, conn: Connection, wait: bool) -> bool:
        return True

    def release(self, conn: Connection) -> None:
        pass

    def alive(self, conn: Connection) -> bool:
        return True


def lease_for(dialect: str, file: Path | None) -> Lease:
    """The lease of a database; `file`: the SQLite database's file (store.sqlite_urls.
    database_file), the same for every spelling of its URL, so all its writers lock one
    file beside it. None: one that lives in this process alone, whose writers are all
    this process's, so it has no file beside it to lock."""
    if dialect == "postgresql":
        return AdvisoryLease()
    if dialect == "sqlite" and file is not None:
        return FileLease(f"{file}-writer")
    return NoLease()


@dataclass(frozen=True)
class Write:
    """A write in progress, as registered: what it may date its changes."""

    id: str
    # The datestamp of what it changes: the clock, but after every cut-off handed out.
    moment: datetime
    # The lowest datestamp it may give (lists stop one second before it while it runs):
    # `moment`, or, where records keep their own dates, just past the last cut-off.
    since: datetime
    # Whether new records may keep their own date (dc.date.accessioned), at or after
    # `since`.
    backdating: bool


def register(
    conn: Connection, clock: Callable[[], datetime], keep_dates: bool, exclusive: bool
) -> Write:
    """Commit the row of a new write, and raise the mark to its `since` - 1 s.

    `keep_dates`: the load keeps its records' own dates when it can (an empty store, or
    the setting that says so). Then `since` is just past the mark (the epoch if no list
    was ever cut off): records dated at or after it are new to every harvester, even one
    harvesting while the load runs, whose lists stop just before it.
    `exclusive`: the caller holds a real lease, so other rows are dead writers' (deleted).
    """
    with conn.begin():
        mark = _read_mark(conn, for_update=True)
        empty = conn.execute(select(records_table.c.local_id).limit(1)).first() is None
        backdating = keep_dates or empty
        moment = max(clock(), mark + SECOND) if mark is not None else clock()
        since = moment
        if backdating:  # just past every cut-off handed out
            since = EPOCH if mark is None else mark + SECOND
        if exclusive:
            conn.execute(delete(writers_table))
        write = Write(uuid.uuid4().hex, moment, since, backdating)
        conn.execute(insert(writers_table).values(id=write.id, since=since, holder=_holder()))
        if mark is None or since - SECOND > mark:
            _write_mark(conn, since - SECOND)
    return write


def finish(
    conn: Connection,
    write: Write,
    clock: Callable[[], datetime] | None = None,
    latest: datetime | None = None,
) -> None:
    """Inside the transaction that commits the write's changes: its row goes with it, and,
    once servers that cannot write serve the store (READERS_KEY: without them a list
    raises the mark, and the dates a later load keeps stay as they were), the mark rises
    to `clock` - 1 s, or to the `latest` datestamp it gave a record when that is later, so
    servers that only read the mark (store/readonly.py) list the changes as soon as they
    are committed, without waiting for a writable list. `latest` may be past `clock`: a
    write that starts within the second the mark names dates its changes a second later
    (after the mark), and may commit before the clock gets there; a mark kept at the clock
    would leave them unlisted by such servers until the next write, which may be days
    away. A mark up to a second ahead of the clock is safe: the next write dates past it
    all the same, and a list cut off there holds nothing not yet committed. Not past
    another live writer's `since` (with no real lease, writers overlap)."""
    conn.execute(delete(writers_table).where(writers_table.c.id == write.id))
    if clock is None or not serves_readers(conn):
        return
    now = clock()
    raised = now - SECOND
    if latest is not None:
        raised = max(raised, latest)
    others = conn.execute(select(func.min(writers_table.c.since))).scalar()
    if others is not None:
        raised = min(raised, others - SECOND)
    mark = _read_mark(conn, for_update=True)
    if mark is None or raised > mark:
        _write_mark(conn, raised)


def abandon(conn: Connection, write: Write) -> None:
    """After a write rolled back: its row goes, in a transaction of its own."""
    with conn.begin():
        finish(conn, write)


@dataclass(frozen=True)
class Writer:
    since: datetime
    holder: str

    def describe(self) -> str:
        """Escaped: the holder is the running load's command line, whose paths are named
        by whoever made them, shown on another user's terminal."""
        return f"since {format_datestamp(self.since)}, {escaped(self.holder)}"


def writers(conn: Connection) -> list[Writer]:
    rows = conn.execute(
        select(writers_table.c.since, writers_table.c.holder).order_by(writers_table.c.since)
    )
    return [Writer(since, holder) for since, holder in rows]


def list_cutoff(conn: Connection, lease: Lease, now: datetime) -> datetime:
    """The cut-off a new list gets at `now`: one second before it, before every live
    write's `since`, never below the mark; the mark raised first where it goes past it."""
    proposed = now - SECOND
    for _ in range(MARK_ATTEMPTS):
        conn.execution_options(immediate=False)
        with conn.begin():
            cutoff = _settled(conn, lease, proposed, locked=False)
        if cutoff is not None:
            return cutoff
        try:
            conn.execution_options(immediate=True)
            with _short_lock_wait(conn), conn.begin():
                cutoff = _settled(conn, lease, proposed, locked=True)
                if cutoff is None:
                    _write_mark(conn, proposed)
                    cutoff = proposed
            return cutoff
        except OperationalError as e:
            if "locked" not in str(e.orig):
                raise
            # SQLite: another process writes. A load has committed its row before it
            # holds the write lock for long, so looking again finds it.
        finally:
            conn.execution_options(immediate=False)
    raise OperationalError("raising the list cut-off", None, Exception("database is locked"))


def _settled(
    conn: Connection, lease: Lease, proposed: datetime, *, locked: bool
) -> datetime | None:
    """The cut-off if it needs no raising of the mark, else None (raise it to `proposed`).
    `locked`: inside the transaction that may raise it (writers register in turn)."""
    mark = _read_mark(conn, for_update=locked)
    since: datetime | None = conn.execute(select(func.min(writers_table.c.since))).scalar()
    if since is not None and lease.alive(conn):
        # The write raised the mark to since - 1 s when it registered: nothing to raise.
        capped = min(proposed, since - SECOND)
        return capped if mark is None else max(capped, mark)
    if mark is not None and proposed <= mark:
        return mark  # never backwards, even when the clock is
    return None


def current_cutoff(conn: Connection, lease: Lease, now: datetime) -> datetime:
    """The cut-off a list starting at `now` would get, read without raising the mark
    (for /metrics: how far lists lag behind the clock, the length of a running load)."""
    proposed = now - SECOND
    return _settled(conn, lease, proposed, locked=False) or proposed


def serves_readers(conn: Connection) -> bool:
    """Whether servers that cannot write serve this store (READERS_KEY)."""
    return (
        conn.execute(select(meta_table.c.value).where(meta_table.c.key == READERS_KEY)).scalar()
        == "1"
    )


def read_mark(conn: Connection) -> datetime | None:
    """The mark as this connection sees it (a server that cannot raise it: readonly.py)."""
    return _read_mark(conn, for_update=False)


def keep_mark_at_least(conn: Connection, handed_out: datetime | None) -> None:
    """Raise the mark to `handed_out` where it is below it (a copy of a store whose server
    handed out a later cut-off after the copy read it: store/copying.py)."""
    if handed_out is not None and (read_mark(conn) or handed_out) <= handed_out:
        _write_mark(conn, handed_out)


def _read_mark(conn: Connection, *, for_update: bool) -> datetime | None:
    query = select(meta_table.c.value).where(meta_table.c.key == HIGH_WATER_KEY)
    if for_update and conn.dialect.name == "postgresql":
        # Lists raising the mark and writers registering take turns on this row.
        _ensure_mark_row(conn)
        query = query.with_for_update()
    value = conn.execute(query).scalar()
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ensure_mark_row(conn: Connection) -> None:
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    conn.execute(
        pg_insert(meta_table).values(key=HIGH_WATER_KEY, value="").on_conflict_do_nothing()
    )


def _write_mark(conn: Connection, value: datetime) -> None:
    text = format_datestamp(value)
    found = conn.execute(
        update(meta_table).where(meta_table.c.key == HIGH_WATER_KEY).values(value=text)
    ).rowcount
    if not found:
        conn.execute(insert(meta_table).values(key=HIGH_WATER_KEY, value=text))


@contextmanager
def _short_lock_wait(conn: Connection) -> Iterator[None]:
    """On SQLite, wait only briefly for the write lock: a load may hold it for minutes."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver: Any = conn.connection.driver_connection
    (previous,) = driver.execute("PRAGMA busy_timeout").fetchone()
    driver.execute(f"PRAGMA busy_timeout={MARK_WAIT_MS}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(previous)}")


def _holder() -> str:
    """Who writes, for the message another load shows."""
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    if len(command) > 120:
        command = command[:119] + "…"
    return f"host {socket.gethostname()}, process {os.getpid()} ({command})"
