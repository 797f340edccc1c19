"""The SQLite files a process has open against the files now at the database's path: a
database restored under a running server (its -wal and -shm removed, a backup moved onto
its path) is served as it now is, without a restart.

SQLite goes on using the files it opened. A server whose database was replaced served
the state it had, /healthz ok, and never saw a later load; one whose -wal and -shm were
removed read a write-ahead log nobody wrote any more (SQLite's "How To Corrupt An SQLite
Database File" lists deleting a hot journal), so a load's commit was not seen either.

Each connection keeps the device and inode of the database file, its -wal and its -shm as
they were when it was opened. At a connection's checkout they are compared with those at
the path, looked up again at most every CHECK_SECONDS (three stat calls, never one per
request, let alone per record). On a difference every connection of the pool is closed
and the request is served from a new one, on the files now there. Two things of SQLite's
make that order matter (tests/test_database_trouble.py showed both):

- Connections of one process to one database file share its -shm as the first of them
  mapped it: a new connection opened while an old one is open would read the removed
  -shm's index of the new -wal. So all are closed first (Pool.dispose: a request holds
  its connection without yielding to another, so none is out in another's hands).
- The last connection to a database file to close checkpoints the -wal it has open into
  the file and deletes the -wal and -shm at the path. After a removed -wal the file is the
  same: a load's commit, made since in a new -wal, would be overwritten by the removed
  log's pages and its log deleted. So while they close, a read lock of our own on the
  file's shared-lock bytes (an open file description's lock, which SQLite's own locks in
  this process conflict with) keeps SQLite from the exclusive lock it checkpoints under;
  it is let go just before the new connection is opened. A database moved away from its
  path is not checkpointed on close by SQLite itself.

A database file that was opened and is gone is not made again, empty: the connection is
refused, and so the request is answered 503 (as when the file there is not a database),
until a database is back at the path.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry

# How old the files' identity looked up at the path may be when a connection is checked
# out: how long a replaced database may still be served after it was replaced.
CHECK_SECONDS = 0.25
_OPENED = "oaipmh_files"  # where a connection keeps the identity it was opened with
_SUFFIXES = ("", "-wal", "-shm")
# SQLite's lock bytes in a database file (os_unix.c): a reader's shared lock is a read
# lock on these, the exclusive lock a write lock on them.
_SHARED_FIRST = 0x40000000 + 2
_SHARED_SIZE = 510
_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)  # Linux's

Identity = tuple[tuple[int, int] | None, ...]


def identity(path: str) -> Identity:
    """The (device, inode) of the database file, its -wal and its -shm; None for each
    that is not there."""
    found: list[tuple[int, int] | None] = []
    for suffix in _SUFFIXES:
        try:
            status = os.stat(path + suffix)
        except OSError:
            found.append(None)
        else:
            found.append((status.st_dev, status.st_ino))
    return tuple(found)


class _Path:
    """The files at the path, as last looked up, shared by the engine's connections."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen: Identity = ()
        self.looked = -CHECK_SECONDS
        # A database was there (when the engine was made, or a connection was opened):
        # one missing is gone, not to be made.
        self.opened = os.path.exists(path)
        self.kept: int | None = None  # the database file, opened to be read-locked
        self.held = False  # read-locked while the old connections close

    def look(self) -> Identity:
        self.seen = identity(self.path)
        self.looked = time.monotonic()
        return self.seen

    def recent(self) -> Identity:
        if time.monotonic() - self.looked < CHECK_SECONDS:
            return self.seen
        return self.look()

    def hold(self) -> None:
        """Read-lock the shared-lock bytes of the database file at the path, so that no
        connection of this process closing on it checkpoints it (the module's docstring).

        The file is opened once and kept open, the lock only taken and given back: closing
        a file frees every POSIX lock the process holds on it, SQLite's own among them (a
        connection's shared lock, which keeps other processes from checkpointing the -wal
        it reads). It is closed when another file is at the path: no connection of ours
        goes on with the old one, and SQLite checkpoints no file moved from its path."""
        self.release()
        if _OFD_SETLK is None:
            return  # not Linux: no lock of an open file description to take
        try:
            there = os.stat(self.path)
        except OSError:
            return  # gone: a moved database is not checkpointed on close
        if self.kept is None or not os.path.samestat(os.fstat(self.kept), there):
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                return
            if self.kept is not None:
                os.close(self.kept)
            self.kept = fd
        try:
            fcntl.fcntl(self.kept, _OFD_SETLK, _lock(fcntl.F_RDLCK))
        except OSError:  # another process is checkpointing it: it is not ours to stop
            return
        self.held = True

    def release(self) -> None:
        if self.held and self.kept is not None and _OFD_SETLK is not None:
            fcntl.fcntl(self.kept, _OFD_SETLK, _lock(fcntl.F_UNLCK))
        self.held = False


def _lock(kind: int) -> bytes:
    """A struct flock for the shared-lock bytes (an open file description's lock: l_pid 0)."""
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, _SHARED_FIRST, _SHARED_SIZE, 0)


def follow_files(engine: Engine, path: str) -> None:
    """Have `engine`'s connections follow the SQLite database at `path` (the module's
    docstring says how). Its "connect" listeners must be registered before this, so that
    a connection's -wal and -shm exist when its identity is taken (WAL mode opens them)."""
    files = _Path(path)

    @event.listens_for(engine, "do_connect")
    def _before_connecting(*_arguments: Any) -> None:
        files.release()  # every old connection is closed by now
        if files.opened and not os.path.exists(path):
            # SQLite would make a new, empty database there, which would be served.
            raise sqlite3.OperationalError(f"the database file {path} is gone")

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_connection: Any, entry: ConnectionPoolEntry) -> None:
        entry.info[_OPENED] = files.look()
        files.opened = True

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(_dbapi_connection: Any, entry: ConnectionPoolEntry, _proxy: Any) -> None:
        opened = entry.info.get(_OPENED)
        if opened is None or opened == files.recent():
            return
        now = files.look()  # before deciding: what was seen may be older than the connection
        if all(was in (None, there) for was, there in zip(opened, now, strict=True)):
            # A new database's -wal and -shm are made at its first write, not when it is
            # opened: files that appeared since are the connection's own.
            entry.info[_OPENED] = now
            return
        files.hold()
        engine.pool.dispose()  # the idle connections; this one is closed as it is raised
        raise InvalidatePoolError(f"the SQLite database at {path} is not the file opened")
