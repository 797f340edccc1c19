"""The protocol's reads (RecordSource): sets, headers, records, and their keyset pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    func,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.types import NullType

from ..packing import unpack_fields
from ..record_source import Field, File, Header, Position, Selection, SetInfo, StoredRecord
from . import readonly
from .columns import (
    FIELDS,
    datetime_binder,
    files_of,
    fragment_join,
    maker,
    row_header,
    row_headers,
)
from .engine import AnySelect, Connected, driver_rows, unavailable
from .meta import (
    HEALTH,
    KEPT_COUNTS,
    LAST_WRITE_KEY,
    SET_COUNTS_KEY,
    WHOLE_SET,
    WHOLE_STORE,
    kept_counts,
    kept_set_counts,
    stored_counts,
)
from .schema import (
    UTCDateTime,
    fragments_table,
    memberships_table,
    records_table,
    sets_table,
)


class ProtocolReads(Connected):
    """The reads the protocol makes (RecordSource), each page one keyset query."""

    _driver_statements: dict[tuple[Any, ...], _DriverStatement]
    # The highest mark a continued list found on a server that cannot write.
    _seen_mark: datetime | None = None

    def count_all(self) -> int:
        """How many records (deleted included) the store holds: /healthz's answer at every
        probe of a load balancer or a monitor (read there with more: `health`), and the
        length of check's progress bar. The count the last write kept in `meta`,
        one row's read, where counting the rows grew with the store (11 ms a probe at
        1,000,000 records on SQLite, up to seconds on a cold PostgreSQL); a store whose
        counts are not kept (last written before 1.0.0) is counted."""
        return self._records_read_by(KEPT_COUNTS)

    def health(self) -> int:
        """/healthz's answer: the records count_all gives, read with one step into each
        table a list's page reads (meta.HEALTH), so that /healthz is not ok while a page
        cannot read. On PostgreSQL another session's ACCESS EXCLUSIVE lock on one of them
        (a LOCK TABLE, a VACUUM FULL, another program's ALTER) makes it wait, as a page
        waits, engine.SERVING_LOCK_WAIT_SECONDS at most, then fail: 503. Reading the kept
        count alone, it said ok while every list was answered 503, and a load balancer
        kept sending harvesters there."""
        return self._records_read_by(HEALTH)

    def _records_read_by(self, statement: AnySelect) -> int:
        """The records count `statement`'s first column gives, as the last write kept it,
        or counted when it kept none."""
        with unavailable(), self._reader.connect() as conn:
            kept = kept_counts(conn.execute(statement).scalar())
            return (kept or stored_counts(conn))[0]

    def earliest_datestamp(self) -> datetime | None:
        earliest: datetime | None = self._scalar(select(func.min(records_table.c.datestamp)))
        return earliest

    def has_sets(self) -> bool:
        return self._scalar(select(sets_table.c.spec).limit(1)) is not None

    def count_sets(self) -> int:
        return int(self._scalar(select(func.count()).select_from(sets_table)) or 0)

    def list_sets(self, after: str | None, limit: int) -> list[SetInfo]:
        query = select(sets_table.c.spec, sets_table.c.name, sets_table.c.description).order_by(
            sets_table.c.spec
        )
        if after is not None:
            query = query.where(sets_table.c.spec > after)
        with unavailable(), self._reader.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [SetInfo(spec, name, description) for spec, name, description in rows]

    def get_header(self, local_id: str) -> Header | None:
        query = select(
            records_table.c.local_id,
            records_table.c.datestamp,
            records_table.c.set_specs,
            records_table.c.deleted,
        ).where(records_table.c.local_id == local_id)
        with unavailable(), self._reader.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else row_header(*row)

    def get_record(
        self,
        local_id: str,
        prefix: str,
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> StoredRecord | None:
        with unavailable(), self._reader.connect() as conn:
            values = {"local_id": local_id, "prefix": prefix}
            rows = self._run(conn, ("record",), _record_query, values)
            records = self._with_fields(conn, rows, version, header_version, with_files)
        return records[0] if records else None

    def get_fields(self, local_id: str) -> tuple[Field, ...] | None:
        query = select(FIELDS).where(records_table.c.local_id == local_id)
        text = self._scalar(query)
        return None if text is None else unpack_fields(text)

    def get_files(self, local_id: str) -> tuple[File, ...]:
        with unavailable(), self._reader.connect() as conn:
            return files_of(conn, [local_id]).get(local_id, ())

    def get_files_of(self, local_ids: Sequence[str]) -> dict[str, tuple[File, ...]]:
        """Several records' files in one query per chunk of ids (only records that have files)."""
        with unavailable(), self._reader.connect() as conn:
            return files_of(conn, local_ids)

    def count_records(self, selection: Selection) -> int:
        """A list's size (completeListSize; 0 is noRecordsMatch), asked on every list's
        first page. A full harvest's list is the whole store: its size is the count the
        last write kept (meta.COUNTS_KEY), read in one statement (one snapshot) with the
        earliest and latest datestamps that show the list leaves no record out. Counting
        it row by row grew with the store: 50-100 ms at 1,000,000 records on SQLite, 150 ms
        to 2.6 s on PostgreSQL. A whole set's list is the set's size the last write kept,
        read the same way (a set of 250,000 took 16 ms to count on SQLite). Any other list
        (a from or until inside the datestamps of the store or the set) is counted on its
        index."""
        size: int | None = None
        with unavailable(), self._reader.connect() as conn:
            if selection.set_spec is None:
                earliest, latest, kept = conn.execute(WHOLE_STORE).one()
                counts = kept_counts(kept)
                size = None if counts is None else counts[0]
            else:
                earliest, latest, sizes, written = conn.execute(
                    WHOLE_SET, {"set_spec": selection.set_spec}
                ).one()
                kept_sizes = kept_set_counts({SET_COUNTS_KEY: sizes, LAST_WRITE_KEY: written})
                size = None if kept_sizes is None else kept_sizes.get(selection.set_spec, 0)
        if (
            size is not None
            and earliest is not None
            and (selection.from_ is None or selection.from_ <= earliest)
            and latest <= selection.until
        ):
            return size
        query = _page_query("count", _shape(selection), False)
        return int(self._scalar(query, _page_parameters(selection, None)) or 0)

    def list_headers(
        self, selection: Selection, after: Position | None, limit: int, header_version: str
    ) -> list[StoredRecord]:
        with unavailable(), self._reader.connect() as conn:
            rows = self._page(conn, "headers", selection, after, {"limit": limit})
        make = maker(StoredRecord)
        return [
            make((header, None, None, row[4] if row[5] == header_version else None, ()))
            for header, row in zip(row_headers(rows), rows, strict=True)
        ]

    def list_records(
        self,
        selection: Selection,
        after: Position | None,
        limit: int,
        prefix: str,
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> list[StoredRecord]:
        with unavailable(), self._reader.connect() as conn:
            rows = self._page(conn, "records", selection, after, {"limit": limit, "prefix": prefix})
            return self._with_fields(conn, rows, version, header_version, with_files)

    # -- helpers of the read side -----------------------------------------------------------

    def _page(
        self,
        conn: Connection,
        kind: str,
        selection: Selection,
        after: Position | None,
        extra: dict[str, Any],
    ) -> Sequence[Any]:
        """A page's rows, by the page statement compiled once for this database and run
        through the driver: a harvest runs it thousands of times, and SQLAlchemy's
        per-execution work (parameter and result processing) cost as much as SQLite's."""
        if after is not None and self.read_only is not None:
            self._replayed_to(selection.until)
        key = (kind, _shape(selection), after is not None)
        values = {**_page_parameters(selection, after), **extra}
        for name in _DATETIME_PARAMETERS.intersection(values):
            values[name] = self._bind_datetime(values[name])
        return self._run(conn, key, lambda: _page_query(*key), values)

    def _replayed_to(self, until: datetime) -> None:
        """A continued list on a server that cannot write: its mark is at or past the
        list's cut-off before the page is read (store/readonly.py), looked up again only
        when a cut-off is past the highest mark this process has seen."""
        if self._seen_mark is None or self._seen_mark < until:
            with unavailable():
                self._seen_mark = readonly.await_mark(self.engine, until)

    @cached_property
    def _bind_datetime(self) -> Callable[[datetime], Any]:
        return datetime_binder(self.engine.dialect)

    def _run(
        self,
        conn: Connection,
        key: tuple[Any, ...],
        build: Callable[[], AnySelect],
        values: dict[str, Any],
    ) -> Sequence[Any]:
        """The rows of the statement `build` makes, compiled once for this database under
        `key` and run through the driver (engine.driver_rows) with these values: a harvest
        sends its page statement thousands of times and GetRecord its own as often, and
        SQLAlchemy's per-execution work (building the statement, its cache key, parameter
        and result processing) cost as much as the database's."""
        statement = self._driver_statements.get(key)
        if statement is None:
            compiled = build().compile(dialect=self.engine.dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            # Parameters the compiler added, such as SQLite's OFFSET 0.
            constants = {k: v for k, v in compiled.params.items() if v is not None}
            statement = self._driver_statements[key] = (str(compiled), order, constants)
        sql, order, constants = statement
        values = {**constants, **values}
        parameters: Any = values if order is None else tuple(values[name] for name in order)
        return driver_rows(conn, sql, parameters)

    def _with_fields(
        self,
        conn: Connection,
        rows: Sequence[Any],
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> list[StoredRecord]:
        """Records whose stored fragment is missing or stale come with their fields instead
        (and their files, `with_files`); a stored header of another version is left out
        (rendered afresh)."""
        stale = [row[0] for row in rows if not row[3] and row[6] != version]
        fields: dict[str, tuple[Field, ...]] = {}
        files: dict[str, tuple[File, ...]] = {}
        if stale:
            query = select(records_table.c.local_id, FIELDS).where(
                records_table.c.local_id.in_(stale)
            )
            fields = {lid: unpack_fields(text) for lid, text in conn.execute(query)}
            if with_files:
                files = files_of(conn, stale)
        records = []
        make = maker(StoredRecord)
        for header, row in zip(row_headers(rows), rows, strict=True):
            header_xml = row[4] if row[5] == header_version else None
            if header.deleted:
                records.append(make((header, None, None, header_xml, ())))
            elif header.local_id in fields:
                local_id = header.local_id
                records.append(make((header, None, fields[local_id], header_xml,
                                     files.get(local_id, ()))))  # fmt: skip
            else:
                records.append(make((header, row[7], None, header_xml, ())))
        return records


# The datestamp is read raw and made a datetime by `stored_datetime`: the same result as
# the column type's processing, for a fraction of its cost on a page of a hundred rows.
_HEADER_COLUMNS = (
    records_table.c.local_id,
    type_coerce(records_table.c.datestamp, NullType()).label("datestamp"),
    records_table.c.set_specs,
    records_table.c.deleted,
    records_table.c.header,
    records_table.c.header_version,
)
_RECORD_COLUMNS = (*_HEADER_COLUMNS, fragments_table.c.version, fragments_table.c.body)


def _record_columns() -> AnySelect:
    return select(*_RECORD_COLUMNS)


def _record_query() -> AnySelect:
    """One record with its stored rendering in a format (GetRecord)."""
    return (
        _record_columns()
        .select_from(records_table)
        .outerjoin(fragments_table, fragment_join(records_table.c.local_id, bindparam("prefix")))
        .where(records_table.c.local_id == bindparam("local_id"))
    )


_Shape = tuple[bool, bool]  # (in a set, with a from date)
_DriverStatement = tuple[str, tuple[str, ...] | None, dict[str, Any]]


@lru_cache(maxsize=64)
def _page_query(kind: str, selection_shape: _Shape, after_shape: bool) -> AnySelect:
    """The statement for one kind of page ("count", "headers" or "records") and one shape
    of selection, built once with bind parameters for the values (`_page_parameters`):
    pages run it compiled, through the driver (`SqlStore._page`), the count through
    SQLAlchemy.

    Restricted to the selection and continued after a keyset position, in datestamp order.
    For a set the order is the membership index's: (set_spec, datestamp, local_id).
    """
    columns: Any
    if kind == "count":
        columns = [func.count()]
    elif kind == "headers":
        columns = _HEADER_COLUMNS
    else:
        columns = _RECORD_COLUMNS
    query = select(*columns)
    in_set, with_from = selection_shape
    if in_set:
        datestamp, local_id = memberships_table.c.datestamp, memberships_table.c.local_id
        query = query.select_from(memberships_table)
        if kind != "count":  # a membership carries its record's datestamp: enough to count
            query = query.join(
                records_table, records_table.c.local_id == memberships_table.c.local_id
            )
        query = query.where(memberships_table.c.set_spec == bindparam("set_spec"))
    else:
        datestamp, local_id = records_table.c.datestamp, records_table.c.local_id
        query = query.select_from(records_table)
    if kind == "records":
        query = query.outerjoin(
            fragments_table, fragment_join(records_table.c.local_id, bindparam("prefix"))
        )
    if with_from:
        query = query.where(datestamp >= bindparam("from_", type_=UTCDateTime()))
    query = query.where(datestamp <= bindparam("until", type_=UTCDateTime()))
    if after_shape:
        query = query.where(
            tuple_(datestamp, local_id)
            > tuple_(bindparam("after_datestamp", type_=UTCDateTime()), bindparam("after_id"))
        )
    if kind == "count":
        return query
    return query.order_by(datestamp, local_id).limit(bindparam("limit"))


def _shape(selection: Selection) -> _Shape:
    return selection.set_spec is not None, selection.from_ is not None


# The page statements' parameters that are datestamps, bound as the column type binds them.
_DATETIME_PARAMETERS = frozenset({"from_", "until", "after_datestamp"})


def _page_parameters(selection: Selection, after: Position | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"until": selection.until}
    if selection.set_spec is not None:
        parameters["set_spec"] = selection.set_spec
    if selection.from_ is not None:
        parameters["from_"] = selection.from_
    if after is not None:
        parameters["after_datestamp"] = after.datestamp
        parameters["after_id"] = after.local_id
    return parameters
