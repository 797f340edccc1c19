"""Batches of a load's records: looked up in the store, finished (in this process or by
the worker processes, `workers.py`), then decided and written in the order they were read."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import NamedTuple

from ..errors import LoadError
from ..store import Existing
from .csv_merge import Unfinished, finish
from .dating import redated
from .drafts import ACCESSIONED, Draft, Prepared
from .state import LoadState
from .workers import FINISHER_STOPPED

BATCH = 1000


class _InFlight(NamedTuple):
    """A batch the workers are finishing (`_Loader.flush`)."""

    existing: dict[str, Existing]  # its records as the store held them
    tasks: list[Unfinished | Prepared | Draft]  # in order; the Unfinished are in `finished`
    finished: Future[list[Prepared | LoadError]] | None
    ids: frozenset[str]


class Batches(LoadState):
    """The batching part of a load (`load._Loader`)."""

    in_flight: deque[_InFlight]

    def flush(self) -> None:
        """Look up the batch's records in the store and finish them (see `Unfinished`):
        here, or in the worker processes, which work on a few batches while this process
        reads the next ones and writes the finished ones in order (`land`)."""
        drafts = list(self.batch.values())
        self.batch.clear()
        if not drafts:
            return
        existing = self.tx.existing(d.local_id for d in drafts)
        if self.problems:  # nothing will be written: only parts that change no record
            for part in drafts:
                self.not_written(part.local_id)
                old = existing.get(part.local_id)
                unknown = old is None or old.deleted
                if isinstance(part, Draft) and part.partial is not None and unknown:
                    self._whole(part)
            return
        tasks = self._tasks(drafts, existing)
        if self.workers is None:
            done = [finish(t, self.limits) if isinstance(t, Unfinished) else t for t in tasks]
            self._write(existing, done)
            return
        ids = frozenset(d.local_id for d in drafts)
        unfinished = [t for t in tasks if isinstance(t, Unfinished)]
        future = self.workers.finish(unfinished) if unfinished else None
        self.in_flight.append(_InFlight(existing, tasks, future, ids))
        while len(self.in_flight) > self.workers.count + 1:
            self._land_one()

    def land(self) -> None:
        """Write every batch in flight (see `flush`)."""
        while self.in_flight:
            self._land_one()

    def _land_one(self) -> None:
        batch = self.in_flight.popleft()
        try:
            finished = iter(() if batch.finished is None else batch.finished.result())
        except BrokenProcessPool:
            # A worker was killed (by an operator, or the kernel out of memory): these
            # records will never be finished, so the load cannot be whole.
            if not self.broken:  # said once, for the first batch it stopped
                first = next(t for t in batch.tasks if isinstance(t, Unfinished)).draft
                source = first.source
                self._count(LoadError.at(source.path, source.line, FINISHER_STOPPED))
                self.broken = True
            return
        self._write(
            batch.existing,
            [next(finished) if isinstance(t, Unfinished) else t for t in batch.tasks],
        )

    def _tasks(
        self, drafts: list[Draft | Prepared], existing: dict[str, Existing]
    ) -> list[Unfinished | Prepared | Draft]:
        """What finishing the batch needs from the store: for a row of a metadata CSV, the
        stored record it changes (with its files: DSpace's metadata-import never touches
        bitstreams); a row withdrawing a record stored as a tombstone, that tombstone, kept
        as stored; a part of no stored record, or one withdrawing a live one, stands alone,
        if it may (`_whole`)."""
        parts = [
            d.local_id
            for d in drafts
            if isinstance(d, Draft)
            and d.partial is not None
            and d.local_id in existing
            and (not d.deleted or existing[d.local_id].deleted)
        ]
        stored = self.tx.packed_fields(parts) if parts else {}
        keeping = [
            d.local_id
            for d in drafts
            if isinstance(d, Draft) and d.files is None and d.local_id in existing
        ]
        stored_files = self.tx.stored_files(keeping) if keeping else {}
        tasks: list[Unfinished | Prepared | Draft] = []
        for draft in drafts:
            if isinstance(draft, Prepared):
                tasks.append(draft)
                continue
            files = stored_files.get(draft.local_id, ()) if draft.files is None else ()
            old = existing.get(draft.local_id)
            if draft.partial is None and draft.files is not None and old is not None:
                if self._unchanged(draft, old):
                    tasks.append(draft)  # decided unchanged again, never rendered
                else:  # rendered with the header of the datestamp it gets
                    served = self._served_sets(draft.set_specs)
                    datestamp = redated(self.moment, old.datestamp)
                    tasks.append(Unfinished(draft, served_sets=served, datestamp=datestamp))
                continue
            if draft.partial is None:
                whole: Draft | None = draft
            elif draft.deleted and old is not None and old.deleted and draft.local_id in stored:
                # Withdrawing a tombstone again: it stays as stored, the fields it may hold
                # (a JSON tombstone's metadata) too; moved only to a collection the row names.
                no_columns = replace(draft, partial=frozenset())
                tasks.append(Unfinished(no_columns, stored[draft.local_id]))
                continue
            elif old is not None and not old.deleted and draft.local_id in stored:
                # Its header is rendered with it, for the datestamp it gets if it changed.
                own = self._own(old.set_specs)
                served = self._served_sets(own if draft.keeps_sets else draft.set_specs)
                datestamp = redated(self.moment, old.datestamp)
                tasks.append(Unfinished(draft, stored[draft.local_id], own, files, served,
                                        datestamp))  # fmt: skip
                continue
            else:
                whole = self._whole(draft)
            if whole is not None:
                served = self._served_sets(whole.set_specs)
                tasks.append(Unfinished(whole, stored_files=files, served_sets=served))
        return tasks

    def _write(
        self, existing: dict[str, Existing], done: Sequence[Draft | Prepared | LoadError]
    ) -> None:
        """Decide and write a batch's finished records, and report its problems."""
        writes = []
        for draft in done:
            if isinstance(draft, LoadError):
                self._count(draft)
                continue
            write = self._decide(draft, existing.get(draft.local_id))
            if write is not None:
                writes.append(write)
                for spec in write.set_specs:
                    self._ensure_set(spec)
        if self.workers is not None:
            self.workers.render = not self.reloading()
        if self.problems:
            return  # nothing will be written
        self.written.extend(hash(w.local_id) for w in writes)
        self.tx.write(writes, replacing=[w.local_id for w in writes if w.local_id in existing])

    def reloading(self) -> bool:
        """Whether the load is, so far, the same records again (a nightly export with a
        few changed): nine in ten records decided unchanged, a batch of them at least.
        Then the workers send the records they read unrendered, and only the changed ones
        go back to them to be rendered: an unchanged reload of a million records rendered
        them all (three quarters of the first load's CPU) to throw the renders away."""
        done = self.summary
        return done.unchanged >= BATCH and done.unchanged >= 9 * (done.added + done.updated)

    def _unchanged(self, draft: Draft, old: Existing) -> bool:
        """Whether a whole record read is the stored one, as `_decide` will find it (the
        same sets and hash). A record this says changed is decided there all the same, so
        this only saves rendering records that did not change."""
        return old.content_hash == self._sets_and_hash(draft, old)[2]

    def _whole(self, part: Draft) -> Draft | None:
        """A row of a metadata CSV for a record not stored (or deleted): the whole record,
        if it has its dc.date.accessioned (`-a`) or the load may date it by the time of
        the load, else a problem saying how to give it a datestamp. A row withdrawing
        its item (`dspace_csv.WITHDRAWING`) is a tombstone whatever is stored: dated by
        the load, it needs no dc.date.accessioned."""
        if part.deleted:
            return replace(part, partial=None, keeps_sets=False)
        if part.accessioned is None and self.settings.missing_accessioned == "reject":
            self.problem(
                LoadError(
                    part.source.path,
                    part.source.line,
                    part.local_id,
                    f"no {ACCESSIONED} (the datestamp comes from it), and no such record "
                    "in the store for this row to change: export with `dspace metadata-export "
                    "-a` (all metadata, dc.date.accessioned included), or set "
                    '[datestamps] missing_accessioned = "ingest_time" to date new records '
                    "by the time of the load",
                )
            )
            return None
        return replace(part, partial=None, keeps_sets=False)
