"""Records and sets as a load receives them, checked and made store-ready: every reader
builds `Draft`s through `make_draft` and `SetDefinition`s through `make_set`, so the rules
live in one place; `prepare` packs, hashes and renders a draft (`Prepared`).

A draft knows where it came from (file and line), so every problem is reported as
`FILE:LINE: record ID: reason`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import orjson

from ..datestamps import parse_record_date
from ..errors import LoadError, quoted
from ..formats import MetadataFormat
from ..packing import pack_rows, plain_fields, unpack_fields
from ..record_source import (
    DOT_SEGMENT,
    UNREACHABLE_ID,
    Field,
    File,
    Header,
    SetInfo,
    leads_elsewhere,
    spec_leads_elsewhere,
)
from ..settings import Settings
from ..verbs import SET_SPEC, is_uri
from ..virtual_sets import VirtualSets
from ..xml import clean_text, has_illegal_characters, normalise_language, stored_header

# The local part of the oai-identifier scheme (oai-identifier.xsd), so every OAI identifier
# this repository makes is valid: a DSpace handle such as 10722/212116 fits.
LOCAL_ID = re.compile(r"[a-zA-Z0-9\-_\.!~\*'\(\);/\?:@&=\+$,%]+", re.ASCII)
# Any repositoryIdentifier: whether oai:<it>:<id> is a URI depends only on the id, since the
# oai-identifier scheme gives repository identifiers URI-safe characters only.
ANY_REPOSITORY = "repository.example.org"
FIELD_NAME = re.compile(
    r"[a-z][a-z0-9]*\.[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*)?", re.ASCII
)
ACCESSIONED = "dc.date.accessioned"
HASH_SCHEME = "2:"
_NAME = itemgetter(0)
_VALUE = itemgetter(1)
_AUTHORITY = itemgetter(3)
_SEQUENCE = attrgetter("sequence")
MAX_ID_LENGTH = 255
# DSpace's confidence scale (org.dspace.content.authority.Choices): -1 unset, 0 no value,
# 100 rejected, 200 failed, 300 not found, 400 ambiguous, 500 uncertain, 600 accepted.
CONFIDENCE_RANGE = range(-1, 601)


@dataclass(frozen=True)
class Limits:
    """What one record may cost ([limits] in config/oaipmh.toml): checked as it is read, so
    nothing a harvester (or the server rendering it) cannot take is ever loaded."""

    max_value_length: int  # characters of one value
    max_values: int  # values of one record
    max_record_bytes: int  # bytes of one record as its file holds it
    # What a .zip export may unpack to (ingest/archive.py): bytes, and files and folders.
    max_archive_bytes: int
    max_archive_entries: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_value_length,
            settings.max_values,
            settings.max_record_bytes,
            settings.max_archive_bytes,
            settings.max_archive_entries,
        )


def too_big(size: int, limits: Limits) -> str:
    """The reason for a record bigger than max_record_bytes (its size as its file holds it)."""
    return (
        f"{size:,} bytes, over the limit of {limits.max_record_bytes:,} ([limits] max_record_bytes)"
    )


@dataclass(frozen=True)
class Source:
    """Where a draft came from."""

    path: str
    line: int | None


@dataclass(frozen=True)
class Draft:
    source: Source
    local_id: str
    set_specs: tuple[str, ...]
    deleted: bool
    fields: tuple[Field, ...]
    accessioned: datetime | None
    cleaned: int  # characters XML cannot carry, replaced by U+FFFD
    # A part of a record (a row of a metadata CSV without dc.date.accessioned): the columns
    # (field, language) it gives, to be merged with the stored record (`merge_fields`);
    # None: the whole record. A deleted part (a row withdrawing its item) replaces a live
    # record with a tombstone; a stored tombstone it leaves as it is, fields and all
    # (Batches._tasks).
    partial: frozenset[tuple[str, str | None]] | None = None
    keeps_sets: bool = False  # a part without sets: the stored record's stay
    # The record's files (SAF `contents`, JSON "files"); None: the stored record's stay
    # (a metadata CSV, which, like DSpace's metadata-import, never touches bitstreams).
    files: tuple[File, ...] | None = ()

    @cached_property
    def fields_digest(self) -> str:
        """The fields' (and files') part of the content hash (see `content_hash`): taken
        once (a copy made by `replace`, with other fields, takes its own)."""
        return fields_digest(self.fields, self.files or ())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to be finished by a worker process, `Unfinished`, or sent back by one
        unrendered) with its fields as JSON: a record's forty values as named tuples take
        longer to pickle than the loading process takes to read them. The digest goes
        with it once taken."""
        fields = orjson.dumps(plain_fields(self.fields))
        digest = self.__dict__.get("fields_digest")
        return _unpickled_draft, (self.source, self.local_id, self.set_specs, self.deleted,
                                  fields, digest, self.accessioned, self.cleaned,
                                  self.partial, self.keeps_sets, self.files)  # fmt: skip

    @property
    def legacy_content_hash(self) -> str:
        """The first scheme (stdlib JSON, no prefix), which stores loaded before 0.2 hold."""
        fields = [f[:3] for f in sorted(self.fields, key=_NAME)]  # no authorities then
        canonical = json.dumps([self.deleted, sorted(self.set_specs), fields], ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _unpickled_draft(
    source: Source,
    local_id: str,
    set_specs: tuple[str, ...],
    deleted: bool,
    fields: bytes,
    digest: str | None,
    *rest: Any,
) -> Draft:
    # The JSON rows `pack_fields` compresses, which `unpack_fields` reads as they are.
    draft = Draft(source, local_id, set_specs, deleted, unpack_fields(fields), *rest)
    if digest is not None:
        draft.__dict__["fields_digest"] = digest
    return draft


def fields_digest(
    fields: Sequence[Field], files: Sequence[File], rows: Sequence[tuple[Any, ...]] | None = None
) -> str:
    """The fields' part of the content hash, the files' joined in when there are any (a
    record without files keeps the digest it had before files were kept, so re-loading
    it is no change): a changed file (size, checksum, access…) is a changed record.
    `rows`: the fields' `plain_fields`, if the caller has made them already."""
    # As stored: a value's authority and confidence count only where it has them, so the
    # hash of a record without any is the one it had before they were kept. The sort is
    # stable: it keeps the order within a field.
    ordered = sorted(plain_fields(fields) if rows is None else rows, key=_NAME)
    if not files:
        return hashlib.sha256(orjson.dumps(ordered)).hexdigest()
    canonical = [ordered, [tuple(f) for f in sorted(files, key=_SEQUENCE)]]
    return hashlib.sha256(orjson.dumps(canonical)).hexdigest()


def content_hash(deleted: bool, set_specs: Sequence[str], fields_digest: str) -> str:
    """Equal for equal content: a reload of the same record changes nothing.

    Values keep their order within a field (DSpace's `place`: the first author stays
    first), but the order of different fields means nothing: an export that lists the
    same values column by column (CSV) or element by element (SAF) is the same record.
    The fields are hashed on their own (`Draft.fields_digest`), where the record is read,
    and the sets joined in when the load knows where they are placed. Prefixed with its
    scheme's version (a hash without one is `Draft.legacy_content_hash`).
    """
    canonical = orjson.dumps([deleted, sorted(set_specs), fields_digest])
    return HASH_SCHEME + hashlib.sha256(canonical).hexdigest()[: 64 - len(HASH_SCHEME)]


class Prepared(NamedTuple):
    """A draft with the work a load does for every record already done: its fields as
    stored, their digest, and its renderings in the stored formats. Made where the
    record is read (a worker process, for big JSON Lines files), so it is plain data,
    quick to send between processes."""

    path: str
    line: int | None
    local_id: str
    set_specs: tuple[str, ...]
    deleted: bool
    accessioned: datetime | None
    cleaned: int
    packed_fields: bytes  # see pack_fields
    fields_digest: str
    fragments: dict[str, tuple[str, bytes]]  # prefix → (crosswalk version, body)
    # Its <header> if the load dates it as guessed where it was prepared (by its
    # dc.date.accessioned, as a first load dates every record; or as the load said) (None:
    # rendered by the load, once the datestamp is known), and the set specs and datestamp
    # that header names (the load checks they are the ones it gives).
    header: bytes | None = None
    header_sets: tuple[str, ...] = ()
    header_datestamp: datetime | None = None
    files: tuple[File, ...] = ()
    # The virtual sets it passes (virtual_sets.py), last among the specs it is served with.
    virtual_sets: tuple[str, ...] = ()

    def fields(self) -> tuple[Field, ...]:
        return unpack_fields(self.packed_fields)

    def is_legacy_hash(self, stored_hash: str, set_specs: tuple[str, ...]) -> bool:
        """Whether a content hash stored by the first scheme is this record's (never, for
        a record with files: that scheme is older than files)."""
        if self.files:
            return False
        draft = Draft(Source(self.path, self.line), self.local_id, set_specs, self.deleted,
                      self.fields(), self.accessioned, self.cleaned)  # fmt: skip
        return stored_hash == draft.legacy_content_hash


def prepare(
    draft: Draft,
    formats: Mapping[str, MetadataFormat],
    repository_identifier: str | None = None,
    served_sets: tuple[str, ...] | None = None,
    virtual: VirtualSets | None = None,
    digest: str | None = None,
    datestamp: datetime | None = None,
) -> Prepared:
    """Store-ready: fields packed as stored, their digest and, unless deleted, each format's body;
    with `repository_identifier`, the header it will have if dated `datestamp` (default:
    by its dc.date.accessioned): a worker renders it, so the loading process, the one
    that cannot be parallel, only checks that the guess was right. The header names
    `served_sets` (default: the record's own) and the `virtual` sets the record passes.
    `digest`: its fields' digest, if the load has taken it already."""
    fragments = {}
    header = None
    header_sets = draft.set_specs if served_sets is None else served_sets
    virtual_sets: tuple[str, ...] = ()
    if virtual and not draft.deleted:
        virtual_sets = virtual.of(draft.fields, draft.files or ())
        header_sets = (*header_sets, *virtual_sets)
    files = draft.files or ()
    rows = plain_fields(draft.fields)  # packed, and hashed unless the load has hashed them
    if not draft.deleted:
        fragments = {
            prefix: (f.version, f.render_record(draft.local_id, draft.fields, files))
            for prefix, f in formats.items()
        }
        datestamp = draft.accessioned if datestamp is None else datestamp
        if repository_identifier is not None and datestamp is not None:
            dated = Header(draft.local_id, datestamp, header_sets, False)
            header = stored_header(repository_identifier, dated)
    return Prepared(
        path=draft.source.path,
        line=draft.source.line,
        local_id=draft.local_id,
        set_specs=draft.set_specs,
        deleted=draft.deleted,
        accessioned=draft.accessioned,
        cleaned=draft.cleaned,
        packed_fields=pack_rows(rows),
        fields_digest=fields_digest(draft.fields, files, rows) if digest is None else digest,
        fragments=fragments,
        header=header,
        header_sets=header_sets,
        header_datestamp=datestamp if header is not None else None,
        files=files,
        virtual_sets=virtual_sets,
    )


@dataclass(frozen=True)
class SetDefinition:
    source: Source
    info: SetInfo


# Field names and languages repeat from record to record, so each is checked once: the
# ones that passed are remembered (up to a bound, whatever the input), and a record made
# only of those takes the fast path of `_checked_fields`.
_KNOWN_NAMES: dict[str, str] = {}
_KNOWN_LANGUAGES: dict[str | None, str | None] = {None: None}
_MAX_KNOWN = 10_000
# Every value is a string: a lookup that fails (KeyError) for any other type, and gives
# the authority of a value that has none (see `_checked_fields`).
_STRING_HAS_NO_AUTHORITY: dict[type, None] = {str: None}
_new = tuple.__new__


def _is_field_name(name: str) -> bool:
    if FIELD_NAME.fullmatch(name) is None:
        return False
    if len(_KNOWN_NAMES) < _MAX_KNOWN:
        _KNOWN_NAMES[name] = name
    return True


def _language(lang: str) -> str | None:
    """The language kept: what the source said (DSpace's `en_US`, `*`, `eng`), spaces
    around it dropped, None for none at all; ValueError if it cannot be made a language
    tag where xml:lang is written (`xml.xml_language`)."""
    normalise_language(lang)
    language = lang.strip() or None
    if len(_KNOWN_LANGUAGES) < _MAX_KNOWN:
        _KNOWN_LANGUAGES[lang] = language
    return language


def _checked_fields(fields: Sequence[tuple[Any, ...]]) -> list[Field] | None:
    """The fields, if every name and language is one already checked and every value is a
    string; None sends the record through the checks one entry at a time (which name the
    entry that breaks a rule), as it does a record with an authority or a confidence.
    One pass, a lookup each (a miss is a KeyError), no call per value: a load checks
    millions of them, in the one process of a load that cannot be parallel."""
    names, languages, strings = _KNOWN_NAMES, _KNOWN_LANGUAGES, _STRING_HAS_NO_AUTHORITY
    try:
        return [
            _new(Field, (names[name], value, languages[lang], strings[value.__class__], None))
            for name, value, lang in fields
        ]
    except (KeyError, TypeError, ValueError):  # unknown; unhashable; not 3 items
        return None


def make_draft(
    source: Source,
    local_id: Any,
    set_specs: Any,
    deleted: Any,
    fields: Sequence[tuple[Any, ...]],
    *,
    require_accessioned: bool,
    limits: Limits | None = None,
    files: tuple[File, ...] | None = (),
    partial: frozenset[tuple[str, str | None]] | None = None,
    keeps_sets: bool = False,
    quote: Callable[[object], str] = quoted,
) -> Draft:
    """Check one record; LoadError naming the record and the first rule it breaks.
    `fields`: (name, value, lang) or (name, value, lang, authority, confidence) each.
    `files`: its files, already checked by the reader (None: the stored ones stay).
    `limits`: what the record may cost (None: no limits, for records made by the server).
    `quote`: how a message shows a value, in the words of the file it came from
    (`errors.json_quoted` for JSON's null and true; text from CSV, SAF or XML as `quoted`)."""
    record_id = local_id if isinstance(local_id, str) and local_id else None

    def fail(reason: str) -> LoadError:
        return LoadError(source.path, source.line, record_id, reason)

    if not isinstance(local_id, str) or not local_id:
        raise fail('no id: every record needs an "id", such as "10722/212116"')
    if len(local_id) > MAX_ID_LENGTH or not LOCAL_ID.fullmatch(local_id):
        raise fail(
            f"id {quote(local_id)} has characters an OAI identifier cannot carry (or is too long)"
        )
    if not is_uri(f"oai:{ANY_REPOSITORY}:{local_id}"):
        raise fail(
            f"id {quote(local_id)} would make an OAI identifier that is not a URI: "
            "a % must begin an escape such as %2F"
        )
    if leads_elsewhere(local_id):
        raise fail(f"id {quote(local_id)} {UNREACHABLE_ID}")
    if not isinstance(deleted, bool):
        raise fail(f'"deleted" must be true or false, not {quote(deleted)}')
    if not isinstance(set_specs, list) or not all(isinstance(s, str) for s in set_specs):
        raise fail('"sets" must be a list of set specs')
    for spec in set_specs:
        if not SET_SPEC.fullmatch(spec) or len(spec) > MAX_ID_LENGTH:
            raise fail(f"set spec {quote(spec)} is not valid (letters, digits, -_.!~*'() and ':')")
        if spec_leads_elsewhere(spec):
            raise fail(f"set spec {quote(spec)} {DOT_SEGMENT}")

    if limits is not None and len(fields) > limits.max_values:
        raise fail(
            f"{len(fields):,} values, over the limit of {limits.max_values:,} ([limits] max_values)"
        )

    checked = _checked_fields(fields)
    if checked is None:
        checked = []
        for number, (name, value, lang, *controlled) in enumerate(fields, start=1):
            if not isinstance(name, str) or not _is_field_name(name):
                raise fail(
                    f"metadata entry {number}: field {quote(name)} "
                    "is not like 'dc.contributor.author'"
                )
            if not isinstance(value, str):
                raise fail(
                    f"metadata entry {number} ({name}): value must be a string, not {quote(value)}"
                )
            language = None
            if lang is not None:
                if not isinstance(lang, str):
                    raise fail(
                        f"metadata entry {number} ({name}): "
                        f"lang must be a string, not {quote(lang)}"
                    )
                try:
                    language = _language(lang)
                except ValueError as e:
                    raise fail(f"metadata entry {number} ({name}): {e}") from None
            try:
                authority, confidence = _controlled(controlled, quote)
            except ValueError as e:
                raise fail(f"metadata entry {number} ({name}): {e}") from None
            checked.append(Field(name, value, language, authority, confidence))

    cleaned = 0
    # Every value and authority, joined (in no order that matters) without a call each.
    values = "".join(map(_VALUE, checked)) + "".join(filter(None, map(_AUTHORITY, checked)))
    if limits is not None and len(values) > limits.max_value_length:  # one may be too long
        for number, f in enumerate(checked, start=1):
            for what, text in (("a value", f.value), ("an authority", f.authority or "")):
                if len(text) > limits.max_value_length:
                    raise fail(
                        f"metadata entry {number} ({f.name}): {what} of {len(text):,} "
                        f"characters, over the limit of {limits.max_value_length:,} "
                        "([limits] max_value_length)"
                    )
    # One scan of all values for characters XML cannot carry; only a record that has some
    # (rare) is gone through value by value.
    if has_illegal_characters(values):
        for position, f in enumerate(checked):
            if has_illegal_characters(f.value):
                fixed = clean_text(f.value)
                cleaned += sum(1 for a, b in zip(f.value, fixed, strict=True) if a != b)
                checked[position] = f = f._replace(value=fixed)
            if f.authority is not None and has_illegal_characters(f.authority):
                fixed = clean_text(f.authority)
                cleaned += sum(1 for a, b in zip(f.authority, fixed, strict=True) if a != b)
                checked[position] = f._replace(authority=fixed)

    accessioned = None
    dates = [f.value for f in checked if f.name == ACCESSIONED]
    if dates:
        try:
            accessioned = parse_record_date(dates[0])
        except ValueError as e:
            if require_accessioned and not deleted:
                raise fail(f"{ACCESSIONED}: {e}") from None
    elif require_accessioned and not deleted:
        raise fail(f"no {ACCESSIONED}: the datestamp comes from it")

    return Draft(
        source=source,
        local_id=local_id,
        set_specs=tuple(dict.fromkeys(set_specs)),
        deleted=deleted,
        fields=tuple(checked),
        accessioned=accessioned,
        cleaned=cleaned,
        files=files,
        partial=partial,
        keeps_sets=keeps_sets,
    )


def _controlled(given: list[Any], quote: Callable[[object], str]) -> tuple[str | None, int | None]:
    """A value's (authority, confidence), from what follows its language: nothing, or
    both (either None). ValueError for an authority that is not a string or a confidence
    that is not an integer of DSpace's scale. An empty (or blank) authority is none, as
    DSpace's export writes none for it."""
    if not given:
        return None, None
    if len(given) != 2:
        raise ValueError(f"expected authority and confidence, not {quote(given)}")
    authority, confidence = given
    if authority is not None and not isinstance(authority, str):
        raise ValueError(f"authority must be a string, not {quote(authority)}")
    if confidence is not None and (
        confidence.__class__ is not int or confidence not in CONFIDENCE_RANGE
    ):
        raise ValueError(
            f"confidence must be an integer of DSpace's scale (-1 unset, 0 no value, "
            f"100 rejected … 600 accepted), not {quote(confidence)}"
        )
    return (authority if authority and not authority.isspace() else None), confidence


def draft_or_error(
    source: Source,
    local_id: Any,
    set_specs: Any,
    deleted: Any,
    fields: Sequence[tuple[Any, ...]],
    *,
    require_accessioned: bool,
    limits: Limits,
    files: tuple[File, ...] | None = (),
    partial: frozenset[tuple[str, str | None]] | None = None,
    keeps_sets: bool = False,
    quote: Callable[[object], str] = quoted,
) -> Draft | LoadError:
    """`make_draft` for readers, which hand problems on instead of stopping at the first."""
    try:
        return make_draft(
            source,
            local_id,
            set_specs,
            deleted,
            fields,
            require_accessioned=require_accessioned,
            limits=limits,
            files=files,
            partial=partial,
            keeps_sets=keeps_sets,
            quote=quote,
        )
    except LoadError as e:
        return e


def make_set(source: Source, entry: Any, quote: Callable[[object], str] = quoted) -> SetDefinition:
    """One entry of a sets file: {"spec": ..., "name": ..., "description": ..., "parent": ...};
    `parent` is the spec of the set containing it (a community), defined before it;
    `quote` shows a value as the file wrote it (see `make_draft`)."""
    spec = entry.get("spec") if isinstance(entry, dict) else None

    def fail(reason: str) -> LoadError:
        return LoadError(
            source.path,
            source.line,
            f"set {spec}" if isinstance(spec, str) and spec else "set ?",
            reason,
        )

    if not isinstance(entry, dict):
        raise fail("a set must be an object with spec and name")
    unknown = sorted(set(entry) - {"spec", "name", "description", "parent"})
    if unknown:
        raise fail(f"unknown key(s) {', '.join(map(quote, unknown))}")
    if not isinstance(spec, str) or not SET_SPEC.fullmatch(spec) or len(spec) > MAX_ID_LENGTH:
        raise fail(f"spec {quote(spec)} is not valid (letters, digits, -_.!~*'() and ':')")
    if spec_leads_elsewhere(spec):
        raise fail(f"spec {quote(spec)} {DOT_SEGMENT}")
    name, description = entry.get("name"), entry.get("description")
    if not isinstance(name, str) or not name.strip():
        raise fail('a set needs a non-empty "name"')
    if description is not None and not isinstance(description, str):
        raise fail('"description" must be a string')
    parent = entry.get("parent")
    if parent is not None and (
        not isinstance(parent, str) or not SET_SPEC.fullmatch(parent) or ":" in parent + spec
    ):
        cause = next((f": {quote(s)} holds ':', which nests a spec in another"
                      for s in (parent, spec) if isinstance(s, str) and ":" in s), "")  # fmt: skip
        raise fail(f"parent {quote(parent)} is not valid: a flat spec such as com_10722_1, "
                   f"of a set with a flat spec{cause}")  # fmt: skip
    if parent == spec:
        raise fail("a set cannot be its own parent")
    info = SetInfo(spec, clean_text(name), clean_text(description) if description else None)
    return SetDefinition(source, replace(info, parent=parent))
