"""SqlStore, the SQL record store: SQLite by default, any SQLAlchemy URL (PostgreSQL in
production).

Reads are keyset queries on (datestamp, local_id), or (set_spec, datestamp, local_id) for a
set, so page 10,000 costs what page 1 costs. A load is one transaction (`SqlStore.loading`):
readers see the store before it or after it, never half of it. SQLAlchemy errors are turned
into StoreUnavailable at the edge (store/engine.py), so nothing above knows SQL.

Its reads, queries, meta keys and load are the modules beside this one.
"""

from __future__ import annotations

from .engine import open_engine, unavailable
from .failures import opening  # what could not be opened, and why
from .queries import PageQueries
from .reads import ProtocolReads, _DriverStatement, _Shape
from .resources import ResourceQueries
from .revisions import Migration, Schema, migrate, read_schema
from .transaction import Loading


class SqlStore(ResourceQueries, ProtocolReads, PageQueries, Loading):
    """A RecordSource over SQL, plus the write side that ingest uses."""

    def __init__(
        self, url: str, *, token_secret: str | None = None, password: str | None = None
    ) -> None:
        self.url = url
        self.engine = open_engine(url, password)
        self._driver_statements: dict[tuple[str, _Shape, bool], _DriverStatement] = {}
        with opening(url, password, self.engine):
            # What opening did to the schema (`oaipmh-server migrate` prints it).
            self.migration: Migration = migrate(self.engine)
        self._secret = token_secret

    def close(self) -> None:
        self.engine.dispose()

    def schema(self) -> Schema:
        """The schema's revision and the oaipmh-server version that last migrated it."""
        with unavailable(), self.engine.connect() as conn:
            return read_schema(conn)
