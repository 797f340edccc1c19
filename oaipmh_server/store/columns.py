"""The columns and row readers that the reads, the queries and the load share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

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
    FileRow,
    FragmentRow,
    RecordRow,
    UTCDateTime,
)

# Read as the driver gives it (see unpack_fields): older stores hold text there.
FIELDS: Any = type_coerce(RecordRow.fields, NullType())


# The files table's columns in records.File's order, after the record's id.
FILE_COLUMNS = ("local_id", "name", "bundle", "size", "md5", "mime", "sequence",
                "description", "is_primary", "access", "permissions", "uuid")  # fmt: skip
_FILE_SELECT = tuple(getattr(FileRow, c) for c in FILE_COLUMNS)


def files_of(conn: Connection, local_ids: Sequence[str]) -> dict[str, tuple[File, ...]]:
    """The files of these records, each record's in sequence order (records without files
    are not in the answer): one query per chunk of ids (bulk.id_chunks), on the primary key."""
    found: dict[str, list[File]] = {}
    for chunk in id_chunks(conn, list(dict.fromkeys(local_ids))):
        query = (
            select(*_FILE_SELECT)
            .where(among(conn, FileRow.local_id, chunk))
            .order_by(FileRow.local_id, FileRow.sequence)
        )
        for lid, *values in conn.execute(query):
            values[7] = bool(values[7])
            found.setdefault(lid, []).append(File(*values))
    return {lid: tuple(files) for lid, files in found.items()}


def fragment_join(local_id: Any, prefix: Any) -> Any:
    """The join of a record to its stored rendering in one format (`prefix`)."""
    return (FragmentRow.local_id == local_id) & (FragmentRow.prefix == prefix)


def datetime_binder(dialect: Dialect) -> Callable[[datetime], Any]:
    """A datetime as the column type binds it on this database (SQLite: its text), for
    statements run through the driver."""
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


def row_header(local_id: str, datestamp: datetime, set_specs: str, deleted: bool) -> Header:
    """A Header from a records row's columns (the set specs are stored space-separated)."""
    return Header(local_id, datestamp, tuple(set_specs.split()), bool(deleted))


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
