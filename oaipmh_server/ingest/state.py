"""What one load holds while it runs, declared once for the parts of the load that share it
(`load._Loader` is `batches.Batches`, `placing.Placing`, `refreshing.Refreshing` and
`sync.Syncing` together; its `__init__` sets each of these)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from array import array
from collections.abc import Sequence
from datetime import datetime

from ..errors import LoadError
from ..formats import MetadataFormat
from ..record_source import Header, SetInfo
from ..settings import Settings
from ..store import Existing, LoadTransaction, RecordWrite
from ..virtual_sets import VirtualSets
from .drafts import Draft, Limits, Prepared
from .summary import Changes, LoadSummary
from .workers import Workers

# Ids of records a failing load read but did not write, kept to name repeats (about 30 MB
# at most); past them a repeat is reported by its files and lines alone.
UNWRITTEN_NAMES = 200_000


class LoadState(ABC):
    """The state of one load inside its transaction, and what each part of the load calls
    in the others."""

    tx: LoadTransaction
    changes: Changes | None
    whole_records: int
    parts: int
    withdrawing: bool
    settings: Settings
    formats: dict[str, MetadataFormat]
    stored: dict[str, MetadataFormat]
    summary: LoadSummary
    moment: datetime
    was_empty: bool
    header_version: str
    sets: dict[str, SetInfo]
    parents: dict[str, str | None]
    stored_parents: dict[str, str | None]
    moved: set[str]
    flat: bool
    placements: dict[str, str]
    limits: Limits
    expanded: dict[tuple[str, ...], tuple[str, ...]]
    batch: dict[str, Draft | Prepared]
    workers: Workers | None
    broken: bool
    problems: list[LoadError]
    problem_count: int
    rejected: int
    id_hashes: array[int]
    unwritten: dict[int, str]
    files: dict[str, int]
    file_of: array[int]
    line_of: array[int]
    written: array[int]
    virtual: VirtualSets
    virtual_state: str
    stored_virtual_state: str | None
    virtual_specs: frozenset[str]

    @abstractmethod
    def problem(self, error: LoadError) -> None: ...

    @abstractmethod
    def _count(self, error: LoadError) -> None: ...

    @abstractmethod
    def _decide(self, item: Draft | Prepared, old: Existing | None) -> RecordWrite | None: ...

    @abstractmethod
    def _sets_and_hash(
        self, item: Draft | Prepared, old: Existing | None
    ) -> tuple[tuple[str, ...], tuple[str, ...], str]: ...

    @abstractmethod
    def _write(
        self, existing: dict[str, Existing], done: Sequence[Draft | Prepared | LoadError]
    ) -> None: ...

    @abstractmethod
    def _own(self, specs: tuple[str, ...]) -> tuple[str, ...]: ...

    @abstractmethod
    def render_header(self, header: Header) -> bytes: ...

    @abstractmethod
    def _served_sets(self, specs: tuple[str, ...]) -> tuple[str, ...]: ...

    @abstractmethod
    def _ensure_set(self, spec: str) -> None: ...

    def not_written(self, local_id: str) -> None:
        """A record the load read but will not write (it has found a problem already):
        its id is kept (up to UNWRITTEN_NAMES of them), so a repeat found at the end
        is named, as the store names the ones written."""
        if len(self.unwritten) < UNWRITTEN_NAMES:
            self.unwritten.setdefault(hash(local_id), local_id)
