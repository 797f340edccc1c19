"""The store as the ceiling and the reference read it: the bare driver on
OAIPMH_DATABASE_URL (sqlite3 for SQLite, psycopg for PostgreSQL), read-only, no SQLAlchemy.

Both servers write their SQL once with `?` placeholders; `connect` gives a connection whose
`execute(sql, params)` takes that SQL on either database (psycopg's `%s` put in), so the
ceiling and the reference read the same store the real server reads, on each backend.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

URL = os.environ["OAIPMH_DATABASE_URL"]


class _Postgres:
    """A psycopg connection in autocommit (no BEGIN/ROLLBACK around a page's one query),
    taking `?` placeholders, rows in binary (bytea as it is, not hex: what the server's
    pages ask for too, so the ceiling stays a ceiling); psycopg prepares a statement run
    five times."""

    def __init__(self, url: str) -> None:
        import psycopg

        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.connection = psycopg.connect(
            conninfo, autocommit=True, options="-c default_transaction_read_only=on"
        )

    def execute(self, sql: str, parameters: Any = ()) -> Any:
        return self.connection.execute(sql.replace("?", "%s"), parameters, binary=True)


def connect() -> Any:
    """A read-only connection to the benchmark's store, on its backend."""
    if URL.startswith("postgresql"):
        return _Postgres(URL)
    path = URL.removeprefix("sqlite:///")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
