"""`oaipmh-server load`: record files into the store, all or nothing.

The load's parts: inputs.py finds and reads what it is given; batches.py looks records
up, finishes and writes them; dating.py gives their datestamps; placing.py their sets;
refreshing.py brings stored records up to the configuration; sync.py is --sync.

The whole load is one transaction. Every problem is collected (one line each, with file,
line and record) and if there is any, the transaction is rolled back: the store is exactly
as it was. A killed load never commits, so it too leaves the store as it was.
A load is one state of the repository: the same record twice in it is an error.

`load --sync` takes the load for the whole repository: every stored record it does not
hold is withdrawn, a tombstone dated by the load like a deleted record, in the same
transaction (`_Loader.withdraw`). A guard refuses a load that would withdraw more than
[load] sync_max_deleted percent of the stored records (an empty or cut-short export)
unless the operator says how many are expected. A load of metadata CSV rows alone is no
whole repository (a CSV holds the columns it exports) and is refused with --sync.

What a load changed is reported record by record to `changes` (`load --changes`): each
added, updated, deleted and withdrawn id, as it is decided; the caller keeps them until
the load commits.
"""

from __future__ import annotations

import os
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from .. import datestamps, virtual_sets, xml
from ..errors import LoadError, LoadFailed
from ..formats import MetadataFormat
from ..record_source import Header
from ..settings import Settings
from ..store import Existing, LoadTransaction, RecordWrite, SqlStore
from ..virtual_sets import VirtualSets
from .batches import BATCH as BATCH
from .batches import Batches, _InFlight
from .dating import in_the_future, keeps_date, redated
from .drafts import (
    HASH_SCHEME,
    LOCAL_ID,
    Draft,
    Limits,
    Prepared,
    SetDefinition,
    Source,
    content_hash,
    prepare,
)
from .inputs import find_files, read_items
from .json import Item
from .placing import Placing, stored_placements
from .refreshing import Refreshing
from .summary import CHANGE_KINDS as CHANGE_KINDS
from .summary import Changes, LoadSummary
from .sync import SYNC as SYNC
from .sync import Sync as Sync
from .sync import Syncing
from .workers import Workers, fewer_collections, worker_count

# The same record twice is looked for among the ids' hashes a part at a time (a power of 2).
REPEAT_BUCKETS = 16
MAX_PROBLEMS_SHOWN = 1000


def load_paths(
    paths: Iterable[str | os.PathLike[str]],
    store: SqlStore,
    settings: Settings,
    formats: dict[str, MetadataFormat],
    *,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = datestamps.now,
    workers: int | None = None,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    before_commit: Callable[[], None] | None = None,
    sync: Sync | None = None,
    changes: Changes | None = None,
) -> LoadSummary:
    """Load record files; LoadFailed (and nothing written) if any record is wrong.
    `workers`: processes that read big JSON Lines files (None: as many as pay off).
    `wait`, `on_wait`: what to do while another load runs (see SqlStore.loading).
    `before_commit`: called when everything is written, just before the commit (tests
    hold a load there to race it). `sync`: the files are the whole repository (--sync);
    `changes`: told of each record changed (see the module's docstring)."""
    files, problems = find_files(paths)
    if problems:
        raise LoadFailed(problems, len(problems))
    count = worker_count(files) if workers is None else workers
    pool = Workers(settings, count) if count > 0 else None
    notes: list[str] = []
    try:
        with fewer_collections():
            items = read_items(
                files,
                require_accessioned=settings.missing_accessioned == "reject",
                limits=Limits.of(settings),
                workers=pool,
                warnings=notes,
            )
            summary = load_items(
                items,
                store,
                settings,
                formats,
                progress=progress,
                clock=clock,
                wait=wait,
                on_wait=on_wait,
                before_commit=before_commit,
                workers=pool,
                sync=sync,
                changes=changes,
            )
            summary.warnings[:0] = notes  # the files first, then their records
            return summary
    finally:
        if pool is not None:
            pool.close()


def load_items(
    items: Iterable[Item],
    store: SqlStore,
    settings: Settings,
    formats: dict[str, MetadataFormat],
    *,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = datestamps.now,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    before_commit: Callable[[], None] | None = None,
    workers: Workers | None = None,
    sync: Sync | None = None,
    changes: Changes | None = None,
) -> LoadSummary:
    """Load items read elsewhere (see load_paths). `workers`: the load's worker processes,
    which finish the drafts read in this process (merge and prepare them), and whose
    readers learn the sets' tree from it (Workers.tree)."""
    summary = LoadSummary(synced=sync is not None)
    loading = store.loading(clock, keep_dates=settings.keep_accessioned, wait=wait, on_wait=on_wait)
    with loading as tx:
        loader = _Loader(tx, settings, formats, summary, workers, changes)
        stored_before = tx.count_live() if sync is not None else 0
        for item in items:
            if isinstance(item, LoadError):
                loader.problem(item)
            elif isinstance(item, SetDefinition):
                loader.define_set(item)
            else:
                loader.add(item)
                if progress is not None:
                    progress(1)
        loader.flush()
        loader.land()
        loader.refuse_repeated_records()
        if loader.problems:
            summary.rejected = loader.rejected
            raise LoadFailed(loader.problems, loader.problem_count)
        if sync is not None:
            loader.withdraw(sync, stored_before)
            if loader.problems:
                raise LoadFailed(loader.problems, loader.problem_count)
        loader.replace()
        loader.refresh_virtual_sets()
        loader.refresh_fragments()
        loader.refresh_embargoes()
        loader.refresh_headers()
        tx.optimize()
        if before_commit is not None:
            before_commit()
    return summary


def refresh_sets(
    store: SqlStore,
    settings: Settings,
    formats: dict[str, MetadataFormat],
    *,
    clock: Callable[[], datetime] = datestamps.now,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> LoadSummary:
    """`oaipmh-server refresh-sets`: every stored record's virtual sets evaluated again with
    the configured definitions, as one write: the records that enter or leave one are
    re-dated (the time of the write), the others are left as they are."""
    summary = LoadSummary()
    with store.loading(clock, wait=wait, on_wait=on_wait) as tx:
        loader = _Loader(tx, settings, formats, summary)
        if loader.problems:
            raise LoadFailed(loader.problems, loader.problem_count)
        loader.refresh_virtual_sets(force=True)
        loader.refresh_embargoes()
    return summary


def delete_records(
    local_ids: Sequence[str],
    store: SqlStore,
    settings: Settings,
    formats: dict[str, MetadataFormat],
    *,
    clock: Callable[[], datetime] = datestamps.now,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> LoadSummary:
    """Turn records into tombstones dated now (they keep their sets); LoadFailed, and
    nothing changed, if any id is unknown. Already deleted records stay as they are."""
    problems, drafts = [], []
    for local_id in dict.fromkeys(local_ids):
        # An id no record can have (an argument not UTF-8, held as lone surrogates, which
        # the database cannot be sent) is not looked for.
        header = store.get_header(local_id) if LOCAL_ID.fullmatch(local_id) else None
        if header is None:
            problems.append(LoadError("delete", None, local_id, "no such record"))
        elif not header.deleted:
            source = Source("delete", None)
            drafts.append(Draft(source, local_id, (), True, (), None, 0))
    if problems:
        raise LoadFailed(problems, len(problems))
    return load_items(drafts, store, settings, formats, clock=clock, wait=wait, on_wait=on_wait)


class _Loader(Batches, Placing, Refreshing, Syncing):
    """The state of one load inside its transaction, and how it takes each record."""

    def __init__(
        self,
        tx: LoadTransaction,
        settings: Settings,
        formats: dict[str, MetadataFormat],
        summary: LoadSummary,
        workers: Workers | None = None,
        changes: Changes | None = None,
    ) -> None:
        self.tx = tx
        self.changes = changes
        # Records read whole, and rows of a metadata CSV (parts): a --sync needs the former.
        self.whole_records = 0
        self.parts = 0
        self.withdrawing = False  # the tombstones of a --sync are being written
        self.settings = settings
        self.formats = formats
        # Only the stored formats are rendered here; the others are rendered on request.
        self.stored = {prefix: f for prefix, f in formats.items() if f.stored}
        self.summary = summary
        # The time of the load, and whether (and from when) records keep their own dates.
        self.moment = tx.dating.moment
        self.was_empty = tx.is_empty()
        self.header_version = xml.header_version(settings.repository_identifier)
        self.sets = tx.known_sets()
        # The tree (spec → parent's spec), shared with the worker processes' readers when
        # there are any, so they render headers with the sets a record is served with.
        self.parents = {} if workers is None else workers.tree
        self.parents.clear()
        self.parents.update((spec, info.parent) for spec, info in self.sets.items())
        # The tree as the store held it, and the sets given another parent while records
        # were served in them (stored, or written by this load): see replace.
        self.stored_parents = dict(self.parents)
        self.moved: set[str] = set()
        self.flat = settings.set_style == "dspace"
        # Hierarchical style: where the sets files placed each collection last (see _placed).
        self.placements = {} if self.flat else stored_placements(tx)
        self.limits = Limits.of(settings)
        # A record's sets with the communities above them, by the sets it names.
        self.expanded: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.batch: dict[str, Draft | Prepared] = {}
        # Batches handed to the workers to be finished, in order, with the records they
        # found stored and the ids in them (see `flush`).
        self.workers = workers
        self.in_flight: deque[_InFlight] = deque()
        self.broken = False  # a worker was killed
        self.problems: list[LoadError] = []
        self.problem_count = 0
        self.rejected = 0
        # Every record of the load as a 64-bit hash of its id, with the file (an index in
        # `files`) and line it was read from (0: none), in arrays: a million ids as
        # strings would cost a hundred MB. See refuse_repeated_records.
        self.id_hashes = array("q")
        self.unwritten: dict[int, str] = {}  # see not_written
        self.files: dict[str, int] = {}
        self.file_of = array("I")
        self.line_of = array("i")
        self.written = array("q")  # the records this load writes, as hashes of their ids
        self.virtual = VirtualSets(settings)
        # What the stored memberships of virtual sets were evaluated with, and the specs
        # that are or were virtual: never a record's own sets.
        self.virtual_state = virtual_sets.stored_state(settings)
        self.stored_virtual_state = tx.get_meta(virtual_sets.META_KEY)
        was_virtual = virtual_sets.stored_specs(self.stored_virtual_state)
        self.virtual_specs = frozenset((*self.virtual.specs, *was_virtual))
        for virtual_set in self.virtual.sets:
            if virtual_set.spec in self.sets and virtual_set.spec not in was_virtual:
                self.problem(LoadError("[virtual_sets] served", None, None,
                                       f"{virtual_set.spec} is a set of the records already (a "
                                       "collection, or a set records name): a virtual set "
                                       "needs a spec of its own"))  # fmt: skip
            elif self.sets.get(virtual_set.spec) != virtual_set.info:
                self._put_set(virtual_set.info)

    def problem(self, error: LoadError) -> None:
        """Count and keep a problem, after those of the batches in flight: problems are
        reported in the order the records were read, with workers or without."""
        self.land()
        self._count(error)

    def _count(self, error: LoadError) -> None:
        self.problem_count += 1
        if error.record_id is not None or error.line is not None:
            self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS_SHOWN:
            self.problems.append(error)

    def add(self, item: Draft | Prepared) -> None:
        if isinstance(item, Draft) and item.partial is not None:
            self.parts += 1
        else:
            self.whole_records += 1
        path, line = _where(item)
        self.id_hashes.append(hash(item.local_id))
        self.file_of.append(self.files.setdefault(path, len(self.files)))
        self.line_of.append(line or 0)
        if item.accessioned is not None and in_the_future(item.accessioned, self.moment):
            self.not_written(item.local_id)
            self.problem(
                LoadError(
                    path,
                    line,
                    item.local_id,
                    f"dc.date.accessioned {item.accessioned.isoformat()} is in the future",
                )
            )
            return
        if self.problems and (not isinstance(item, Draft) or item.partial is None):
            self.not_written(item.local_id)
            return  # nothing will be written: keep reading only to report every problem
        if item.local_id in self.batch or any(item.local_id in f.ids for f in self.in_flight):
            # The same id twice: refused at the end, where both are named. The first is
            # written before the second is looked up, so the store can tell them apart.
            self.flush()
            self.land()
        self.batch[item.local_id] = item
        if len(self.batch) >= BATCH:
            self.flush()

    def _sets_and_hash(
        self, item: Draft | Prepared, old: Existing | None
    ) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        """The sets the record is served in, of them its virtual sets, and its content
        hash: what `_decide` compares with the stored record's (and a reload with it before
        a record is rendered, Batches._unchanged)."""
        set_specs = self._served_sets(item.set_specs)
        virtual: tuple[str, ...] = ()
        if item.deleted:
            if not set_specs and old is not None:
                set_specs = self._own(old.set_specs)  # a bare tombstone stays in its sets
            if old is not None:  # and in the virtual sets it was in, for their harvesters
                virtual = tuple(s for s in old.set_specs if s in self.virtual.specs)
        elif isinstance(item, Prepared):
            virtual = item.virtual_sets  # applied by a worker
        elif self.virtual:
            virtual = self.virtual.of(item.fields, item.files or ())
        if virtual:
            set_specs = (*set_specs, *virtual)
        return set_specs, virtual, content_hash(item.deleted, set_specs, item.fields_digest)

    def _decide(self, item: Draft | Prepared, old: Existing | None) -> RecordWrite | None:
        """Count the record and say what to write, with which datestamp. A Draft (read in
        this process) is rendered only here, once it is known to have changed."""
        summary = self.summary
        summary.cleaned += item.cleaned
        if item.cleaned:
            path, line = _where(item)
            summary.warnings.append(
                f"{path}:{line}: record {item.local_id}: "
                f"{item.cleaned} character(s) XML cannot carry replaced by U+FFFD"
            )
        if self.virtual_specs and not self.virtual_specs.isdisjoint(item.set_specs):
            path, line = _where(item)
            spec = sorted(self.virtual_specs.intersection(item.set_specs))[0]
            reason = (
                f"set {spec} is a virtual set ([virtual_sets]): records are in it by its filter"
            )
            self._count(LoadError(path, line, item.local_id, reason))  # while landing: in order
            return None
        set_specs, virtual, new_hash = self._sets_and_hash(item, old)
        digest = item.fields_digest  # taken by _sets_and_hash, once
        if old is not None and (
            old.content_hash == new_hash or _is_legacy_hash(item, old.content_hash, set_specs)
        ):
            summary.unchanged += 1
            return None
        if self.virtual_specs:
            before = () if old is None else self._virtual_of(old.set_specs)
            if before != virtual:
                summary.moved(before, virtual)
        prepared = item if isinstance(item, Prepared) else prepare(item, self.stored, digest=digest)
        datestamp = self.moment if old is None else redated(self.moment, old.datestamp)
        if old is None and not item.deleted and item.accessioned is not None:
            write = self.tx.dating
            if keeps_date(item.accessioned, self.moment, write.since, write.backdating):
                datestamp = item.accessioned
            else:
                summary.clamped += 1
        if item.deleted and self.withdrawing:
            summary.withdrawn += 1
            kind = "withdrawn"
        elif item.deleted:
            summary.deleted += 1
            kind = "deleted"
        elif old is None:
            summary.added += 1
            kind = "added"
        else:
            summary.updated += 1
            kind = "updated"
        if self.changes is not None:
            self.changes(kind, item.local_id)
        header = None
        if datestamp == prepared.header_datestamp and set_specs == prepared.header_sets:
            header = prepared.header  # rendered by a worker, for that datestamp and sets
        if header is None:
            header = self.render_header(Header(item.local_id, datestamp, set_specs, item.deleted))
        return RecordWrite(
            local_id=item.local_id,
            datestamp=datestamp,
            deleted=item.deleted,
            set_specs=set_specs,
            fields=prepared.packed_fields,
            content_hash=new_hash,
            accessioned=item.accessioned,
            fragments=prepared.fragments,
            header=header,
            header_version=self.header_version,
            files=() if item.deleted else prepared.files,
        )

    def refuse_repeated_records(self) -> None:
        """The same record twice in one load is an error naming both places: a load is one
        state of the repository, not a sequence of edits (the first copy's sets would be
        left listed with no record in them)."""
        hashes = self.id_hashes
        repeated: set[int] = set()
        for bucket in range(REPEAT_BUCKETS):  # a set of a sixteenth at a time: flat memory
            part: set[int] = set()
            for value in hashes:
                if value & (REPEAT_BUCKETS - 1) == bucket:
                    if value in part:
                        repeated.add(value)
                    part.add(value)
        if not repeated:
            return
        paths = list(self.files)
        seen: dict[int, int] = {}
        names = {**self.unwritten, **self.tx.ids_with_hashes(repeated)}
        for index, value in enumerate(hashes):
            if value not in repeated:
                continue
            if value not in seen:
                seen[value] = index
                continue
            first, line = seen[value], self.line_of[index]
            again = paths[self.file_of[index]] + (f":{line}" if line else "")
            self.problem(
                LoadError(paths[self.file_of[first]], self.line_of[first] or None,
                          names.get(value), f"the same record again at {again}: "
                          "a load holds each record once")
            )  # fmt: skip


def _where(item: Draft | Prepared) -> tuple[str, int | None]:
    if isinstance(item, Draft):
        return item.source.path, item.source.line
    return item.path, item.line


def _is_legacy_hash(item: Draft | Prepared, stored_hash: str, set_specs: tuple[str, ...]) -> bool:
    """Whether a content hash of the first scheme (stores loaded before 0.2) is this one's."""
    if stored_hash.startswith(HASH_SCHEME):
        return False
    if isinstance(item, Prepared):
        return item.is_legacy_hash(stored_hash, set_specs)
    if item.files:
        return False  # that scheme is older than files
    return stored_hash == replace(item, set_specs=set_specs).legacy_content_hash
