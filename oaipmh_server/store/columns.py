"""The columns and row readers that the reads, the queries and the load share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    literal,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import NullType

from ..record_source import File, Header
from .bulk import among, id_chunks
from .schema import (
    UTCDateTime,
    files_table,
    fragments_table,
    records_table,
    stored_datetime,
)

# Read as the driver gives it (see unpack_fields): older stores hold text there.
FIELDS: Any = type_coerce(records_table.c.fields, NullType())


# The files table's columns in records.File's order, after the record's id.
FILE_COLUMNS = ("local_id", "name", "bundle", "size", "md5", "mime", "sequence",
                "description", "is_primary", "access", "permissions", "uuid")  # fmt: skip
_FILE_SELECT = tuple(files_table.c[c] for c in FILE_COLUMNS)


def files_of(conn: Connection, local_ids: Sequence[str]) -> dict[str, tuple[File, ...]]:
    """The files of these records, each record's in sequence order (records without files
    are not in the answer): one query per chunk of ids (bulk.id_chunks), on the primary key."""
    found: dict[str, list[File]] = {}
    for chunk in id_chunks(conn, list(dict.fromkeys(local_ids))):
        query = (
            select(*_FILE_SELECT)
            .where(among(conn, files_table.c.local_id, chunk))
            .order_by(files_table.c.local_id, files_table.c.sequence)
        )
        for lid, *values in conn.execute(query):
            values[7] = bool(values[7])
            found.setdefault(lid, []).append(File(*values))
    return {lid: tuple(files) for lid, files in found.items()}


def fragment_join(local_id: Any, prefix: Any) -> Any:
    """The join of a record to its stored rendering in one format (`prefix`)."""
    return (fragments_table.c.local_id == local_id) & (fragments_table.c.prefix == prefix)


def datetime_binder(dialect: Dialect) -> Callable[[datetime], Any]:
    """A datetime as the column type binds it on this database (SQLite: its text), for
    statements run through the driver."""
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


def row_headers(rows: Iterable[Sequence[Any]]) -> list[Header]:
    """The Headers of rows that begin with a records row's local id, datestamp, set specs
    and deleted flag. The datestamp may come raw from the driver (a page's rows: see
    schema.stored_datetime) or through its column type. The set specs, stored
    space-separated, are split once per distinct value: a page or a change list's rows
    come a collection at a time. Each Header is made by the tuple's own constructor
    (`maker`): a harvest makes a hundred a page."""
    make = maker(Header)
    split: dict[str, tuple[str, ...]] = {}
    headers = []
    for row in rows:
        specs = row[2]
        set_specs = split.get(specs)
        if set_specs is None:
            set_specs = split[specs] = tuple(specs.split())
        headers.append(make((row[0], stored_datetime(row[1]), set_specs, bool(row[3]))))
    return headers


def row_header(local_id: str, datestamp: datetime, set_specs: str, deleted: bool) -> Header:
    """The Header of one records row's columns (see row_headers)."""
    return row_headers([(local_id, datestamp, set_specs, deleted)])[0]


_Tuple = TypeVar("_Tuple", bound=tuple[Any, ...])


def maker(kind: type[_Tuple]) -> Callable[[tuple[Any, ...]], _Tuple]:
    """A NamedTuple `kind` made from a whole tuple of its fields by the tuple's own
    constructor: NamedTuple's `__new__` and `_make` are Python functions, which cost a
    page's hundred records as much as the rest of making them."""
    return partial(tuple.__new__, kind)


def keyset_starts(
    conn: Connection,
    key: Sequence[Any],
    where: ColumnElement[bool] | None,
    size: int,
    resume: Sequence[Any] | None = None,
) -> list[tuple[Any, ...]]:
    """The key of every `size`-th row in the order of `key` (an index's columns) among the
    rows `where` says: the first row, then one OFFSET `size` step on the index from each
    start to the next, a few dozen short walks for a million rows, never a sort. With
    `resume`, a start found before: the walk goes on from it (it is not in the answer)."""
    if resume is None:
        first = select(*key).order_by(*key).limit(1)
        if where is not None:
            first = first.where(where)
        row: Sequence[Any] | None = conn.execute(first).first()
    else:
        row = resume
    starts: list[tuple[Any, ...]] = []
    while row is not None:
        starts.append(tuple(row))
        at = tuple_(*(literal(value, column.type) for value, column in zip(row, key, strict=True)))
        step = select(*key).where(tuple_(*key) >= at).order_by(*key)
        if where is not None:
            step = step.where(where)
        row = conn.execute(step.offset(size).limit(1)).first()
    return starts if resume is None else starts[1:]
