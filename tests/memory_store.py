"""An in-memory `RecordSource`: the protocol core's tests run over it, with no SQL and no web.

It keeps what the interface promises and nothing more: lists in (datestamp, local id) order,
keyset positions, a set selecting its descendants (`a` selects `a:b`), `until` inclusive,
headers only for deleted records. Fragments are never stored: every record is rendered from
its fields, as the store does for a format it does not keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from oaipmh_server.record_source import (
    Field,
    File,
    Header,
    Position,
    Selection,
    SetInfo,
    StoredRecord,
)


@dataclass
class Item:
    header: Header
    fields: tuple[Field, ...] = ()
    files: tuple[File, ...] = ()


@dataclass
class MemoryStore:
    """Records and sets held in lists; `secret` signs resumption tokens."""

    items: list[Item] = field(default_factory=list)
    sets: list[SetInfo] = field(default_factory=list)
    secret: str = "unit-tier-secret"

    def add(
        self,
        local_id: str,
        datestamp: datetime,
        *fields: Field,
        sets: tuple[str, ...] = (),
        deleted: bool = False,
    ) -> None:
        self.items.append(
            Item(Header(local_id, datestamp, sets, deleted), () if deleted else fields)
        )

    def _find(self, local_id: str) -> Item | None:
        return next((i for i in self.items if i.header.local_id == local_id), None)

    def _selected(self, selection: Selection, after: Position | None) -> list[Item]:
        def chosen(item: Item) -> bool:
            header = item.header
            if selection.set_spec is not None and not any(
                s == selection.set_spec or s.startswith(selection.set_spec + ":")
                for s in header.set_specs
            ):
                return False
            if selection.from_ is not None and header.datestamp < selection.from_:
                return False
            if header.datestamp > selection.until:
                return False
            return after is None or (header.datestamp, header.local_id) > tuple(after)

        ordered = sorted(self.items, key=lambda i: (i.header.datestamp, i.header.local_id))
        return [i for i in ordered if chosen(i)]

    def earliest_datestamp(self) -> datetime | None:
        return min((i.header.datestamp for i in self.items), default=None)

    def has_sets(self) -> bool:
        return bool(self.sets)

    def count_sets(self) -> int:
        return len(self.sets)

    def list_sets(self, after: str | None, limit: int) -> Sequence[SetInfo]:
        ordered = sorted(self.sets, key=lambda s: s.spec)
        return [s for s in ordered if after is None or s.spec > after][:limit]

    def get_header(self, local_id: str) -> Header | None:
        item = self._find(local_id)
        return item.header if item else None

    def get_record(
        self,
        local_id: str,
        prefix: str,
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> StoredRecord | None:
        item = self._find(local_id)
        return None if item is None else self._stored(item, with_metadata=True)

    def get_fields(self, local_id: str) -> tuple[Field, ...] | None:
        item = self._find(local_id)
        return item.fields if item else None

    def get_files(self, local_id: str) -> tuple[File, ...]:
        item = self._find(local_id)
        return item.files if item else ()

    def count_records(self, selection: Selection) -> int:
        return len(self._selected(selection, None))

    def list_headers(
        self, selection: Selection, after: Position | None, limit: int, header_version: str
    ) -> Sequence[StoredRecord]:
        chosen = self._selected(selection, after)[:limit]
        return [self._stored(i, with_metadata=False) for i in chosen]

    def list_records(
        self,
        selection: Selection,
        after: Position | None,
        limit: int,
        prefix: str,
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> Sequence[StoredRecord]:
        chosen = self._selected(selection, after)[:limit]
        return [self._stored(i, with_metadata=True) for i in chosen]

    def list_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(seconds=1)

    def token_secret(self) -> str:
        return self.secret

    @staticmethod
    def _stored(item: Item, *, with_metadata: bool) -> StoredRecord:
        if item.header.deleted or not with_metadata:
            return StoredRecord(item.header, None)
        return StoredRecord(item.header, None, item.fields, None, item.files)
