"""SqlStore, the SQL record store: SQLite by default, any SQLAlchemy URL (PostgreSQL in
production).

Reads are keyset queries on (datestamp, local_id), or (set_spec, datestamp, local_id) for a
set, so page 10,000 costs what page 1 costs. A load is one transaction (`SqlStore.loading`):
readers see the store before it or after it, never half of it. SQLAlchemy errors are turned
into StoreUnavailable at the edge (store/engine.py), so nothing above knows SQL.

Its reads, queries, meta keys and load are the modules beside this one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from ..errors import CannotWrite, CopyRefused, StoreUnavailable
from . import engine as engine_settings
from .copying import Copied, copy_store, same_database
from .engine import open_engine, unavailable
from .failures import Passwords, opening, shown_url  # what could not be opened, and why
from .locks import gave_up
from .meta import TOKEN_SECRET_KEY
from .queries import PageQueries
from .ranges import RangeStarts
from .readonly import why_read_only
from .reads import ProtocolReads, _DriverStatement
from .resources import ResourceQueries
from .revisions import Migration, Schema, migrate, read_schema
from .schema import meta_table
from .transaction import Loading
from .writes import READERS_KEY, read_mark, serves_readers, writers


class SqlStore(RangeStarts, ResourceQueries, ProtocolReads, PageQueries, Loading):
    """A RecordSource over SQL, plus the write side that ingest uses."""

    def __init__(
        self,
        url: str,
        *,
        token_secret: str | None = None,
        password: str | None = None,
        serving: bool = False,
        reading: bool = False,
        on_wait: Callable[[str], None] | None = None,
        passwords: Passwords | None = None,
    ) -> None:
        """`serving`: the store a server reads, whose requests wait for another session's
        lock only seconds (engine.SERVING_LOCK_WAIT_SECONDS); `reading`: a command's that
        only reads (engine.READ_LOCK_WAIT_SECONDS). `on_wait`: told, in a sentence, what a
        migration waits for when it waits (store/locks.py). `passwords`: where a refused
        or missing password is given, as the advice names it (failures.Passwords)."""
        self.url = url
        self.engine = open_engine(url, password, serving=serving, reading=reading)
        self._driver_statements: dict[tuple[Any, ...], _DriverStatement] = {}
        with opening(url, password, self.engine, passwords):
            # What opening did to the schema (`oaipmh-server migrate` prints it).
            self.migration: Migration = migrate(self.engine, on_wait)
            with self.engine.connect() as conn:
                self.read_only = why_read_only(conn)
        self._secret = token_secret

    def close(self) -> None:
        self.engine.dispose()

    def copy_into(self, target: SqlStore) -> Copied:
        """Every row of this store into `target`, a store with no records yet, in one
        transaction of each (store/copying.py); CopyRefused if it cannot be whole."""
        with unavailable():
            if same_database(self.engine, target.engine):
                raise CopyRefused("the target is this store's own database: name another one")
            self._no_load_running()
            return copy_store(self.engine, target.engine)

    def _no_load_running(self) -> None:
        """CopyRefused naming the load that holds the writer lease, if one does. A load
        under way commits, as a rule, after the copy has read the store: the copy said
        "Copied", the server was moved to it, and the load's changes were in the old
        database alone. (The lease is taken and let go at once: a load begun after this
        and committed during the copy fails the copy, copying.py.) A lease that cannot be
        taken at all (an SQLite file in a folder this user may not write) leaves that
        check alone to catch a load."""
        with self.engine.connect() as conn:
            lease = self._new_lease()
            try:
                held = lease.acquire(conn, wait=False)
            except CannotWrite:
                return
            if held:
                lease.release(conn)
                return
            with conn.begin():
                running = [w.describe() for w in writers(conn)]
        raise CopyRefused(
            f"a load is running ({'; '.join(running) or 'starting'}): let it end "
            "(and stop what starts loads), then copy again"
        )

    def prepare_for_readers(self, now: datetime) -> None:
        """What servers that cannot write need and cannot make (`oaipmh-server migrate
        --read-only-servers`): every write from now on raises the mark when it commits
        (store/writes.py, READERS_KEY), the token secret kept in the database unless one
        is configured, and a list cut-off mark, raised as a list raises it."""
        if self.read_only is not None:
            raise StoreUnavailable(
                f"cannot prepare the store from here: {self.read_only}; run it with a role "
                "that can write (on the primary)"
            )
        with unavailable(), self.engine.begin() as conn:
            if not serves_readers(conn):
                conn.execute(insert(meta_table).values(key=READERS_KEY, value="1"))
        self.token_secret()
        self.list_cutoff(now)

    def check_serving(self) -> None:
        """Before serving from a store this process cannot write: it is prepared for such
        servers (the mark, the flag, the token secret), or one sentence saying how."""
        if self.read_only is None:
            return
        secret_kept = select(meta_table.c.value).where(meta_table.c.key == TOKEN_SECRET_KEY)
        with unavailable(), self.engine.connect() as conn:
            prepared = serves_readers(conn) and read_mark(conn) is not None
            secret = self._secret or conn.execute(secret_kept).scalar()
        if not prepared or not secret:
            where = shown_url(self.engine.url)
            raise StoreUnavailable(
                f"cannot serve {where}: {self.read_only}, and the store is not prepared for "
                "servers that cannot write: run `oaipmh-server migrate --read-only-servers` "
                "once with a role that can write (on the primary), then start again"
            )

    def failure(self, error: StoreUnavailable) -> str:
        """What a command says when the store failed it: when it gave up waiting for
        another session's lock, which lock and who holds it (store/locks.py)."""
        held = gave_up(self.engine, error, engine_settings.READ_LOCK_WAIT_SECONDS)
        return held if held is not None else f"the database failed: {error}"

    def schema(self) -> Schema:
        """The schema's revision and the oaipmh-server version that last migrated it."""
        with unavailable(), self.engine.connect() as conn:
            return read_schema(conn)
