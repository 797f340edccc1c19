"""Serving a store this process cannot write: a read-only role, a PostgreSQL hot standby,
a SQLite file opened read-only; how such a server cuts its lists off, and the GRANT lines
that make a read-only role.

A writable server raises the high-water mark (meta `cutoff`, store/writes.py) before it
hands out a cut-off above it. One that cannot write hands out the mark itself: a cut-off
not above the mark is always safe, because every change dated at or before it was
committed before the mark was raised there (store/writes.py says why). Loads raise the
mark when they commit, so a repository served only by read-only servers lists a load's
changes as soon as it has committed.

On a hot standby the mark is the one it has replayed. Replay applies the primary's
commits in their order, so a replayed mark comes after every change it covers. The
standby's own clock, `pg_last_xact_replay_timestamp()` and the replayed `writers` rows
are not used: a writer registering on the primary dates its changes after the primary's
mark, not after the standby's clock or the replay position, and a standby cannot see the
primary's writer lease (pg_locks is per server), so it cannot tell a live writer's row from
a dead one's. The harvester's lag is the replay lag, plus, while a load runs, the load's
duration, as on the primary.

A resumption token carries its list's cut-off, which a server with a more recent mark may
have handed out (the primary, or a standby further ahead). A page continued on a server
whose mark is below that cut-off could miss a change the other one saw, so that server
waits until it has replayed as far (REPLAY_WAIT_SECONDS at most; then 503 with
Retry-After, and the harvester asks again).
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from sqlalchemy import URL, Connection, Engine, inspect

from ..datestamps import EPOCH
from ..errors import StoreUnavailable
from . import writes
from .engine import open_engine
from .failures import opening
from .schema import metadata
from .sqlite_urls import database_file

# How long a page continued on a lagging standby waits for its replay to reach the
# token's cut-off before it answers 503 (a standby a second behind is usual).
REPLAY_WAIT_SECONDS = 10.0
REPLAY_POLL_SECONDS = 0.02

_POSTGRESQL_ACCESS = (
    "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on',"
    " current_user, current_schema(),"
    " CASE WHEN to_regclass('meta') IS NULL"
    " THEN coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)"
    " ELSE has_table_privilege('meta', 'INSERT') AND has_table_privilege('meta', 'UPDATE')"
    " END"
)


def why_read_only(conn: Connection) -> str | None:
    """Why this connection cannot write what serving writes (the mark, the token secret,
    a migration), as words for a log line; None when it can. Read once, when the store is
    opened: a standby promoted later keeps being served as read-only, which is safe."""
    if conn.dialect.name == "postgresql":
        recovering, read_only, user, schema, may_write = conn.exec_driver_sql(
            _POSTGRESQL_ACCESS
        ).one()
        if recovering:
            return "it is a hot standby"
        if read_only:
            return "its transactions are read-only (default_transaction_read_only)"
        if not may_write:
            return f"the role {user} may not write the tables in schema {schema}"
        return None
    if conn.dialect.name == "sqlite":
        return _sqlite(conn.engine.url)
    return None


def _sqlite(url: URL) -> str | None:
    """The file as SQLite opens it, however the URL spells it (store/sqlite_urls.py). A
    database that vanishes names none: it is this process's memory, its to write,
    whatever file its name would name (`file:oai?mode=memory&uri=true` is not `oai`)."""
    path = database_file(url)
    if path is None:
        return None
    if url.query.get("mode") == "ro" or url.query.get("immutable") == "1":
        return "it is opened read-only (mode=ro)"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"this user may not write {path}"
    return None


def cutoff(conn: Connection) -> datetime:
    """The cut-off of a list on a server that cannot write: the mark it reads. Without one
    (a store nothing has written since it was created), a second before the epoch: a
    first load may keep its records' own dates, any of them (store/writes.py), so the
    next harvest asks from the epoch."""
    mark = writes.read_mark(conn)
    return mark if mark is not None else EPOCH - writes.SECOND


def await_mark(engine: Engine, until: datetime) -> datetime:
    """The mark, once it is at or past `until` (a continued list's cut-off, handed out by
    a server that may be ahead of this one); StoreUnavailable when it does not get there
    within REPLAY_WAIT_SECONDS. Each look is a connection of its own: a SQLite read
    transaction would keep seeing the database as it began."""
    deadline = time.monotonic() + REPLAY_WAIT_SECONDS
    while True:
        with engine.connect() as conn:
            mark = writes.read_mark(conn)
        if mark is not None and mark >= until:
            return mark
        if time.monotonic() > deadline:
            raise StoreUnavailable("the standby has not replayed as far as the list's cut-off")
        time.sleep(REPLAY_POLL_SECONDS)


def grant_statements(url: str, password: str | None, role: str) -> list[str]:
    """The GRANT lines that let `role` serve this PostgreSQL database and nothing more:
    connect, use the schema, SELECT on each of the server's tables as the database holds
    them now (run again after an upgrade that adds one). Read without migrating."""
    engine = open_engine(url, password)
    with opening(url, password, engine), engine.connect() as conn:
        database, schema = conn.exec_driver_sql("SELECT current_database(), current_schema()").one()
        present = set(inspect(conn).get_table_names(schema=schema))
    engine.dispose()
    ours = sorted({*metadata.tables, "alembic_version"} & present)
    if "records" not in ours:
        raise StoreUnavailable(
            f"the database {database} has no oaipmh-server schema yet: run "
            "`oaipmh-server migrate` (or a load) first, then ask for the grants"
        )
    quote = engine.dialect.identifier_preparer.quote
    tables = ", ".join(f"{quote(schema)}.{quote(table)}" for table in ours)
    who = quote(role)
    return [
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {who};",
        f"GRANT USAGE ON SCHEMA {quote(schema)} TO {who};",
        f"GRANT SELECT ON {tables} TO {who};",
    ]
