"""The values the protocol reads, and `RecordSource`, the interface it reads them through.

The store returns these plain dataclasses, never ORM rows, so the protocol can be tested
over any source and the store can change (SQLite today, PostgreSQL tomorrow) unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Field:
    """One qualified Dublin Core value: `dc.contributor.author` = "Wang, D", language or None."""

    name: str
    value: str
    lang: str | None = None


@dataclass(frozen=True)
class Header:
    """What the OAI header says of an item: local id, datestamp, sets, deleted or not."""

    local_id: str
    datestamp: datetime
    set_specs: tuple[str, ...]
    deleted: bool


@dataclass(frozen=True)
class Position:
    """Where a list stopped: the last (datestamp, local id) served. Keyset, not offset."""

    datestamp: datetime
    local_id: str


@dataclass(frozen=True)
class Selection:
    """Which records a list verb asks for; `until` is inclusive and always set (the cut-off)."""

    set_spec: str | None
    from_: datetime | None
    until: datetime


@dataclass(frozen=True)
class StoredRecord:
    """A header and, for live records, the stored rendering in the asked-for format.

    `fragment` is None when the record is deleted or when the stored rendering was made
    by another crosswalk version; then `fields` are given, so it can be rendered afresh.
    """

    header: Header
    fragment: bytes | None
    fields: tuple[Field, ...] | None = None


@dataclass(frozen=True)
class SetInfo:
    spec: str
    name: str
    description: str | None = None


class RecordSource(Protocol):
    """What the verbs need from a store. Every method may raise StoreUnavailable."""

    def earliest_datestamp(self) -> datetime | None: ...

    def has_sets(self) -> bool: ...

    def count_sets(self) -> int: ...

    def list_sets(self, after: str | None, limit: int) -> Sequence[SetInfo]: ...

    def get_header(self, local_id: str) -> Header | None: ...

    def get_record(self, local_id: str, prefix: str, version: str) -> StoredRecord | None: ...

    def get_fields(self, local_id: str) -> tuple[Field, ...] | None: ...

    def count_records(self, selection: Selection) -> int: ...

    def list_headers(
        self, selection: Selection, after: Position | None, limit: int
    ) -> Sequence[Header]: ...

    def list_records(
        self, selection: Selection, after: Position | None, limit: int, prefix: str, version: str
    ) -> Sequence[StoredRecord]: ...

    def token_secret(self) -> str: ...
