"""The values the protocol reads, and `RecordSource`, the interface it reads them through.

The store returns these plain values, never ORM rows, so the protocol can be tested
over any source and the store can change (SQLite today, PostgreSQL tomorrow) unseen.
The values made by the hundred per page and by the million per load are named tuples:
one is built several times faster than a frozen dataclass, and is just as immutable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol


class Field(NamedTuple):
    """One qualified Dublin Core value: `dc.contributor.author` = "Wang, D", language or None.

    `lang` is the language as the source said it (DSpace's stored codes: `en_US`, `*`,
    `eng`): `dim` shows it so, and only where `xml:lang` is written is it made a BCP 47
    tag (`xml.xml_language`). `authority` and `confidence` are a controlled value's key
    and DSpace's confidence in it (-1 unset, 0 no value, 100 rejected … 600 accepted),
    written `value::authority::confidence` in DSpace's CSV: `dim` carries them, every
    other format shows the value alone."""

    name: str
    value: str
    lang: str | None = None
    authority: str | None = None
    confidence: int | None = None


class File(NamedTuple):
    """One file of a record (a DSpace bitstream), as the SAF `contents` file and the file
    itself describe it, or as a JSON record's `files` give it.

    `bundle` is DSpace's (ORIGINAL holds the content; THUMBNAIL, TEXT, LICENSE the
    derivatives): only ORIGINAL files are the record's files to formats and pages.
    `md5` is the hex MD5 of the bytes (DSpace's default checksum), `mime` the MIME type
    DSpace's format registry would give the name's extension. `sequence` is the file's
    number within its item (DSpace's sequence id; in a SAF export the line of the
    `contents` file). `access` is "open" when anonymous users may read it and "restricted"
    otherwise (oaipmh_server/files.py decides it from `permissions`, the text DSpace's
    `contents` file gave, such as `-r 'Anonymous'`). `uuid`: DSpace 7's bitstream id, for
    DSpace 7's links, when the source gives it.
    """

    name: str
    bundle: str
    size: int
    md5: str
    mime: str
    sequence: int
    description: str | None = None
    primary: bool = False
    access: str = "open"
    permissions: str | None = None
    uuid: str | None = None


class Header(NamedTuple):
    """What the OAI header says of an item: local id, datestamp, sets, deleted or not."""

    local_id: str
    datestamp: datetime
    set_specs: tuple[str, ...]
    deleted: bool


class Position(NamedTuple):
    """Where a list stopped: the last (datestamp, local id) served. Keyset, not offset."""

    datestamp: datetime
    local_id: str


@dataclass(frozen=True)
class Selection:
    """Which records a list verb asks for; `until` is inclusive and always set (the cut-off)."""

    set_spec: str | None
    from_: datetime | None
    until: datetime


class StoredRecord(NamedTuple):
    """A header and, for live records, the stored rendering in the asked-for format.

    `fragment` is None when the record is deleted, when only headers were asked for, or
    when the stored rendering was made by another crosswalk version (or not at all: a
    format rendered on request); then `fields` are given, so it can be rendered afresh.
    `header_xml` is the <header> as stored, or None when it must be rendered (stored for
    another repository identifier, or not yet). `files` come with `fields` when the
    format asked for carries files (`MetadataFormat.carries_files`); else they are not read.
    """

    header: Header
    fragment: bytes | None
    fields: tuple[Field, ...] | None = None
    header_xml: bytes | None = None
    files: tuple[File, ...] = ()


@dataclass(frozen=True)
class SetInfo:
    """A set as ListSets shows it. `parent` is the set containing it in the repository's
    tree (a DSpace community containing a collection or community), by its spec; in
    DSpace's flat style it is what puts a record of a collection in the communities above."""

    spec: str
    name: str
    description: str | None = None
    parent: str | None = None


class RecordSource(Protocol):
    """What the verbs need from a store. Every method may raise StoreUnavailable."""

    def earliest_datestamp(self) -> datetime | None: ...

    def has_sets(self) -> bool: ...

    def count_sets(self) -> int: ...

    def list_sets(self, after: str | None, limit: int) -> Sequence[SetInfo]: ...

    def get_header(self, local_id: str) -> Header | None: ...

    def get_record(
        self,
        local_id: str,
        prefix: str,
        version: str,
        header_version: str,
        with_files: bool = False,
    ) -> StoredRecord | None: ...

    def get_fields(self, local_id: str) -> tuple[Field, ...] | None: ...

    def get_files(self, local_id: str) -> tuple[File, ...]:
        """The record's files, every bundle, in sequence order (none: ())."""
        ...

    def count_records(self, selection: Selection) -> int: ...

    def list_headers(
        self, selection: Selection, after: Position | None, limit: int, header_version: str
    ) -> Sequence[StoredRecord]: ...

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
        """A page of records; those given with fields (no current fragment) come with
        their files too when `with_files` (the format carries files)."""
        ...

    def list_cutoff(self, now: datetime) -> datetime:
        """The cut-off of a list starting at `now`: at most one second before it, before
        any change not yet committed, never before a cut-off already handed out."""
        ...

    def token_secret(self) -> str: ...


UNREACHABLE_ID = (
    "has an empty, '.' or '..' path segment, or begins with '/': "
    "its page's address would lead elsewhere"
)
DOT_SEGMENT = "has a part '.' or '..': its page's address would lead elsewhere"


def leads_elsewhere(local_id: str) -> bool:
    """Whether a record's page address, /records/ and its id, would not lead to its page:
    an empty, `.` or `..` path segment (so also a leading or doubled `/`) is resolved
    away by every browser and proxy (`../../oai` leads to /oai, `//evil.example/x` as a
    link to another host), and sitemaps would list addresses that are not the record's."""
    return any(segment in ("", ".", "..") for segment in local_id.split("/"))


def spec_leads_elsewhere(spec: str) -> bool:
    """Whether a set spec has a `.` or `..` part (`:`-separated), which /sets/ would
    resolve away as `leads_elsewhere` says of an id."""
    return any(part in (".", "..") for part in spec.split(":"))
