"""A load's bulk statements: rows inserted by PostgreSQL's COPY (the driver's executemany
elsewhere), records looked up by id with one array parameter (an IN list elsewhere).

Why COPY: a load inserts four or more rows a record (the record, its memberships, its
fragment), and psycopg's executemany sends each row as a statement of its own, through
Python code per row and per value: more than half of the loading process's time on a
PostgreSQL load of 100,000 records, and PostgreSQL's CPU halved once the rows came by COPY
and the fragments uncompressed (benchmarks/RESULTS.md). COPY streams the rows in one
statement, encoded by psycopg's C code; binary, so the fragments and packed fields (bytea)
go as they are instead of hex. It runs on the load's own connection, inside its one
transaction: a failed or killed load leaves the store as it was, as before.

Why one array: a lookup of a batch's ids as `IN (…)` with 500 parameters was parsed anew
by psycopg for every statement (too long for its cache) and planned anew by PostgreSQL;
`= ANY(%s)` is one short statement with one parameter, prepared once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Connection, String, Table, any_, bindparam
from sqlalchemy.exc import DBAPIError

# How many ids one lookup binds: SQLite counts each as a variable of the statement (at
# most 32,766); PostgreSQL takes them as one array.
IN_LIST_IDS = 500
ARRAY_IDS = 10_000

# The binary COPY format of a column, by its type as PostgreSQL spells it (the first word
# of the SQLAlchemy type compiled for PostgreSQL). Text goes as text into varchar columns
# too: PostgreSQL reads both alike, and still checks a varchar's length.
_COPY_TYPES = {
    "VARCHAR": "text",
    "TEXT": "text",
    "BYTEA": "bytea",
    "BOOLEAN": "bool",
    "TIMESTAMP": "timestamp",
    "INTEGER": "int4",
    "BIGINT": "int8",
}


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert rows of `columns`' values, ready as the driver takes them (datetimes bound
    by the column type's own binder, the rest str, bytes, bool, int or None)."""
    if conn.dialect.name == "postgresql":
        _copy(conn, table, columns, rows)
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(columns)  # the store's own constants, never input
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
    conn.exec_driver_sql(sql, list(rows))


def _copy(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """COPY … FROM STDIN in binary, on the connection's driver connection (psycopg), in
    the transaction the connection has begun. The driver's errors are SQLAlchemy's
    DBAPIError, as every other statement's (engine.unavailable turns them into
    StoreUnavailable)."""
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    types = [copy_type(table.c[name].type.compile(dialect=conn.dialect)) for name in columns]
    driver: Any = conn.connection.driver_connection
    error = conn.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
    except error as e:
        raise DBAPIError.instance(sql, None, e, error, dialect=conn.dialect) from e


def copy_type(compiled: str) -> str:
    """The binary COPY format for a column of this type (`VARCHAR(255)` → `text`)."""
    return _COPY_TYPES[compiled.replace("(", " ").split()[0]]


def among(conn: Connection, column: Any, ids: Sequence[str]) -> ColumnElement[bool]:
    """`column` is one of `ids` (at most `id_chunks`' size): one array parameter on
    PostgreSQL, an IN list elsewhere."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=ARRAY(String)))  # type: ignore[no-any-return]
    return column.in_(ids)  # type: ignore[no-any-return]


def id_chunks(conn: Connection, ids: Sequence[str]) -> Iterator[Sequence[str]]:
    """`ids` in parts small enough for one lookup each (`among`)."""
    size = ARRAY_IDS if conn.dialect.name == "postgresql" else IN_LIST_IDS
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
