"""A metadata CSV's rows merged with the records stored under their ids, as DSpace's
metadata-import merges them: the `Unfinished` draft a worker process `finish`es."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple

from ..datestamps import parse_record_date
from ..errors import LoadError
from ..packing import unpack_rows
from ..record_source import Field, File
from ..xml import normalise_language
from .drafts import _MAX_KNOWN, ACCESSIONED, Draft, Limits

_COLUMN_KEYS: dict[tuple[str, str | None], tuple[str, str | None]] = {}


def column_key(name: str, lang: str | None) -> tuple[str, str | None]:
    """A field and language as DSpace's metadata-import tells columns apart (`dc.title[en_US]`
    is not `dc.title[nb_NO]`), whichever way the language is spelt (`en_US`, `en-US`)."""
    key = _COLUMN_KEYS.get((name, lang))
    if key is None:
        try:
            key = name, normalise_language(lang)
        except ValueError:  # not a language: a column of its own (its values are refused)
            key = name, lang
        if len(_COLUMN_KEYS) < _MAX_KNOWN:
            _COLUMN_KEYS[name, lang] = key
    return key


def merge_fields(
    stored: Sequence[Sequence[Any]],
    given: Sequence[Field],
    columns: frozenset[tuple[str, str | None]],
) -> list[Field]:
    """DSpace's metadata-import: the stored fields whose column is not in `columns` stay,
    the values of each column given replace that column's (none: removed). A column's new
    values take the place of its first stored value, so merging what is stored changes
    nothing (the content hash keeps the order of values within a field). `stored`: the
    stored record's `Field`s, or its rows as stored (`unpack_rows`): only those kept are
    made `Field`s."""
    known = _COLUMN_KEYS
    given_by_column: dict[tuple[str, str | None], list[Field]] = {}
    for f in given:
        key = known.get((f[0], f[2])) or column_key(f[0], f[2])
        given_by_column.setdefault(key, []).append(f)
    merged: list[Field] = []
    placed: set[tuple[str, str | None]] = set()
    for row in stored:
        key = known.get((row[0], row[2])) or column_key(row[0], row[2])
        if key not in columns:
            merged.append(row if isinstance(row, Field) else Field(*row))
        elif key not in placed:
            placed.add(key)
            merged += given_by_column.get(key, ())
    for key, values in given_by_column.items():
        if key not in placed:
            merged += values
    return merged


def merge_draft(
    draft: Draft,
    stored: Sequence[Sequence[Any]],
    stored_sets: tuple[str, ...],
    limits: Limits,
    stored_files: tuple[File, ...] = (),
) -> Draft:
    """A partial draft (`Draft.partial`) merged with the record stored under its id: a whole
    record, dated by the stored dc.date.accessioned unless its columns replace it."""
    fields = merge_fields(stored, draft.fields, draft.partial or frozenset())
    if len(fields) > limits.max_values:
        raise LoadError(
            draft.source.path,
            draft.source.line,
            draft.local_id,
            f"{len(fields):,} values with the stored ones, over the limit of "
            f"{limits.max_values:,} ([limits] max_values)",
        )
    accessioned = None
    dates = [f.value for f in fields if f.name == ACCESSIONED]
    if dates:
        with suppress(ValueError):
            accessioned = parse_record_date(dates[0])
    return replace(
        draft,
        set_specs=stored_sets if draft.keeps_sets else draft.set_specs,
        fields=tuple(fields),
        accessioned=accessioned,
        partial=None,
        keeps_sets=False,
        files=stored_files if draft.files is None else draft.files,
    )


class Unfinished(NamedTuple):
    """A draft the loading process has read and checked, with what finishing it needs
    from the store: handed to a worker process (when the load has some) to be merged
    and prepared there, since the loading process, the one part of a load that cannot
    be parallel, has the reading and the store to do. See `finish`."""

    draft: Draft
    # A part of a record (`Draft.partial`): the stored record's packed fields and own
    # sets, to be merged with; None: the draft is the whole record.
    stored: str | bytes | None = None
    stored_sets: tuple[str, ...] = ()
    # The stored record's files, for a draft that keeps them (`Draft.files` None).
    stored_files: tuple[File, ...] = ()
    # The sets its header names, and the datestamp the load will give it if it changed
    # (None: its dc.date.accessioned), for its header to be rendered with it (`prepare`).
    served_sets: tuple[str, ...] | None = None
    datestamp: datetime | None = None


def finish(task: Unfinished, limits: Limits) -> Draft | LoadError:
    """The whole record of `task`: its draft, or the part merged with the stored record."""
    draft = task.draft
    if task.stored is None:
        return draft if draft.files is not None else replace(draft, files=task.stored_files)
    try:
        stored = unpack_rows(task.stored)
        return merge_draft(draft, stored, task.stored_sets, limits, task.stored_files)
    except LoadError as e:
        return e
