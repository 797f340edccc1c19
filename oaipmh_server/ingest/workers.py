"""Big JSON Lines files are read by worker processes, so a load uses every core.

Checking a record and rendering its stored formats is most of a load's work, and each
record's is independent of the others': workers do it for chunks of lines and send back
`Prepared` records (plain data, quick to pickle), in order. The loading process keeps
everything that needs the store or the order of the records: which records exist, which
changed, datestamps, sets, the one transaction. So a load gives the same result, and
reports the same problems, with workers or without.

Only a few chunks are in flight at a time, so memory does not grow with the file. The
workers are started fresh (spawn), not forked: they never inherit the loading process's
open database connection.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from ..config import Settings
from ..errors import LoadError
from ..formats import MetadataFormat, build_formats
from .drafts import Draft, prepare
from .json import Item, jsonl_item

# A .jsonl file this big is worth starting workers for (about 2,000 seed-shaped records).
PARALLEL_FROM_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
MAX_WORKERS = 4

_formats: dict[str, MetadataFormat] = {}  # in a worker: the stored formats


def worker_count(paths: list[Path]) -> int:
    """How many workers a load of these files should start: none for small loads or one
    core, else one per core (the loading process mostly waits on them and on SQLite)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    big = any(p.suffix == ".jsonl" and _size(p) >= PARALLEL_FROM_BYTES for p in paths)
    return min(cores or 1, MAX_WORKERS) if big and (cores or 1) > 1 else 0


class Workers:
    def __init__(self, settings: Settings, count: int) -> None:
        self.count = count
        self.executor = ProcessPoolExecutor(
            count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings,),
        )

    def read_jsonl(self, path: Path, *, require_accessioned: bool) -> Iterator[Item]:
        """The file's records, prepared by the workers, in the file's order."""
        name = str(path)
        in_flight: deque[Future[list[Item]]] = deque()
        try:
            handle = path.open("rb")
        except OSError as e:
            yield LoadError(name, None, None, f"cannot read the file: {e.strerror}")
            return
        with handle:
            for first, lines in _chunks(handle):
                task = self.executor.submit(_prepare, name, first, lines, require_accessioned)
                in_flight.append(task)
                if len(in_flight) > 2 * self.count:
                    yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _chunks(handle: Iterable[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, lines) of about CHUNK_BYTES each."""
    lines: list[bytes] = []
    size, first = 0, 1
    for number, raw in enumerate(handle, start=1):
        lines.append(raw)
        size += len(raw)
        if size >= CHUNK_BYTES:
            yield first, lines
            lines, size, first = [], 0, number + 1
    if lines:
        yield first, lines


def _start(settings: Settings) -> None:
    _formats.update((p, f) for p, f in build_formats(settings).items() if f.stored)


def _prepare(name: str, first: int, lines: list[bytes], require_accessioned: bool) -> list[Item]:
    items: list[Item] = []
    for number, raw in enumerate(lines, start=first):
        item = jsonl_item(name, number, raw, require_accessioned)
        if isinstance(item, Draft):
            items.append(prepare(item, _formats))
        elif item is not None:
            items.append(item)
    return items


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
