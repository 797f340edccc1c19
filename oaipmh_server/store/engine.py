"""The engine: opening a database URL, SQLite's and PostgreSQL's tuning, and SQLAlchemy's
errors made StoreUnavailable at this edge."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from ..errors import StoreUnavailable
from . import writes
from .failures import cannot_open
from .file_identity import follow_files
from .sqlite_urls import database_file, file_to_create, vanishes

# The page size of a new SQLite store (an existing one keeps its own). A record's row and
# its fragment take a few kB each: on 16 KiB pages they rarely spill onto overflow pages,
# a load writes fewer, larger pages (its write-ahead log's index, in the loading
# process's memory, has a quarter of the entries) and a page of records reads fewer.
SQLITE_PAGE_SIZE = 16384
# How long a SQLite connection waits for another's lock before "database is locked".
LOCK_WAIT_SECONDS = 30
# How long a server's PostgreSQL statement waits for a lock another session holds on what
# it reads (only ACCESS EXCLUSIVE stops a read: an operator's LOCK TABLE, a VACUUM FULL,
# another program's ALTER) before its request is answered 503 with Retry-After: about as
# long as a SQLite list waits for the write lock (writes.MARK_WAIT_MS × MARK_ATTEMPTS).
# Without it a harvest's request waited as long as the lock was held, minutes or hours.
SERVING_LOCK_WAIT_SECONDS = 5.0
# How long a PostgreSQL load waits for another session's lock before it fails whole: as
# long as a SQLite load waits for another process's write lock.
LOAD_LOCK_WAIT_SECONDS: float = LOCK_WAIT_SECONDS
# How long `stats` and `check` wait for such a lock before they give up, naming it and
# its holder (store/locks.py): as long as a load. They waited without a bound or a word.
READ_LOCK_WAIT_SECONDS: float = LOCK_WAIT_SECONDS
AnySelect = Select[*tuple[Any, ...]]
# A pooled PostgreSQL connection unused this long is pinged before it is handed out; one
# used more recently is trusted (see _ping_when_idle).
PING_AFTER_IDLE_SECONDS = 5.0


@contextmanager
def unavailable() -> Iterator[None]:
    """SQLAlchemy's errors as StoreUnavailable, so nothing above the store knows SQL."""
    try:
        yield
    except (DBAPIError, SQLAlchemyError) as e:
        # The message of the driver may hold SQL and paths: log-worthy, never shown to clients.
        raise StoreUnavailable(type(e).__name__) from e


class Connected:
    """What every part of SqlStore stands on: its engine, one-query reads, the write lease."""

    url: str
    engine: Engine
    # Why this process cannot write the store (store/readonly.py), or None: it can.
    read_only: str | None = None

    def _scalar(self, query: AnySelect, parameters: dict[str, Any] | None = None) -> Any:
        with unavailable(), self._reader.connect() as conn:
            return conn.execute(query, parameters).scalar()

    @cached_property
    def _reader(self) -> Engine:
        """The engine for reads outside a transaction: on PostgreSQL its connections (the
        same pool's) run in autocommit, so a read is its statement alone, without the BEGIN
        before it and the ROLLBACK when its connection goes back: two round trips of a
        page's four. Nothing is lost: under READ COMMITTED each statement of a transaction
        saw its own snapshot anyway. Writes, and the cut-off's transactions, use `engine`.
        SQLite's reads stay in their transaction (one snapshot for a page's statements, at
        no round trip's cost)."""
        if self.engine.dialect.name == "postgresql":
            return self.engine.execution_options(isolation_level="AUTOCOMMIT")
        return self.engine

    @cached_property
    def _lease(self) -> writes.Lease:
        """The lease as lists look at it (whether a writer lives)."""
        return self._new_lease()

    def _new_lease(self) -> writes.Lease:
        return writes.lease_for(self.engine.dialect.name, database_file(self.engine.url))


def open_engine(
    url: str, password: str | None = None, serving: bool = False, reading: bool = False
) -> Engine:
    """The engine for a store URL (SQLite tuned, a new file private); what cannot be
    opened is a StoreUnavailable saying why (store/failures.py). `serving`: a server's,
    whose PostgreSQL statements wait for a lock SERVING_LOCK_WAIT_SECONDS at most;
    `reading`: a command's that only reads (stats, check), READ_LOCK_WAIT_SECONDS."""
    try:
        if password is not None:
            url = make_url(url).set(password=password).render_as_string(hide_password=False)
        if url.startswith("sqlite"):
            # A database that vanishes with its connection is reached through one, which
            # every read and write shares: each new connection to a private in-memory
            # database (`file::memory:`, `vfs=memdb`, SQLite's nameless temporary file)
            # would open another, empty one, and a shared one (`mode=memory&cache=shared`)
            # is gone when a pool closes its last connection.
            memory = vanishes(url)
            if not memory:
                _create_private_file(url)
            engine = create_engine(
                url,
                poolclass=StaticPool if memory else None,
                connect_args={"timeout": LOCK_WAIT_SECONDS},
            )
            _tune_sqlite(engine)
            file = None if memory else database_file(engine.url)
            if file is not None:  # a restore under a running server is followed
                follow_files(engine, str(file))
            return engine
        engine = create_engine(url)
        if engine.dialect.name == "postgresql":
            _ping_when_idle(engine)
            if serving:
                _bound_lock_waits(engine, lambda: SERVING_LOCK_WAIT_SECONDS)
            elif reading:
                _bound_lock_waits(engine, lambda: READ_LOCK_WAIT_SECONDS)
        return engine
    except (SQLAlchemyError, ImportError, ValueError) as e:
        raise StoreUnavailable(cannot_open(url, e, password)) from e


def _create_private_file(url: str) -> None:
    """Create a new SQLite database file readable and writable by its owner only (0600),
    before SQLite creates it as the umask says (usually 0644): it holds the token secret
    and private fields. SQLite gives the -wal and -shm files the database file's mode.
    An existing file keeps its mode; a URI that opens only an existing one creates none."""
    database = file_to_create(url)
    if database is None:
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
        if conn.get_execution_options().get("immediate", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            # A read's BEGIN takes no lock and cannot fail on one: sent by the driver
            # itself, without a statement's round through SQLAlchemy (a tenth of a
            # harvest page's own time on the server).
            conn.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]


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


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it has been idle a while, instead of
    before every use (SQLAlchemy's pool_pre_ping: a round trip before each page of a
    harvest, whose pages come milliseconds apart). A connection that fails the ping is
    replaced before anyone uses it (the pool retries its checkout). One that died within
    the last seconds of use (a server restarted under a harvest) fails its statement: that
    request is answered 503 (StoreUnavailable), and SQLAlchemy, seeing a disconnect, drops
    every connection of the pool opened before it, so the next requests reconnect."""

    @event.listens_for(engine.pool, "checkin")
    def _returned(_dbapi_connection: Any, entry: ConnectionPoolEntry) -> None:
        entry.info["returned"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(dbapi_connection: Any, entry: ConnectionPoolEntry, _proxy: Any) -> None:
        returned = entry.info.get("returned")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as e:
            raise DisconnectionError("the pooled connection is gone") from e


def _bound_lock_waits(engine: Engine, seconds: Callable[[], float]) -> None:
    """Each new connection's lock_timeout, for the whole session: a statement kept waiting
    longer fails (LockNotAvailable), and its request is answered 503 (a command gives up
    saying why). A migration, which waits for pg_dump as docs/backups.md says, lifts it
    for its own transaction."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(_lock_timeout(seconds()))
        dbapi_connection.commit()  # psycopg began a transaction for the SET


def bound_load_lock_waits(conn: Connection) -> None:
    """PostgreSQL: from here on (a load holds its lease: another load is no longer waited
    for) the load's statements wait LOAD_LOCK_WAIT_SECONDS at most for another session's
    lock on what they touch (a LOCK TABLE, a VACUUM FULL, another program's ALTER), then
    the load fails whole saying so. It waited as long as the lock was held, silently, and
    held the list cut-off mark's row meanwhile (writes.register), so lists waited too."""
    if conn.dialect.name == "postgresql":
        with conn.begin():
            conn.exec_driver_sql(_lock_timeout(LOAD_LOCK_WAIT_SECONDS))


def _lock_timeout(seconds: float) -> str:
    """The session's lock wait bound to `seconds` (whole milliseconds, at least one: 0 would
    lift the bound)."""
    return f"SET lock_timeout = {max(1, round(seconds * 1000))}"


def unbound_lock_waits(conn: Connection) -> None:
    """The pooled session's lock_timeout back to the role's."""
    if conn.dialect.name == "postgresql":
        with suppress(DBAPIError, SQLAlchemyError), conn.begin():
            conn.exec_driver_sql("RESET lock_timeout")


def driver_rows(conn: Connection, sql: str, parameters: Any) -> list[Any]:
    """A statement's rows straight from the driver's cursor, as plain tuples: a harvest's
    page statement, run thousands of times, for which SQLAlchemy's per-execution work
    (its statement events, result metadata, a Row per row) cost as much as SQLite's own.
    On SQLite it runs in the connection's transaction, begun here when none is, so the
    page and any statement after it on `conn` read one snapshot; on PostgreSQL (the
    reader's connections are in autocommit) it runs alone, its rows sent in binary: bytea
    as its bytes, where text results hex-encode them (twice the bytes to send and decode,
    a hundred fragments of a few kB a page). The columns must be of types psycopg reads
    the same either way (text, bytea, booleans, timestamps).

    When the driver fails, the statement is run once more through SQLAlchemy, for its
    handling of the failure: its error (StoreUnavailable in `unavailable`) and, on a lost
    connection, every connection of the pool opened before it replaced. A failure that
    does not repeat was transient, and the rows read then are as good."""
    postgresql = conn.dialect.name == "postgresql"
    if not postgresql and not conn.in_transaction():
        conn.begin()
    driver: Any = conn.connection.driver_connection
    try:
        cursor = driver.cursor(binary=True) if postgresql else driver.cursor()
        try:
            cursor.execute(sql, parameters)
            rows: list[Any] = cursor.fetchall()
        finally:
            cursor.close()
    except conn.dialect.loaded_dbapi.Error:
        return list(conn.exec_driver_sql(sql, parameters).all())
    return rows


# Rows of each index SQLite's ANALYZE reads after a load (PRAGMA analysis_limit): enough
# for the planner's choices, and the same cost at any size of store.
ANALYSIS_LIMIT = 1000


def refresh_statistics(conn: Connection) -> None:
    """Keep the planner's statistics fresh after a load (or a copy), so page queries stay
    on the index. On SQLite from a sample of each index (analysis_limit): a full ANALYZE
    reads every index whole, 12.5 s of each load at 8,000,000 records; the sample's figures
    choose the same plans. (PostgreSQL's ANALYZE samples by itself.)"""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        conn.exec_driver_sql("ANALYZE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE")
