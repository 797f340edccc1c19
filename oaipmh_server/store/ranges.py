"""Where the keyset ranges of the sitemaps and of ResourceSync's lists begin: walked once
per store state and kept in the process, so an index costs a few short reads, not a walk.

Finding where each range of `size` rows begins walks the whole index in OFFSET steps
(columns.keyset_starts): 0.1 to 0.2 s a kind at a million records on SQLite, 14 to 97
times a ListIdentifiers page (benchmarks/RESULTS.md), too slow for every request for
/sitemap.xml or a ResourceSync index. The starts are therefore kept, per kind and size,
with the store's write mark: the meta keys every write commits with its changes (the
counts and the commit time, store/meta.py), read in the same transaction as the walk and
before it. A request reads the mark (one primary key read) and walks again only when a
write has committed since; so after each load the first index request of each process
walks, and the others reuse what it found.

Why kept starts never lose or duplicate a record, even stale ones: a range is a keyset
interval, [start, next start), the last one [start, ∞), and the starts are sorted; so,
whichever rows they were taken from, the ranges cover every key from the first start on,
each in exactly one range. A row with a key before the first start could only be missed:
each request therefore also reads the index's first key (one read at its end) and walks
again if it lies before the first start. Staleness then changes only the ranges' sizes:
the walk cuts every range at `size` rows; rows written since go into the range their key
falls in; so a range holds at most `size` rows plus those written since the walk. With
the mark in the key, that is none, unless something writes the store without keeping the
mark (an older version of this program, hand-made SQL): its rows only make ranges bigger,
until the next load moves the mark. (Resource and change lists read to their range's end
whatever its size; a sitemap reads at most 50,000 records from its start, so in that case
alone it would leave out the records of its range past the 50,000th until that load.)

A change list's starts are also bounded by its cut-off (`until`), which moves every
second, without a write. The order is (datestamp, local id), so the starts up to an
earlier cut-off are those up to a later one that are not after it, and the starts up to a
later cut-off are those up to the earlier one followed by the walk continued from the
last of them; the continued walk is needed only if some record is dated between the two
cut-offs (one index read says whether). The starts served for any cut-off are thus the
ones a fresh walk would find, with no walk unless records entered the window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Connection, select

from ..record_source import Position
from .columns import keyset_starts
from .engine import Connected, unavailable
from .meta import COUNTS_KEY, LAST_WRITE_KEY
from .schema import files_table, meta_table, records_table

FileKey = tuple[str, int]  # (local id, sequence): the files table's primary key
Starts = tuple[tuple[Any, ...], ...]
_RECORD_KEY = (records_table.c.local_id,)
_FILE_KEY = (files_table.c.local_id, files_table.c.sequence)
_CHANGE_KEY = (records_table.c.datestamp, records_table.c.local_id)


@dataclass(frozen=True, slots=True)
class _Kept:
    """Starts as a walk found them, in the store state the mark names."""

    mark: tuple[tuple[str, str], ...]
    starts: Starts
    until: datetime | None = None  # a change list's: the cut-off they were walked to


class RangeStarts(Connected):
    """The ranges' starts, each kind's kept per size until the store's mark moves."""

    @cached_property
    def _kept(self) -> dict[tuple[str, int], _Kept]:
        return {}

    def sitemap_starts(self, size: int) -> list[str]:
        """The local id each sitemap (or resource list) of `size` records begins with, in
        local id order (deleted records included, so the walk stays on the primary key)."""
        with self._reading() as conn:
            starts = self._starts(conn, ("records", size), _RECORD_KEY, size)
        return [start for (start,) in starts]

    def file_starts(self, size: int) -> list[FileKey]:
        """Where each resource list of `size` files begins, in the files' key order (files
        of deleted or later records included, so the walk stays on the primary key)."""
        with self._reading() as conn:
            starts = self._starts(conn, ("files", size), _FILE_KEY, size)
        return [(lid, int(seq)) for lid, seq in starts]

    def change_starts(self, size: int, until: datetime) -> list[Position]:
        """Where each change list of `size` changes begins, in (datestamp, local id) order
        up to `until` (the module's docstring says how a cut-off reuses another's starts)."""
        within = records_table.c.datestamp <= until
        with self._reading() as conn:
            mark = _mark(conn)
            kept = self._kept.get(("changes", size))
            if (
                kept is None
                or kept.until is None
                or kept.mark != mark
                or not _first_at_or_after(conn, _CHANGE_KEY, within, kept.starts)
            ):
                kept = _Kept(mark, tuple(keyset_starts(conn, _CHANGE_KEY, within, size)), until)
            elif until > kept.until:
                entered = select(records_table.c.local_id).where(
                    records_table.c.datestamp > kept.until
                )
                if conn.execute(entered.where(within).limit(1)).first() is None:
                    kept = _Kept(mark, kept.starts, until)  # the same rows up to `until`
                else:
                    resume = kept.starts[-1] if kept.starts else None
                    more = keyset_starts(conn, _CHANGE_KEY, within, size, resume=resume)
                    kept = _Kept(mark, kept.starts + tuple(more), until)
            self._kept[("changes", size)] = kept
        return [Position(stamp, lid) for stamp, lid in kept.starts if stamp <= until]

    def _starts(
        self, conn: Connection, name: tuple[str, int], key: Sequence[Any], size: int
    ) -> Starts:
        """The kept starts of `name` if the mark has not moved and no row lies before the
        first, else a walk's, kept."""
        mark = _mark(conn)
        kept = self._kept.get(name)
        if (
            kept is None
            or kept.mark != mark
            or not _first_at_or_after(conn, key, None, kept.starts)
        ):
            kept = _Kept(mark, tuple(keyset_starts(conn, key, None, size)))
            self._kept[name] = kept
        return kept.starts

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """One transaction, so the mark read first names the state the walk reads (on
        PostgreSQL a snapshot for the whole transaction, REPEATABLE READ)."""
        with unavailable(), self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn


def _mark(conn: Connection) -> tuple[tuple[str, str], ...]:
    """The meta keys every write commits with its changes: they change with each write."""
    query = select(meta_table.c.key, meta_table.c.value).where(
        meta_table.c.key.in_((COUNTS_KEY, LAST_WRITE_KEY))
    )
    return tuple(sorted((str(k), str(v)) for k, v in conn.execute(query)))


def _first_at_or_after(
    conn: Connection, key: Sequence[Any], where: ColumnElement[bool] | None, starts: Starts
) -> bool:
    """Whether the index's first key (among the rows `where` says) is not before the first
    start: no row lies outside every range. One read at the index's end."""
    query = select(*key).order_by(*key).limit(1)
    if where is not None:
        query = query.where(where)
    first = conn.execute(query).first()
    if first is None:
        return True
    return bool(starts) and tuple(first) >= starts[0]
