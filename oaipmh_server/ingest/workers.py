"""Big loads are shared with worker processes, so a load uses every core.

Checking a record and rendering its stored formats is most of a load's work, and each
record's is independent of the others': workers do it and send back `Prepared` records
(plain data, quick to pickle), in order. Big JSON Lines files are read by the workers
themselves, in chunks of lines. Records the loading process reads (DSpace metadata CSV
rows, SAF items) are handed to them to be finished (`Unfinished`: a CSV row merged with
the stored record it changes, then prepared) while the loading process reads on. The
loading process keeps everything that needs the store or the order of the records: which
records exist, which changed, datestamps, sets, the one transaction. So a load gives the
same result, and reports the same problems, with workers or without.

A record that did not change is not rendered again: while nearly every record the load
decides is the stored one (a nightly export loaded again), the workers send the records
they read checked and digested but unrendered (`Workers.render`), the loading process
compares each with the stored record's content hash, and hands only the changed ones back
to be rendered (`Batches._tasks`). The store is still asked only by the loading process.

Only a few chunks are in flight at a time, so memory does not grow with the file. The
workers are started fresh (spawn), not forked: they never inherit the loading process's
open database connection. A worker ends itself when the loading process is gone.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import LoadError
from ..formats import MetadataFormat, build_formats
from ..settings import Settings
from ..virtual_sets import VirtualSets
from .csv_merge import Unfinished, finish
from .drafts import Draft, Limits, Prepared, prepare
from .json import READ_BUFFER, Item, jsonl_item, jsonl_lines
from .tree import served_flat

# A .jsonl or .csv file this big is worth starting workers for (about 2,000 seed-shaped
# records), and so are this many SAF item folders.
PARALLEL_FROM_BYTES = 8 * 1024 * 1024
PARALLEL_FROM_ITEMS = 2000
CHUNK_BYTES = 1024 * 1024
MAX_WORKERS = 4
WORKER_STOPPED = (
    "a worker process reading the file from this line stopped (killed, or out of memory)"
)
REPLACED = (
    "the file was replaced or written to while it was loaded (its worker processes read it "
    "by name): nothing was loaded; load it again"
)
FINISHER_STOPPED = (
    "a worker process given the records from this line stopped (killed, or out of memory)"
)

_formats: dict[str, MetadataFormat] = {}  # in a worker: the stored formats
_repository: list[str] = []  # in a worker: the repository identifier
_virtual: list[VirtualSets] = []  # in a worker: the virtual sets' filters
_limits: list[Limits] = []  # in a worker: what a record may cost


# A load makes millions of small objects (a record's values, one tuple each), freed by their
# reference counts as each batch is written, and makes no cycles of them: the garbage
# collector, started every 700 new objects by default and then going through all of the
# older ones from time to time, took a sixth of the time to read a metadata CSV. During a
# load it runs every this many new objects, and never goes through what existed before.
LOAD_GC_THRESHOLD = (50_000, 20, 100)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect garbage less often while a load runs (LOAD_GC_THRESHOLD), as it was after."""
    before = _collect_less()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _collect_less() -> tuple[int, int, int]:
    """LOAD_GC_THRESHOLD from now on; the threshold it replaced."""
    before = gc.get_threshold()
    gc.freeze()  # what exists now (modules, settings, the store) is not gone through
    gc.set_threshold(*LOAD_GC_THRESHOLD)
    return before


def worker_count(paths: list[Path]) -> int:
    """How many workers a load of these files should start: none for small loads or one
    core, else one per core (the loading process mostly waits on them and on SQLite, or
    reads what it hands them)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    big = (
        any(p.suffix in (".jsonl", ".csv") and _size(p) >= PARALLEL_FROM_BYTES for p in paths)
        or sum(p.is_dir() for p in paths) >= PARALLEL_FROM_ITEMS
    )
    return min(cores or 1, MAX_WORKERS) if big and (cores or 1) > 1 else 0


class Workers:
    def __init__(self, settings: Settings, count: int) -> None:
        self.count = count
        # The sets' tree, filled by the load as it learns it (load_items' `tree`).
        self.tree: dict[str, str | None] = {}
        self.flat = settings.set_style == "dspace"
        # Whether workers render the records they read (False: they send them back checked
        # and digested, unrendered): the load turns it off while nearly every record it
        # decides is unchanged, and those are never rendered (`Batches.reloading`).
        self.render = True
        self.executor = ProcessPoolExecutor(
            count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings, os.getpid()),
        )

    def read_jsonl(
        self, path: Path, *, require_accessioned: bool, limits: Limits
    ) -> Iterator[Item]:
        """The file's records, prepared by the workers, in the file's order. Workers read
        their chunks from the file themselves: only (offset, size, first line) is sent."""
        name = str(path)
        in_flight: deque[tuple[int, Future[list[Item]]]] = deque()
        try:
            handle = path.open("rb")
        except OSError as e:
            yield LoadError.unreadable(name, e)
            return
        line = 1  # the first line of the records that come next
        seen = _identity(os.fstat(handle.fileno()))
        try:
            with handle:
                for chunk in _chunks(handle):
                    line = in_flight[0][0] if in_flight else chunk[2]
                    task = self.executor.submit(
                        _prepare, name, *chunk, require_accessioned, limits,
                        self._served_tree(), self.render,
                    )  # fmt: skip
                    in_flight.append((chunk[2], task))
                    if len(in_flight) > 2 * self.count:
                        line, task = in_flight.popleft()
                        yield from task.result()
            while in_flight:
                line, task = in_flight.popleft()
                yield from task.result()
            # The workers opened the file by its name: what they read is the file read
            # here only if its name still leads to it, unchanged.
            try:
                now = _identity(os.stat(path))
            except OSError:
                now = None
            if now != seen:
                yield LoadError(name, None, None, REPLACED)
        except BrokenProcessPool:
            # A worker was killed (by an operator, or the kernel out of memory): its chunk's
            # records will never come, so the load cannot be whole.
            yield LoadError.at(name, line, WORKER_STOPPED)

    def finish(self, tasks: list[Unfinished]) -> Future[list[Prepared | LoadError]]:
        """The records of `tasks` finished and prepared by a worker, in order (or, if they
        cannot be, BrokenProcessPool from the future's result)."""
        try:
            return self.executor.submit(_finish, tasks)
        except BrokenProcessPool as e:  # a worker was killed earlier: the same for these
            broken: Future[list[Prepared | LoadError]] = Future()
            broken.set_exception(e)
            return broken

    def _served_tree(self) -> dict[str, str | None] | None:
        """The sets' tree as the load knows it now (DSpace's flat style), for the workers
        to render headers with the communities a record is served in; None: as named."""
        return dict(self.tree) if self.flat else None

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _chunks(handle: BinaryIO) -> Iterator[tuple[int, int, int]]:
    """(offset, size, number of its first line) of runs of whole lines, about CHUNK_BYTES
    each (a line longer than that is in a chunk of its own size). Only one block is held
    at a time, however long a line: the worker reads its chunk line by line, bounded."""
    offset, position, line = 0, 0, 1
    while block := handle.read(CHUNK_BYTES):
        end = block.rfind(b"\n") + 1
        if end:
            yield offset, position + end - offset, line
            line += block.count(b"\n", 0, end)
            offset = position + end
        position += len(block)
    if position > offset:
        yield offset, position - offset, line


def _start(settings: Settings, parent: int) -> None:
    _collect_less()  # for good: a worker lives for one load
    _formats.update((p, f) for p, f in build_formats(settings).items() if f.stored)
    _repository.append(settings.repository_identifier)
    _virtual.append(VirtualSets(settings))
    _limits.append(Limits.of(settings))
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker when the loading process is gone (killed: it cannot say so), so a
    killed load leaves no process behind."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _prepare(
    name: str,
    offset: int,
    size: int,
    first: int,
    require_accessioned: bool,
    limits: Limits,
    tree: dict[str, str | None] | None,
    render: bool = True,
) -> list[Item]:
    items: list[Item] = []
    with open(name, "rb", buffering=READ_BUFFER) as handle:
        handle.seek(offset)
        for number, raw, length in jsonl_lines(handle, first, size, limits.max_record_bytes):
            item = jsonl_item(name, number, raw, require_accessioned, limits, length)
            if isinstance(item, Draft) and not render and not item.deleted:
                item.fields_digest  # noqa: B018  (taken here, sent with it)
                items.append(item)  # rendered only if it changed (`Batches._tasks`)
            elif isinstance(item, Draft):
                served = None if tree is None else served_flat(item.set_specs, tree)
                items.append(prepare(item, _formats, _repository[0], served, _virtual[0]))
            elif item is not None:
                items.append(item)
    return items


def _finish(tasks: list[Unfinished]) -> list[Prepared | LoadError]:
    done: list[Prepared | LoadError] = []
    for task in tasks:
        draft = finish(task, _limits[0])
        if isinstance(draft, LoadError):
            done.append(draft)
            continue
        done.append(prepare(draft, _formats, _repository[0], task.served_sets, _virtual[0],
                            datestamp=task.datestamp))  # fmt: skip
    return done


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    """A file as the workers must find it: the same file (device, inode), not written to
    since (size, modification time)."""
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
