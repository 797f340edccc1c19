"""`oaipmh-server load`: record files into the store, all or nothing.

The whole load is one transaction. Every problem is collected (one line each, with file,
line and record) and if there is any, the transaction is rolled back: the store is exactly
as it was. A killed load never commits, so it too leaves the store as it was.

Datestamps (the rules harvesters depend on; store/writes.py says how they are kept):
- "The time of the load" is when it starts writing: lists stop one second before it until
  the load commits, so what it changes is new to every incremental harvest
  (from=<responseDate of the last one>), even one that ran while it loaded. It is never
  earlier than a cut-off already handed out, whatever the clock says.
- Into an empty store, a record is dated by its dc.date.accessioned, unless a harvester has
  already been given a cut-off at or after that date (it would never see the record).
- Into a store that already holds records, anything up to now may have been harvested, so
  a new record dated in the past would be invisible to an incremental harvest. It is
  dated at the time of the load instead, and counted as "clamped" (unless
  `keep_accessioned` is set).
- A changed or deleted record is dated at the time of the load, and always at least one
  second after its previous datestamp; an unchanged one keeps its datestamp.
- A load is one state of the repository: the same record twice in it is an error.

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
import tempfile
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from .. import datestamps, virtual_sets, xml
from ..config import Settings
from ..errors import LoadError, LoadFailed, escaped
from ..formats import MetadataFormat
from ..records import Header, SetInfo
from ..store import (
    Existing,
    LoadTransaction,
    RecordWrite,
    Restamp,
    SqlStore,
    ancestors,
    unpack_fields,
)
from ..virtual_sets import VirtualSets
from .archive import DEBRIS, is_apple_double, is_zip, shown, unpack
from .drafts import (
    ACCESSIONED,
    HASH_SCHEME,
    Draft,
    Limits,
    Prepared,
    SetDefinition,
    Source,
    Unfinished,
    content_hash,
    fields_digest,
    finish,
    prepare,
)
from .dspace_csv import read_csv_file
from .json import Item, read_json_file, read_jsonl_file
from .saf import (
    is_item_folder,
    lacks_dublin_core,
    leads_outside,
    read_saf_item,
    without_dublin_core,
)
from .structure import is_structure_file, read_structure_file
from .tree import communities, served_flat
from .workers import FINISHER_STOPPED, Workers, fewer_collections, worker_count

SECOND = timedelta(seconds=1)
# A dc.date.accessioned this far ahead of our clock is an error, not clock skew.
MAX_SKEW = timedelta(days=1)
BATCH = 1000
# The same record twice is looked for among the ids' hashes a part at a time (a power of 2).
REPEAT_BUCKETS = 16
MAX_PROBLEMS_SHOWN = 1000
SUFFIXES = (".json", ".jsonl", ".csv")
FORMATS = ".json, .jsonl, DSpace metadata .csv or DSpace structure export .xml"
ZIP_IN_ZIP = "a .zip inside an archive is not unpacked: unpack the archive and load the folder"
NOTHING_HERE = f"no {FORMATS} files and no DSpace item folders in this folder"


class _InFlight(NamedTuple):
    """A batch the workers are finishing (`_Loader.flush`)."""

    existing: dict[str, Existing]  # its records as the store held them
    tasks: list[Unfinished | Prepared]  # in the order read; the Unfinished are in `finished`
    finished: Future[list[Prepared | LoadError]] | None
    ids: frozenset[str]


# Told of each record a load changes: (what happened, its id). What happened is one of
# CHANGE_KINDS.
Changes = Callable[[str, str], None]
CHANGE_KINDS = ("added", "updated", "deleted", "withdrawn")
SYNC = "--sync"  # where a --sync problem is, and the source of its tombstones


@dataclass(frozen=True)
class Sync:
    """`load --sync`: the load is the whole repository. `allow_deletes`: how many
    withdrawals the operator expects (--sync-allow-deletes), allowed whatever their share."""

    allow_deletes: int | None = None


@dataclass
class LoadSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    # Stored records a --sync load did not hold, now tombstones; `synced`: it was one.
    withdrawn: int = 0
    synced: bool = False
    clamped: int = 0
    rejected: int = 0
    sets: int = 0
    cleaned: int = 0
    warnings: list[str] = field(default_factory=list)
    # Records that entered and left each virtual set: spec → [entered, left] (a new
    # record in one has entered it); whether every stored record was evaluated again
    # (the definitions changed), and how many that re-dated.
    virtual_moves: dict[str, list[int]] = field(default_factory=dict)
    reevaluated: bool = False
    redated: int = 0

    def moved(self, before: Iterable[str], after: Iterable[str]) -> None:
        before, after = tuple(before), tuple(after)
        for spec in after:
            if spec not in before:
                self.virtual_moves.setdefault(spec, [0, 0])[0] += 1
        for spec in before:
            if spec not in after:
                self.virtual_moves.setdefault(spec, [0, 0])[1] += 1

    @property
    def records(self) -> int:
        return self.added + self.updated + self.unchanged + self.deleted

    def line(self) -> str:
        withdrawn = f", withdrawn {self.withdrawn}" if self.synced else ""
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deleted {self.deleted}{withdrawn}, clamped {self.clamped}, "
            f"rejected {self.rejected}"
        )


def find_files(
    paths: Iterable[str | os.PathLike[str]], *, in_archive: bool = False
) -> tuple[list[Path], list[LoadError]]:
    """What to read: record files (.json, .jsonl, DSpace metadata .csv) and DSpace Simple
    Archive item folders (those holding a dublin_core.xml), given directly or found in the
    folders given, recursively, in name order, except that a folder's `sets.json` comes
    before everything else in it: records can then refer to the sets it defines (a DSpace
    export names collections, which the sets file places in the hierarchy).

    Symbolic links inside a folder are not followed: one leading outside the folder given
    is an error (an export must not publish what lies outside it), one leading inside it is
    skipped, since what it leads to is read where it is. A folder holding DSpace's item
    files but no dublin_core.xml is an error naming it; macOS debris (DEBRIS, AppleDouble
    `._NAME` files) is ignored. A `.zip` in a folder is an export, read as if it were given
    (DSpace's `export -z` leaves one in the folder it is told), except in an item folder
    (a bitstream) and `in_archive`, the folder an archive was unpacked into: an archive is
    unpacked once, so a zip in it is an error, not unpacked in turn."""
    found: list[Path] = []
    problems: list[LoadError] = []
    for given in paths:
        path = Path(given)
        if path.is_dir() and (item_file := lacks_dublin_core(path)) is not None:
            problems.append(without_dublin_core(path, item_file))
        elif path.is_dir() and not is_item_folder(path):
            inside, outside = _walk(path, in_archive)
            problems += outside
            if not inside and not outside:
                problems.append(LoadError(str(path), None, None, NOTHING_HERE))
            found += sorted(inside, key=lambda p: (p.parent, not _defines_sets(p), p.name))
        elif (
            path.is_dir()
            or (path.is_file() and (path.suffix in SUFFIXES or is_zip(path)))
            or _defines_sets(path)
        ):
            found.append(path)
        elif path.is_file():
            problems.append(LoadError(str(path), None, None, f"not a {FORMATS} file"))
        else:
            problems.append(LoadError(str(path), None, None, "no such file or folder"))
    return found, problems


def _walk(folder: Path, in_archive: bool = False) -> tuple[list[Path], list[LoadError]]:
    """Record files and item folders under `folder`, and a problem for each symbolic link
    leading outside it and each item folder without dublin_core.xml. Item folders are not
    searched: what is inside them (bitstreams too, in sub-folders when their names hold
    `/`) is the item's."""
    root = folder.resolve()
    found: list[Path] = []
    problems: list[LoadError] = []

    def unreadable(error: OSError) -> None:  # else os.walk skips the folder without a word
        problems.append(LoadError(error.filename, None, None, f"cannot read: {error.strerror}"))

    for parent, folders, files in os.walk(folder, onerror=unreadable):
        here = Path(parent)
        not_searched = set()
        for entry in sorted(folders + files):
            path = here / entry
            if entry in DEBRIS:
                not_searched.add(entry)
                continue
            if path.is_symlink():
                if (
                    path.is_dir() or path.suffix in (*SUFFIXES, ".xml") or is_zip(path)
                ) and leads_outside(path, root):
                    reason = f"a symbolic link leading outside {folder}: not read"
                    problems.append(LoadError(str(path), None, None, reason))
                continue
            if path.is_file() and is_apple_double(path):
                continue
            if path.is_dir() and is_item_folder(path):
                found.append(path)
                not_searched.add(entry)
            elif path.is_dir() and (item_file := lacks_dublin_core(path)) is not None:
                problems.append(without_dublin_core(path, item_file))
                not_searched.add(entry)
            elif path.is_file() and is_zip(path) and not is_item_folder(here):
                if in_archive:
                    problems.append(LoadError(str(path), None, None, ZIP_IN_ZIP))
                else:
                    found.append(path)
            elif (
                path.is_file()
                and not is_item_folder(here)
                and (path.suffix in SUFFIXES or is_structure_file(path))
            ):
                found.append(path)
        # Not into item folders (their files are the item's) nor debris; os.walk follows
        # no links.
        folders[:] = [f for f in folders if f not in not_searched]
    return found, problems


def read_items(
    sources: Sequence[Path],
    *,
    require_accessioned: bool,
    limits: Limits,
    workers: Workers | None = None,
    warnings: list[str] | None = None,
) -> Iterator[Item]:
    """Every file's records, sets and problems, in order. A file with none of them (empty,
    `[]`, a CSV header alone) adds a warning to `warnings`: it was meant to load something."""
    readers: dict[str, Callable[..., Iterator[Item]]] = {
        ".json": read_json_file,
        ".jsonl": read_jsonl_file if workers is None else workers.read_jsonl,
        ".csv": read_csv_file,
    }
    for path in sources:
        if is_zip(path) and path.is_file():
            yield from read_archive(
                path,
                require_accessioned=require_accessioned,
                limits=limits,
                workers=workers,
                warnings=warnings,
            )
            continue
        reader = read_saf_item if path.is_dir() else readers.get(path.suffix, read_structure_file)
        empty = True
        for item in reader(path, require_accessioned=require_accessioned, limits=limits):
            empty = False
            yield item
        if empty and warnings is not None:
            warnings.append(
                f"{escaped(str(path))}: no records in this file: nothing loaded from it"
            )


def read_archive(
    archive: Path,
    *,
    require_accessioned: bool,
    limits: Limits,
    workers: Workers | None = None,
    warnings: list[str] | None = None,
) -> Iterator[Item]:
    """A .zip of an export, read as the folder it holds: unpacked (archive.py) into a
    private temporary folder, removed when the reading ends (or stops), its places named
    `ARCHIVE.zip!item_000`."""
    with tempfile.TemporaryDirectory(prefix="oaipmh-load-") as temporary:
        folder = Path(temporary)
        root = str(folder)
        problem = unpack(archive, folder, limits)
        if problem is not None:
            yield problem
            return
        found, problems = find_files([folder], in_archive=True)
        for problem in problems:
            reason = problem.reason.replace(
                NOTHING_HERE, NOTHING_HERE.replace("this folder", "this archive")
            )
            yield LoadError(shown(problem.path, root, archive), problem.line, problem.record_id,
                            reason.replace(root, str(archive)))  # fmt: skip
        if problems:
            return
        notes: list[str] = []
        items = read_items(
            found,
            require_accessioned=require_accessioned,
            limits=limits,
            workers=workers,
            warnings=notes,
        )
        for item in items:
            if isinstance(item, LoadError):
                item = LoadError(shown(item.path, root, archive), item.line, item.record_id,
                                 item.reason)  # fmt: skip
            elif isinstance(item, Prepared):
                item = item._replace(path=shown(item.path, root, archive))
            else:
                source = item.source
                item = replace(item, source=replace(source, path=shown(source.path, root, archive)))
            yield item
        if warnings is not None:
            shown_root = escaped(str(archive))
            warnings += [
                note.replace(escaped(root) + "/", shown_root + "!").replace(
                    escaped(root), shown_root
                )
                for note in notes
            ]


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
        header = store.get_header(local_id)
        if header is None:
            problems.append(LoadError("delete", None, local_id, "no such record"))
        elif not header.deleted:
            source = Source("delete", None)
            drafts.append(Draft(source, local_id, (), True, (), None, 0))
    if problems:
        raise LoadFailed(problems, len(problems))
    return load_items(drafts, store, settings, formats, clock=clock, wait=wait, on_wait=on_wait)


class _Loader:
    """The state of one load inside its transaction."""

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
        if item.accessioned is not None and item.accessioned > self.moment + MAX_SKEW:
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
            return  # nothing will be written: keep reading only to report every problem
        if item.local_id in self.batch or any(item.local_id in f.ids for f in self.in_flight):
            # The same id twice: refused at the end, where both are named. The first is
            # written before the second is looked up, so the store can tell them apart.
            self.flush()
            self.land()
        self.batch[item.local_id] = item
        if len(self.batch) >= BATCH:
            self.flush()

    def define_set(self, definition: SetDefinition) -> None:
        """A set of a sets file or structure export. One with a parent joins the tree: in
        the flat style by its parent's spec, in the hierarchical one under its path."""
        info = definition.info
        if info.parent is not None:
            parent = info.parent if self.flat else self._placed(info.parent)
            reason = None
            if parent not in self.sets:
                reason = f"parent {info.parent} is not defined before it"
            elif self.flat and info.spec in (*self._communities((parent,)), parent):
                reason = f"parent {info.parent} is inside it: sets form a tree"
            if info.spec in self.virtual_specs:
                reason = "is a virtual set ([virtual_sets]): records are in it by its filter"
            if reason is not None:
                source = definition.source
                self.problem(LoadError(source.path, source.line, f"set {info.spec}", reason))
                return
            spec = info.spec if self.flat else f"{parent}:{info.spec}"
            info = replace(info, spec=spec, parent=parent)
        if self.problems:
            return
        self.expanded.clear()
        self._put_set(info)

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
                self._count(LoadError(source.path, source.line, None, FINISHER_STOPPED))
                self.broken = True
            return
        self._write(
            batch.existing,
            [next(finished) if isinstance(t, Unfinished) else t for t in batch.tasks],
        )

    def _tasks(
        self, drafts: list[Draft | Prepared], existing: dict[str, Existing]
    ) -> list[Unfinished | Prepared]:
        """What finishing the batch needs from the store: for a row of a metadata CSV, the
        stored record it changes (with its files: DSpace's metadata-import never touches
        bitstreams); a part of no stored record stands alone, if it may (`_whole`)."""
        parts = [
            d.local_id
            for d in drafts
            if isinstance(d, Draft) and d.partial is not None and d.local_id in existing
        ]
        stored = self.tx.packed_fields(parts) if parts else {}
        keeping = [
            d.local_id
            for d in drafts
            if isinstance(d, Draft) and d.files is None and d.local_id in existing
        ]
        stored_files = self.tx.stored_files(keeping) if keeping else {}
        tasks: list[Unfinished | Prepared] = []
        for draft in drafts:
            if isinstance(draft, Prepared):
                tasks.append(draft)
                continue
            files = stored_files.get(draft.local_id, ()) if draft.files is None else ()
            old = existing.get(draft.local_id)
            if draft.partial is None:
                whole: Draft | None = draft
            elif old is not None and not old.deleted and draft.local_id in stored:
                # Its header is rendered with it, for the datestamp it gets if it changed.
                own = self._own(old.set_specs)
                served = self._served_sets(own if draft.keeps_sets else draft.set_specs)
                datestamp = max(self.moment, old.datestamp + SECOND)
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
        if self.problems:
            return  # nothing will be written
        self.written.extend(hash(w.local_id) for w in writes)
        self.tx.write(writes, replacing=[w.local_id for w in writes if w.local_id in existing])

    def _whole(self, part: Draft) -> Draft | None:
        """A row of a metadata CSV for a record not stored (or deleted): the whole record,
        if it has its dc.date.accessioned (`-a`) or the load may date it by the time of
        the load, else a problem saying how to give it a datestamp."""
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
        digest = item.fields_digest  # a Draft's is taken here, once
        new_hash = content_hash(item.deleted, set_specs, digest)
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
        datestamp = self.moment if old is None else max(self.moment, old.datestamp + SECOND)
        if old is None and not item.deleted and item.accessioned is not None:
            if self._keeps_date(item.accessioned):
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

    def replace(self) -> None:
        """Serve stored records where the tree of sets now puts them. A structure export
        (or sets file) loaded after the items of its collections gives their collections
        communities, or moves a collection to another community: the records below a set
        whose parent changed are then served in their new communities (and no longer in
        the old ones), with a header rendered afresh and, as it changed, a datestamp of
        this load, so an incremental harvester sees them again. Records written by this
        load keep the datestamp it gave them. (DSpace's flat style only: a hierarchical
        spec is the path it was placed at, kept.)"""
        if not self.flat or not self.moved:
            return
        candidates = self.tx.members(self.moved)
        written: set[int] | None = None
        for start in range(0, len(candidates), BATCH):
            chunk = candidates[start : start + BATCH]
            existing = self.tx.existing(chunk)
            changes = []
            for local_id in chunk:
                old = existing[local_id]
                own = self._own_sets(old.set_specs)
                served = served_flat(own, self.parents)
                if served == old.set_specs:
                    continue
                changes.append((local_id, old, served))
            if not changes:
                continue
            if written is None:
                written = set(self.written)
            ids = [local_id for local_id, _, _ in changes]
            stored = self.tx.stored_fields(ids)
            files = self.tx.stored_files(ids)  # part of the content hash, as fields are
            moves = []
            for local_id, old, served in changes:
                if hash(local_id) in written:
                    datestamp = old.datestamp
                else:
                    datestamp = max(self.moment, old.datestamp + SECOND)
                    self.summary.updated += 1
                    if self.changes is not None:
                        self.changes("updated", local_id)
                header = Header(local_id, datestamp, served, old.deleted)
                moves.append(
                    Restamp(
                        local_id=local_id,
                        datestamp=datestamp,
                        deleted=old.deleted,
                        set_specs=served,
                        content_hash=content_hash(
                            old.deleted,
                            served,
                            fields_digest(stored.get(local_id, ()), files.get(local_id, ())),
                        ),
                        header=self.render_header(header),
                        header_version=self.header_version,
                    )
                )
            self.tx.restamp(moves)

    def withdraw(self, sync: Sync, stored_before: int) -> None:
        """`load --sync`: every stored record this load did not hold becomes a tombstone
        dated by the load (it keeps its sets, as a deleted record does), unless that would
        be more than [load] sync_max_deleted percent of the `stored_before` records and not
        as many as the operator allowed: then a problem naming the number, and nothing is
        written. The load's ids are kept as hashes (`add`): sorted, each stored id is
        looked up in them."""
        if self.parts and not self.whole_records:
            reason = (
                "only metadata CSV rows: a CSV holds the items and columns it exports, not "
                "the whole repository, so it cannot show which items are gone; give the SAF "
                "or JSON export (a CSV's rows beside it count as records the load holds)"
            )
            self.problem(LoadError(SYNC, None, None, reason))
            return
        loaded = array("q", sorted(self.id_hashes))
        gone = [
            local_id
            for batch in self.tx.live_ids()
            for local_id in batch
            if not _holds(loaded, hash(local_id))
        ]
        share = self.settings.sync_max_deleted
        allowed = sync.allow_deletes
        if len(gone) * 100 > share * stored_before and (allowed is None or len(gone) > allowed):
            percent = 100 * len(gone) / stored_before
            expected = "" if allowed is None else f" and than the {allowed:,} allowed"
            reason = (
                f"would withdraw {len(gone):,} of the {stored_before:,} records stored "
                f"({percent:.1f} %), more than [load] sync_max_deleted ({share:g} %){expected}: "
                "an empty or cut-short export? If that many are gone, give "
                f"--sync-allow-deletes {len(gone)}"
            )
            self.problem(LoadError(SYNC, None, None, reason))
            return
        self.withdrawing = True
        source = Source(SYNC, None)
        for start in range(0, len(gone), BATCH):
            chunk = gone[start : start + BATCH]
            tombstones = [Draft(source, local_id, (), True, (), None, 0) for local_id in chunk]
            self._write(self.tx.existing(chunk), tombstones)
        self.withdrawing = False

    def _own_sets(self, served: tuple[str, ...]) -> tuple[str, ...]:
        """A stored record's own sets (its collections), from the specs it is served with:
        those that are not communities above the others, in the tree as the store held it
        (or as this load left it, for a record this load wrote before the tree changed)."""
        above = {
            community
            for spec in served
            for tree in (self.stored_parents, self.parents)
            for community in communities((spec,), tree)
        }
        return tuple(spec for spec in served if spec not in above) or served

    def _keeps_date(self, accessioned: datetime) -> bool:
        """Whether a new record may be dated by its dc.date.accessioned: in a load that may
        keep dates (store/writes.py), when no list can have been cut off at or after it."""
        write = self.tx.dating
        return write.backdating and write.since <= accessioned <= self.moment

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
        names = self.tx.ids_with_hashes(repeated)
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

    def render_header(self, header: Header) -> bytes:
        """The record's <header>, stored with it so pages are served without rendering it."""
        return xml.stored_header(self.settings.repository_identifier, header)

    def refresh_headers(self) -> None:
        """Render again the stored headers of an earlier repository identifier (or of a
        store from before headers were stored)."""
        if self.tx.get_meta("headers") != self.header_version:
            if not self.was_empty:  # else every header was just written, of this version
                self.tx.refresh_headers(self.render_header, self.header_version)
            self.tx.set_meta("headers", self.header_version)

    def _virtual_of(self, specs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(s for s in specs if s in self.virtual_specs)

    def _own(self, specs: tuple[str, ...]) -> tuple[str, ...]:
        """A stored record's specs without its virtual sets."""
        if not self.virtual_specs:
            return specs
        return tuple(s for s in specs if s not in self.virtual_specs)

    def refresh_virtual_sets(self, force: bool = False) -> None:
        """Evaluate every stored record's virtual sets again when their definitions changed
        since they were evaluated (or, `force`, anyway): a record that enters or leaves one
        is re-dated, like any changed record, so incremental harvests see it. Records of
        this load were evaluated as they were written, so an empty store needs nothing."""
        state, stored = self.virtual_state, self.stored_virtual_state
        if not force and (state == stored or (stored is None and not self.virtual)):
            return
        if not self.was_empty or force:
            self._reevaluate()
        for spec in virtual_sets.stored_specs(stored):
            if spec not in self.virtual.specs and spec in self.sets:
                self.tx.remove_set(spec)
                del self.sets[spec]
        self.tx.set_meta(virtual_sets.META_KEY, state)

    def _reevaluate(self) -> None:
        served = self.virtual.specs
        redated = 0
        for batch in self.tx.records_in_batches(BATCH):
            changes = []
            stored_files = self.tx.stored_files([row.local_id for row in batch if not row.deleted])
            for row in batch:
                fields = unpack_fields(row.fields)
                files = stored_files.get(row.local_id, ())
                if row.deleted:  # a tombstone stays in the virtual sets still served
                    virtual = tuple(s for s in row.set_specs if s in served)
                else:
                    virtual = self.virtual.of(fields, files)
                before = self._virtual_of(row.set_specs)
                if virtual == before:
                    continue
                self.summary.moved(before, virtual)
                specs = (*self._own(row.set_specs), *virtual)
                datestamp = max(self.moment, row.datestamp + SECOND)
                header = self.render_header(Header(row.local_id, datestamp, specs, row.deleted))
                changes.append(
                    Restamp(row.local_id, datestamp, row.deleted, specs,
                            content_hash(row.deleted, specs, fields_digest(fields, files)),
                            header, self.header_version)
                )  # fmt: skip
            self.tx.restamp(changes)
            redated += len(changes)
        self.summary.reevaluated = True
        self.summary.redated = redated

    def _ensure_set(self, spec: str) -> None:
        """A set a record names but no sets file defines is named after its spec; the
        ancestors of a hierarchical spec exist too, so ListSets shows the whole tree."""
        if spec in self.sets:
            return  # and so are its ancestors (_put_set)
        for ancestor in ancestors(spec):
            if ancestor not in self.sets:
                self._put_set(SetInfo(ancestor, ancestor))

    def _served_sets(self, specs: tuple[str, ...]) -> tuple[str, ...]:
        """The set specs a record is served with. Flat (DSpace's): the communities above
        its sets, nearest first, then its own sets, as DSpace lists them; each is one
        membership, so any of them selects the record by one index range. Hierarchical:
        its sets placed in the tree."""
        if not specs:
            return ()
        served = self.expanded.get(specs)
        if served is None:
            if self.flat:
                served = served_flat(specs, self.parents)
            else:
                served = tuple(dict.fromkeys(self._placed(spec) for spec in specs))
            if len(self.expanded) < 10_000:
                self.expanded[specs] = served
        return served

    def _communities(self, specs: tuple[str, ...]) -> tuple[str, ...]:
        """The sets above `specs` in the tree, breadth first (DSpace's order), without them."""
        return communities(specs, self.parents)

    def _placed(self, spec: str) -> str:
        """A flat spec such as DSpace's `col_10722_5`, when a defined set ends with it
        (`com_10722_1:col_10722_5`) and no set is named just that, means the defined set:
        exports name collections, the sets file places them in the hierarchy."""
        if ":" in spec or spec in self.sets:
            return spec
        placed = [known for known in self.sets if known.endswith(":" + spec)]
        return placed[0] if len(placed) == 1 else spec

    def _put_set(self, info: SetInfo) -> None:
        for ancestor in ancestors(info.spec)[:-1]:
            if ancestor not in self.sets:
                self._put_set(SetInfo(ancestor, ancestor))
        if self.sets.get(info.spec) != info:
            if self.parents.get(info.spec) != info.parent and (self.written or not self.was_empty):
                self.moved.add(info.spec)
            self.tx.put_set(info, exists=info.spec in self.sets)
            self.sets[info.spec] = info
            self.parents[info.spec] = info.parent
            self.summary.sets += 1

    def refresh_fragments(self) -> None:
        """Re-render what an earlier crosswalk rendered, so the stored fragments of every
        format match the configuration this load ran with. A format rendered on request
        forgets its version, so storing it again later renders it for every record."""
        for prefix in self.formats.keys() - self.stored.keys():
            self.tx.forget_meta(f"fragments:{prefix}")
        for prefix, metadata_format in self.stored.items():
            key = f"fragments:{prefix}"
            if self.tx.get_meta(key) == metadata_format.version:
                continue
            if not self.was_empty:  # else every record was just rendered, by this version
                for batch in self.tx.stale_records(prefix, metadata_format.version, BATCH):
                    files = {}
                    if metadata_format.carries_files:
                        files = self.tx.stored_files([lid for lid, _ in batch])
                    bodies = [
                        (lid, metadata_format.render_record(lid, fields, files.get(lid, ())))
                        for lid, fields in batch
                    ]
                    self.tx.put_fragments(prefix, metadata_format.version, bodies)
            self.tx.set_meta(key, metadata_format.version)


def _defines_sets(path: Path) -> bool:
    """A sets file or a DSpace structure export: read before the records beside it."""
    return path.name == "sets.json" or is_structure_file(path)


def _holds(hashes: array[int], value: int) -> bool:
    """Whether the sorted `hashes` hold `value`."""
    at = bisect_left(hashes, value)
    return at < len(hashes) and hashes[at] == value


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
