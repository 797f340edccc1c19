"""The SQL record store's names, handed on from the modules that hold them.

sqlstore.py (SqlStore), engine.py (the engine and SQLite's tuning), reads.py (the protocol's
reads), queries.py (pages' and check's queries), meta.py (meta keys: token secret, counts),
transaction.py (the load transaction and its value types), bulk.py (its bulk inserts and
lookups by id: COPY on PostgreSQL), ../packing.py (field packing, outside the package so
load workers never import SQLAlchemy),
resources.py (ResourceSync's list pages), ranges.py (where the ranges of sitemaps and
ResourceSync's lists start, kept per store state), columns.py (what they share); schema.py,
revisions.py and migrations/ (the schema and its migrations), writes.py (writes in progress
and list cut-offs), readonly.py (serving a store this process cannot write), backups.py,
failures.py, sqlite_urls.py (the file an SQLite URL names, or that it vanishes).
"""

from ..packing import pack_fields, pack_rows, plain_fields, unpack_fields, unpack_rows
from .engine import LOCK_WAIT_SECONDS, SQLITE_PAGE_SIZE
from .meta import COUNTS_KEY, LAST_WRITE_KEY, TOKEN_SECRET_KEY, StoreFigures
from .queries import StoreStats
from .reads import _page_query, _shape
from .sqlite_urls import database_file
from .sqlstore import SqlStore
from .transaction import (
    LOAD_CACHE_SIZE,
    Existing,
    LoadTransaction,
    RecordState,
    RecordWrite,
    Restamp,
    StoredState,
    ancestors,
)

__all__ = [
    "COUNTS_KEY",
    "LAST_WRITE_KEY",
    "LOAD_CACHE_SIZE",
    "LOCK_WAIT_SECONDS",
    "SQLITE_PAGE_SIZE",
    "TOKEN_SECRET_KEY",
    "Existing",
    "LoadTransaction",
    "RecordState",
    "RecordWrite",
    "Restamp",
    "SqlStore",
    "StoreFigures",
    "StoreStats",
    "StoredState",
    "_page_query",
    "_shape",
    "ancestors",
    "database_file",
    "pack_fields",
    "pack_rows",
    "plain_fields",
    "unpack_fields",
    "unpack_rows",
]
