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
    limits: Limits
    expanded: dict[tuple[str, ...], tuple[str, ...]]
    batch: dict[str, Draft | Prepared]
    workers: Workers | None
    broken: bool
    problems: list[LoadError]
    problem_count: int
    rejected: int
    id_hashes: array[int]
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
