"""The queries of the pages people read and of `check`: sets below a set, latest records,
sitemaps, statistics, every record in batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    select,
)

from ..packing import unpack_fields
from ..record_source import Field, File, Header, SetInfo
from .columns import FIELDS, files_of, row_headers
from .engine import Connected, unavailable
from .meta import (
    WHOLE_STORE,
    counted_set_counts,
    kept_counts,
    read_kept_set_counts,
    stored_counts,
)
from .schema import (
    records_table,
    sets_table,
)


class PageQueries(Connected):
    """The reads of the pages people read (pages.py) and of `oaipmh-server check`."""

    def stats(self) -> StoreStats:
        """What an operator asks first: how many, how many deleted, which dates, per set
        (the home page and `oaipmh-server stats`). The counts are the ones the last write
        kept, read with the earliest and latest datestamps in one statement (one step on
        the datestamp index each), and so are each set's (counting them on the membership
        index took 115 ms at 1,000,000 records, about 1.2 s at 10,000,000)."""
        with unavailable(), self._reader.connect() as conn:
            earliest, latest, kept = conn.execute(WHOLE_STORE).one()
            counts = kept_counts(kept)
            total, deleted = counts or stored_counts(conn)
            sets = read_kept_set_counts(conn)
            counted = counts is None or sets is None
            if sets is None:
                sets = counted_set_counts(conn)
            named = dict(conn.execute(select(sets_table.c.spec, sets_table.c.name)).all())
            return StoreStats(
                records=total,
                deleted=deleted,
                earliest=earliest,
                latest=latest,
                sets={spec: (named.get(spec, spec), sets.get(spec, 0)) for spec in sorted(named)},
                counted=counted,
            )

    def iter_fields(self, batch: int = 2000) -> Iterator[tuple[str, tuple[Field, ...]]]:
        """Every live record's (local id, fields), in local id order, a batch per query
        (keyset, never OFFSET, and no transaction held across batches): a check of a
        million records reads them in constant memory and time per batch."""
        for local_id, fields, _ in self.iter_records(batch, with_files=False):
            yield local_id, fields

    def iter_records(
        self, batch: int = 2000, *, with_files: bool = True
    ) -> Iterator[tuple[str, tuple[Field, ...], tuple[File, ...]]]:
        """`iter_fields` with each record's files (read a batch at a time too)."""
        after: str | None = None
        while True:
            query = select(records_table.c.local_id, FIELDS).where(
                records_table.c.deleted.is_(False)
            )
            if after is not None:
                query = query.where(records_table.c.local_id > after)
            query = query.order_by(records_table.c.local_id).limit(batch)
            with unavailable(), self._reader.connect() as conn:
                rows = conn.execute(query).all()
                files = files_of(conn, [row[0] for row in rows]) if with_files else {}
            for local_id, packed in rows:
                yield local_id, unpack_fields(packed), files.get(local_id, ())
            if len(rows) < batch:
                return
            after = rows[-1][0]

    # -- for the pages people read (pages.py) ----------------------------------------------

    def get_sets(self, specs: Sequence[str]) -> list[SetInfo]:
        """The named sets among `specs` (a record's own), in the order of `specs` (a
        header's: its communities, nearest first, then its collections)."""
        if not specs:
            return []
        query = select(sets_table.c.spec, sets_table.c.name, sets_table.c.description).where(
            sets_table.c.spec.in_(list(specs))
        )
        with unavailable(), self._reader.connect() as conn:
            found = {row[0]: SetInfo(*row) for row in conn.execute(query)}
        return [found[spec] for spec in dict.fromkeys(specs) if spec in found]

    def list_subsets(self, spec: str, limit: int) -> list[SetInfo]:
        """The sets just below `spec`, in spec order: those whose parent it is (DSpace's
        flat specs, with the tree kept in `parent`), and in the hierarchical style `a:b`
        below `a` (not `a:b:c`), a range of the primary key, `a:` up to `a;`."""
        columns = (sets_table.c.spec, sets_table.c.name, sets_table.c.description)
        children = select(*columns).where(sets_table.c.parent == spec)
        nested = select(*columns).where(
            sets_table.c.spec > f"{spec}:", sets_table.c.spec < f"{spec};"
        )
        depth = spec.count(":") + 1
        with unavailable(), self._reader.connect() as conn:
            found = {row[0]: SetInfo(*row) for row in conn.execute(children.limit(limit))}
            for row in conn.execute(nested.order_by(sets_table.c.spec)):
                if row[0].count(":") == depth:
                    found.setdefault(row[0], SetInfo(*row))
        return [found[key] for key in sorted(found)][:limit]

    def get_fields_of(self, local_ids: Sequence[str]) -> dict[str, tuple[Field, ...]]:
        """Several records' fields in one query (a page listing records shows their titles)."""
        if not local_ids:
            return {}
        query = select(records_table.c.local_id, FIELDS).where(
            records_table.c.local_id.in_(list(local_ids))
        )
        with unavailable(), self._reader.connect() as conn:
            return {lid: unpack_fields(packed) for lid, packed in conn.execute(query)}

    def latest_headers(self, limit: int, among: int = 200) -> list[Header]:
        """The live records among the `among` most recently stamped, newest first, at most
        `limit`: the datestamp index read backwards for a bounded number of rows, so it
        costs the same at any size, even when a mass deletion put thousands of tombstones
        at the top (skipping them in SQL would read every one)."""
        query = (
            select(
                records_table.c.local_id,
                records_table.c.datestamp,
                records_table.c.set_specs,
                records_table.c.deleted,
            )
            .order_by(records_table.c.datestamp.desc(), records_table.c.local_id.desc())
            .limit(among)
        )
        with unavailable(), self._reader.connect() as conn:
            headers = row_headers(conn.execute(query))
        return [h for h in headers if not h.deleted][:limit]

    def list_ids(
        self, start: str, after: str | None, limit: int
    ) -> list[tuple[str, datetime, bool]]:
        """(local id, datestamp, deleted) from `start` on (after `after`, when continuing),
        in local id order: one sitemap read in keyset chunks."""
        query = select(records_table.c.local_id, records_table.c.datestamp, records_table.c.deleted)
        if after is None:
            query = query.where(records_table.c.local_id >= start)
        else:
            query = query.where(records_table.c.local_id > after)
        query = query.order_by(records_table.c.local_id).limit(limit)
        with unavailable(), self._reader.connect() as conn:
            return [(lid, stamp, bool(deleted)) for lid, stamp, deleted in conn.execute(query)]


@dataclass(frozen=True)
class StoreStats:
    records: int
    deleted: int
    earliest: datetime | None
    latest: datetime | None
    sets: dict[str, tuple[str, int]]  # spec → (name, records in it or below it)
    # Whether any count was counted, not read as the last write kept it (a store last
    # written by a version that kept none): a read that grows with the store.
    counted: bool = False
