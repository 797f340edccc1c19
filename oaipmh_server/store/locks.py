"""Who holds a PostgreSQL lock the store waits for, in words an operator acts on: the lock,
the table, and the session holding it (its process id, user, application, state and
statement, as pg_locks and pg_stat_activity give them).

`stats` and `check` give up after engine.READ_LOCK_WAIT_SECONDS and say this in their one
line; they waited as long as the lock was held, without a word. A migration waits however
long pg_dump runs (docs/backups.md), and says after MIGRATION_NOTICE_SECONDS, on the
standard error of `oaipmh-server migrate`, what it waits for and who holds it back,
instead of leaving the operator a silent terminal.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..errors import StoreUnavailable, escaped
from .failures import LOCK_NOT_AVAILABLE

# How long a migration waits before it says what for; then again whenever that changes.
MIGRATION_NOTICE_SECONDS = 3.0

# Sessions holding a lock on the store's tables (its schema's relations) that no reader
# can share: ACCESS EXCLUSIVE, all a read waits for.
_EXCLUSIVE_HOLDERS = text("""
    SELECT c.relname, l.mode, l.pid, a.usename, a.application_name, a.state, a.query
    FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
      AND l.pid <> pg_backend_pid()
    ORDER BY c.relname, l.pid
""")
# What a session waits for, and the sessions holding it back.
_AWAITED = text("""
    SELECT c.relname, l.locktype, l.mode
    FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
    WHERE l.pid = :pid AND NOT l.granted
""")
_BLOCKERS = text("""
    SELECT a.pid, a.usename, a.application_name, a.state, a.query
    FROM pg_stat_activity a
    WHERE a.pid = ANY(pg_blocking_pids(:pid))
    ORDER BY a.pid
""")


def gave_up(engine: Engine, error: StoreUnavailable, seconds: float) -> str | None:
    """The line a reading command ends with when `error` is PostgreSQL's lock timeout:
    which lock on which table, held by whom; None for any other error."""
    cause = getattr(error.__cause__, "orig", None)
    if getattr(cause, "sqlstate", None) != LOCK_NOT_AVAILABLE:
        return None
    try:
        with engine.connect() as conn:
            rows = conn.execute(_EXCLUSIVE_HOLDERS).all()
    except (DBAPIError, SQLAlchemyError):
        rows = []
    held = "; ".join(
        f"{_lock(mode)} on {table} held by {_session(*session)}" for table, mode, *session in rows
    )
    return (
        f"gave up after {seconds:g} s waiting for a lock another session holds on the "
        f"store: {held or 'it was given up meanwhile'}; run it again once it is given up "
        "(see pg_locks)"
    )


@contextmanager
def waiting_told(
    engine: Engine, conn: Connection, on_wait: Callable[[str], None] | None
) -> Iterator[None]:
    """While the block runs on `conn`: every MIGRATION_NOTICE_SECONDS, if `conn`'s session
    waits for a lock, `on_wait` is told what it waits for and who holds it (once for each
    new answer). Only PostgreSQL says; a watcher thread asks it on a connection of its own."""
    if on_wait is None or conn.dialect.name != "postgresql":
        yield
        return
    pid = conn.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
    done = threading.Event()

    def watch() -> None:
        said = ""
        while not done.wait(MIGRATION_NOTICE_SECONDS):
            try:
                with engine.connect() as watching:
                    awaited = watching.execute(_AWAITED, {"pid": pid}).all()
                    blockers = watching.execute(_BLOCKERS, {"pid": pid}).all()
            except (DBAPIError, SQLAlchemyError):
                continue  # asked again at the next turn
            line = _waiting(awaited, blockers)
            if line and line != said and not done.is_set():
                on_wait(line)
                said = line

    watcher = threading.Thread(target=watch, name="migration-wait", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _waiting(awaited: Sequence[Any], blockers: Sequence[Any]) -> str | None:
    if not awaited:
        return None
    table, kind, mode = awaited[0]
    if kind == "advisory":
        what = "another migration of this database to end"
    else:
        what = f"{_lock(mode)} on {table or kind}"
    by = "; ".join(_session(*session) for session in blockers) or "nobody any more"
    return (
        f"waiting for {what}, held back by {by}: a migration waits for pg_dump and for "
        "other sessions' transactions on the store, however long, and goes on once they end"
    )


def _lock(mode: str) -> str:
    """pg_locks's AccessExclusiveLock as LOCK TABLE writes it: an ACCESS EXCLUSIVE lock."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", mode.removesuffix("Lock")).upper()
    return f"{'an' if words[:1] in 'AEIOU' else 'a'} {words} lock"


def _session(
    pid: int, user: str | None, application: str | None, state: str | None, query: str | None
) -> str:
    about = [f"user {user}"] if user else []
    about += [f"application {application}"] if application else []
    about += [state] if state else []
    said = f"pid {pid}" + (f" ({', '.join(about)}" if about else "")
    if query:
        statement = " ".join(query.split())
        statement = statement if len(statement) <= 120 else statement[:119] + "…"
        said += (": " if about else " (") + statement
    # Another session's own words (its statement, application name, user): escaped, so
    # printed on a terminal they cannot drive it.
    return escaped(said + (")" if about or query else ""))
