"""The reads of ResourceSync (resourcesync.py, web/resourcesync.py): the records and files of
one keyset range of its resource lists and change lists (ranges.py finds where they start).

Every list is bounded by a cut-off (`list_cutoff`, as the OAI-PMH lists are): a record
dated after it is left out of every page of the list, so the pages of one list, read one
after the other while loads commit, show the store as it was at that cut-off, and a change
they leave out is dated after it, where the next change list shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import literal, select, tuple_

from ..record_source import File, Header, Position, StoredRecord
from .columns import FILE_COLUMNS, fragment_join, row_headers
from .engine import unavailable
from .ranges import FileKey
from .reads import ProtocolReads, _record_columns
from .schema import UTCDateTime, files_table, fragments_table, records_table


class ResourceQueries(ProtocolReads):
    """The ranges and pages of ResourceSync's lists, each read on an index's order."""

    def list_resources(
        self,
        prefix: str,
        version: str,
        start: str,
        after: str | None,
        end: str | None,
        until: datetime,
        limit: int,
        with_files: bool,
    ) -> list[StoredRecord]:
        """The live records dated up to `until` with local ids from `start` (after `after`,
        when continuing) to before `end`, in local id order, each with its stored rendering
        in `prefix` or, where there is none of `version`, its fields (and its files, when
        `with_files`) to render it from: one keyset read of a resource list's chunk."""
        query = (
            _record_columns()
            .select_from(records_table)
            .outerjoin(fragments_table, fragment_join(records_table.c.local_id, prefix))
            .where(records_table.c.deleted.is_(False), records_table.c.datestamp <= until)
        )
        if after is None:
            query = query.where(records_table.c.local_id >= start)
        else:
            query = query.where(records_table.c.local_id > after)
        if end is not None:
            query = query.where(records_table.c.local_id < end)
        query = query.order_by(records_table.c.local_id).limit(limit)
        with unavailable(), self.engine.connect() as conn:
            rows = conn.execute(query).all()
            return self._with_fields(conn, rows, version, "", with_files)

    def list_file_resources(
        self,
        start: FileKey,
        after: FileKey | None,
        end: FileKey | None,
        until: datetime,
        limit: int,
    ) -> list[tuple[str, datetime, File]]:
        """(local id, its record's datestamp, file) of the live records dated up to
        `until`, in the files' key order from `start` (after `after`) to before `end`: a
        chunk of a files list."""
        key = tuple_(files_table.c.local_id, files_table.c.sequence)
        columns = tuple(files_table.c[c] for c in FILE_COLUMNS)
        query = (
            select(*columns, records_table.c.datestamp)
            .join(records_table, records_table.c.local_id == files_table.c.local_id)
            .where(records_table.c.deleted.is_(False), records_table.c.datestamp <= until)
        )
        query = query.where(key >= tuple_(*start) if after is None else key > tuple_(*after))
        if end is not None:
            query = query.where(key < tuple_(*end))
        query = query.order_by(files_table.c.local_id, files_table.c.sequence).limit(limit)
        with unavailable(), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = []
        for lid, *values, stamp in rows:
            values[7] = bool(values[7])
            found.append((lid, stamp, File(*values)))
        return found

    def list_changes(
        self,
        first: Position,
        after: Position | None,
        last: Position | None,
        until: datetime,
        limit: int,
    ) -> list[Header]:
        """The records (deleted ones too) from `first` (after `after`, when continuing) to
        before `last`, dated up to `until`, in (datestamp, local id) order: a chunk of a
        change list, one range of the datestamp index."""
        key = tuple_(records_table.c.datestamp, records_table.c.local_id)
        query = select(
            records_table.c.local_id,
            records_table.c.datestamp,
            records_table.c.set_specs,
            records_table.c.deleted,
        ).where(records_table.c.datestamp <= until)
        query = query.where(key >= _at(first) if after is None else key > _at(after))
        if last is not None:
            query = query.where(key < _at(last))
        query = query.order_by(records_table.c.datestamp, records_table.c.local_id).limit(limit)
        with unavailable(), self.engine.connect() as conn:
            return row_headers(conn.execute(query))


def _at(position: Position) -> Any:
    """A keyset position as a row value to compare (datestamp, local_id) with."""
    return tuple_(literal(position.datestamp, UTCDateTime()), literal(position.local_id))
