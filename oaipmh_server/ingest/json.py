"""Record files in JSON: `.json` (one record, an array of records, or a sets file
`{"sets": [...]}`) and `.jsonl` (one record per line).

A record is {"id": "10722/212116", "sets": ["col_10722_5"], "deleted": false,
"metadata": [{"field": "dc.title", "value": "…", "lang": "en"}], "files": [...]}; a
controlled value may add its "authority" (a string) and "confidence" (DSpace's scale: -1,
0, 100 … 600), as in {"field": "dc.contributor.author", "value": "Wang, D", "authority":
"…", "confidence": 600}. "files"
is optional, each file {"name": "article.pdf", "size": 1234, "md5": "<32 hex digits>"}
with, optionally, "mime" (default: from the name, as DSpace guesses it), "bundle"
(default ORIGINAL), "access" ("open" or "restricted"; default: from "permissions", as
DSpace's `contents` file writes them, else "open"), "permissions", "sequence" (a positive
integer, unique in the record; default: the file's place in the list), "description",
"primary" (true/false) and "uuid" (DSpace 7's bitstream id). Every item yielded carries
its file and line; a problem is yielded as a LoadError, so one bad record does not hide
the next ones.

A key given twice in one object is not refused: the last is kept, as orjson (and the
standard parser) keep it. Telling would take a scan of every line's bytes (counting its
`":`, 5.6 µs for a seed-shaped 4.7 kB line, against about 61 µs for all of jsonl_item):
a JSON Lines load a tenth slower (measured 1.10 to 1.23, best of 7), for a mistake no
exporter makes. docs/loading.md says so and how to check a file before loading it.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Iterator
from itertools import repeat
from operator import contains
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..errors import LoadError, json_quoted
from ..files import ACCESS, ORIGINAL, access_of, embargo_of
from ..names import not_a_file_name
from ..record_source import File
from ..xml import clean_text, has_illegal_characters
from .drafts import (
    Draft,
    Limits,
    Prepared,
    SetDefinition,
    Source,
    draft_or_error,
    make_set,
    too_big,
)
from .mime import mime_type

# JSON the standard parser reads but cannot turn into values: arrays and objects nested
# deeper than Python's recursion allows, integers longer than Python converts.
TOO_DEEP = "malformed JSON: arrays and objects nested too deeply (a record has 3 levels)"
TOO_LONG = f"malformed JSON: a number of more than {sys.get_int_max_str_digits()} digits"
LONG_NUMBER = re.compile(rf"[0-9]{{{sys.get_int_max_str_digits() + 1},}}")

RECORD_KEYS = frozenset({"id", "sets", "deleted", "metadata", "files"})
FILE_KEYS = frozenset({"name", "size", "md5", "mime", "bundle", "access", "permissions",
                       "sequence", "description", "primary", "uuid", "embargo"})  # fmt: skip
EMBARGO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
MD5 = re.compile(r"[0-9a-f]{32}")
# A file's size is kept in a 64-bit integer column (SQLite's INTEGER, PostgreSQL's bigint).
MAX_SIZE = 2**63
# A media type and nothing else (RFC 6838 names; parameters of RFC 9110 token characters,
# no quoted strings): it is written into the Link header of the record's page, where a
# quote would let a record add links of its own and a line break would end the header.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_WORD = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
MIME = re.compile(rf"{_NAME}/{_NAME}(?:[ \t]*;[ \t]*{_WORD}={_WORD})*", re.ASCII)
ENTRY_KEYS = frozenset({"field", "value", "lang", "authority", "confidence"})

Item = Draft | Prepared | SetDefinition | LoadError
# Of a .jsonl line too long to read, this much is kept: enough to find the record's id.
HEAD = 4096
SKIP = 1024 * 1024
# JSON Lines files are read line by line (jsonl_lines) through a buffer this big: with the
# default 8 KiB one, a seed-shaped record (4.5 kB) costs a read() of its own.
READ_BUFFER = 1024 * 1024


def read_json_file(path: Path, *, require_accessioned: bool, limits: Limits) -> Iterator[Item]:
    name = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        yield LoadError.unreadable(name, e)
        return
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        yield LoadError(name, line, None, "not UTF-8 text")
        return
    decoder = json.JSONDecoder()
    start = _skip_space(text, 0)
    if start == len(text):
        return  # no records: an empty file, as an empty .jsonl file
    if text[start] == "[":
        yield from _array(text, start + 1, decoder, name, require_accessioned, limits)
        return
    try:
        value, end = decoder.raw_decode(text, start)
    except (ValueError, RecursionError) as e:
        yield _unreadable(e, text, start, name)
        return
    if _skip_space(text, end) != len(text):
        yield LoadError(name, _line(text, end), None, "malformed JSON: extra data after the value")
        return
    line = _line(text, start)
    if isinstance(value, dict) and "sets" in value and "id" not in value:
        yield from _sets_file(value, name, line)
    else:
        yield _sized_record(
            value, text, start, end, Source(name, line), require_accessioned, limits
        )


def read_jsonl_file(path: Path, *, require_accessioned: bool, limits: Limits) -> Iterator[Item]:
    name = str(path)
    try:
        handle = path.open("rb", buffering=READ_BUFFER)
    except OSError as e:
        yield LoadError.unreadable(name, e)
        return
    with handle:
        for number, raw, size in jsonl_lines(handle, 1, None, limits.max_record_bytes):
            item = jsonl_item(name, number, raw, require_accessioned, limits, size)
            if item is not None:
                yield item


def jsonl_lines(
    handle: BinaryIO, first: int, length: int | None, limit: int
) -> Iterator[tuple[int, bytes, int]]:
    """(number, bytes, size) of each line of the next `length` bytes of a file (None: to its
    end), the first numbered `first`; its size without its line end. A line longer than
    `limit` is never held whole: it comes as its first HEAD bytes, and the rest is skipped
    unread."""
    number, left = first, length
    while left is None or left > 0:
        want = limit + 2 if left is None else min(limit + 2, left)  # + a CRLF line end
        raw = handle.readline(want)
        if not raw:
            return
        consumed, last = len(raw), raw
        if consumed == limit + 2 and not raw.endswith(b"\n"):
            raw = raw[:HEAD]
            while left is None or consumed < left:
                more = handle.readline(SKIP if left is None else min(SKIP, left - consumed))
                consumed += len(more)
                last = more or last
                if not more or more.endswith(b"\n"):
                    break
        ending = 2 if last.endswith(b"\r\n") else 1 if last.endswith(b"\n") else 0
        yield number, raw, consumed - ending
        number += 1
        if left is not None:
            left -= consumed


def jsonl_item(
    name: str,
    number: int,
    raw: bytes,
    require_accessioned: bool,
    limits: Limits,
    size: int | None = None,
) -> Item | None:
    """The record on one line of a JSON Lines file (None for a blank line); `size`: the
    line's without its line end (see jsonl_lines; `raw` may be only its head)."""
    if size is None and len(raw) > limits.max_record_bytes:
        size = len(raw.rstrip(b"\r\n"))
    if size is not None and size > limits.max_record_bytes:
        head = raw[:HEAD].decode("utf-8", "replace")
        return LoadError(name, number, _guess_id(head), too_big(size, limits))
    if number == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if not raw.strip():
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson is stricter than JSON parsers need be (lone surrogate escapes, NaN, huge
        # numbers): the standard library decides, and words the message.
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return LoadError(name, number, None, "not UTF-8 text")
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            return LoadError(name, number, _guess_id(line), f"malformed JSON: {e.msg}")
        except RecursionError:
            return LoadError(name, number, _guess_id(line), TOO_DEEP)
        except ValueError:
            return LoadError(name, number, _guess_id(line), TOO_LONG)
    return _record(value, Source(name, number), require_accessioned, limits)


def _sized_record(
    value: Any,
    text: str,
    start: int,
    end: int,
    source: Source,
    require_accessioned: bool,
    limits: Limits,
) -> Draft | LoadError:
    """The record of a .json file, written from `start` to `end` in its text."""
    limit = limits.max_record_bytes
    if end - start > limit // 4:  # else it cannot be over: a character is at most 4 bytes
        size = len(text[start:end].encode("utf-8", "surrogatepass"))
        if size > limit:
            record_id = value.get("id") if isinstance(value, dict) else None
            record_id = record_id if isinstance(record_id, str) else None
            return LoadError(source.path, source.line, record_id, too_big(size, limits))
    return _record(value, source, require_accessioned, limits)


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words (the export's writer knows no Python type)."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: a bool is one in Python
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _record(
    value: Any, source: Source, require_accessioned: bool, limits: Limits
) -> Draft | LoadError:
    record_id = value.get("id") if isinstance(value, dict) else None
    record_id = record_id if isinstance(record_id, str) and record_id else None

    def fail(reason: str) -> LoadError:
        return LoadError(source.path, source.line, record_id, reason)

    if not isinstance(value, dict):
        return fail(f"a record must be a JSON object, not {_json_kind(value)}")
    if not RECORD_KEYS.issuperset(value):
        unknown = sorted(set(value) - RECORD_KEYS)
        return fail(f"unknown key(s) {', '.join(map(json_quoted, unknown[:10]))}")
    metadata = value.get("metadata", [])
    if not isinstance(metadata, list):
        return fail('"metadata" must be a list of {"field", "value", "lang"} objects')
    entries: list[tuple[Any, ...]]
    try:  # the usual case: every entry is {"field", "value"} or {"field", "value", "lang"}
        entries = [(entry["field"], entry["value"], entry.get("lang")) for entry in metadata]
        # Each has "field" and "value" (or a KeyError said not): it holds nothing else if
        # its size is 2, or 3 with a "lang". Summed for all of them, without a Python call
        # for each (a load checks millions), as each entry's excess is never below 0.
        langs = sum(map(contains, metadata, repeat("lang")))
        well_formed = sum(map(len, metadata)) == 2 * len(entries) + langs
    except (TypeError, KeyError, AttributeError):
        well_formed = False
    if not well_formed:
        for number, entry in enumerate(metadata, start=1):
            if not isinstance(entry, dict) or "field" not in entry or "value" not in entry:
                return fail(f'metadata entry {number} must be an object with "field" and "value"')
            if not ENTRY_KEYS.issuperset(entry):
                extra = ", ".join(map(json_quoted, sorted(set(entry) - ENTRY_KEYS)[:10]))
                return fail(f"metadata entry {number}: unknown key(s) {extra}")
        # Some entries carry an authority or a confidence (checked by make_draft).
        entries = [
            (e["field"], e["value"], e.get("lang"), e.get("authority"), e.get("confidence"))
            if "authority" in e or "confidence" in e
            else (e["field"], e["value"], e.get("lang"))
            for e in metadata
        ]
    files: tuple[File, ...] = ()
    if "files" in value:
        given = value["files"]
        if isinstance(given, list) and len(given) > limits.max_values:
            return fail(f"{len(given):,} files, over the limit of {limits.max_values:,} "
                        "([limits] max_values)")  # fmt: skip
        try:
            files = json_files(given)
        except ValueError as e:
            return fail(str(e))
    return draft_or_error(
        source,
        value.get("id"),
        value.get("sets", []),
        value.get("deleted", False),
        entries,
        require_accessioned=require_accessioned,
        limits=limits,
        files=files,
        quote=json_quoted,
    )


def json_files(value: Any) -> tuple[File, ...]:
    """A record's "files", checked; ValueError naming the entry and what is wrong."""
    if not isinstance(value, list):
        raise ValueError('"files" must be a list of {"name", "size", "md5"} objects')
    files: list[File] = []
    sequences: set[int] = set()
    for number, entry in enumerate(value, start=1):
        files.append(_json_file(number, entry))
        if files[-1].sequence in sequences:
            raise ValueError(f"files entry {number}: sequence {files[-1].sequence} is given twice")
        sequences.add(files[-1].sequence)
    return tuple(files)


def _json_file(number: int, entry: Any) -> File:
    where = f"files entry {number}"
    if not isinstance(entry, dict):
        raise ValueError(f'{where} must be an object with "name", "size" and "md5"')
    unknown = sorted(set(entry) - FILE_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(json_quoted, unknown[:10]))}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f'{where}: "name" must be a non-empty string, not {json_quoted(name)}')
    if has_illegal_characters(name):
        raise ValueError(f'{where}: "name" {json_quoted(name)} has characters XML cannot carry')
    # As SAF's `contents` (saf._bitstream): its link ([files] url) names the file under
    # the item's path, and `..` or a leading `/` would make it lead anywhere on the host.
    if (wrong := not_a_file_name(name)) is not None:
        raise ValueError(f'{where}: "name" {json_quoted(name)}: {wrong}: not a name inside the '
                         "item (its link would lead elsewhere)")  # fmt: skip
    where = f"{where} ({name})"
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < MAX_SIZE:
        raise ValueError(f'{where}: "size" must be a number of bytes, not {json_quoted(size)}')
    md5 = entry.get("md5")
    if not isinstance(md5, str) or not MD5.fullmatch(md5.lower()):
        raise ValueError(f'{where}: "md5" must be 32 hexadecimal digits, not {json_quoted(md5)}')

    def text(key: str, default: str | None = None) -> str | None:
        found = entry.get(key, default)
        if found is not None and (not isinstance(found, str) or not found.strip()):
            raise ValueError(
                f'{where}: "{key}" must be a non-empty string, not {json_quoted(found)}'
            )
        if key != "description" and found is not None and has_illegal_characters(found):
            # (a description is text, cleaned as values are; these are names and codes)
            raise ValueError(
                f'{where}: "{key}" {json_quoted(found)} has characters XML cannot carry'
            )
        return found.strip() if found is not None else None

    mime = text("mime")
    if mime is not None and not MIME.fullmatch(mime):
        raise ValueError(
            f'{where}: "mime" {json_quoted(mime)} is not a MIME type like application/pdf'
        )
    permissions = text("permissions")
    embargo = text("embargo")
    if embargo is not None:
        # DSpace's embargo: the anonymous READ policy starts at its end (files.embargo_of).
        if not EMBARGO.fullmatch(embargo) or embargo_of(f"-r 'Anonymous' {embargo}") is None:
            raise ValueError(
                f'{where}: "embargo" must be a date like 2027-01-31, not {json_quoted(embargo)}'
            )
        if permissions is not None:
            raise ValueError(f'{where}: "embargo" and "permissions": give the embargo as one or '
                             "the other (-r 'Anonymous' 2027-01-31)")  # fmt: skip
        permissions = f"-r 'Anonymous' {embargo}"
    access = text("access") or access_of(permissions)
    if access not in ACCESS:
        raise ValueError(
            f'{where}: "access" must be "open" or "restricted", not {json_quoted(access)}'
        )
    sequence = entry.get("sequence", number)
    if not isinstance(sequence, int) or isinstance(sequence, bool) or not 0 < sequence < 2**31:
        raise ValueError(
            f'{where}: "sequence" must be a positive integer, not {json_quoted(sequence)}'
        )
    primary = entry.get("primary", False)
    if not isinstance(primary, bool):
        raise ValueError(f'{where}: "primary" must be true or false, not {json_quoted(primary)}')
    return File(
        name=name,
        bundle=text("bundle") or ORIGINAL,
        size=size,
        md5=md5.lower(),
        mime=mime or mime_type(name),
        sequence=sequence,
        description=clean_text(description) if (description := text("description")) else None,
        primary=primary,
        access=access,
        permissions=permissions,
        uuid=text("uuid"),
    )


def _array(
    text: str,
    position: int,
    decoder: json.JSONDecoder,
    name: str,
    require_accessioned: bool,
    limits: Limits,
) -> Iterator[Item]:
    """Walk a top-level array element by element, so each record knows its line."""
    line, counted = 1, 0

    def line_at(target: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, target)
        counted = target
        return line

    position = _skip_space(text, position)
    if position < len(text) and text[position] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as e:
            yield _unreadable(e, text, position, name)
            return
        source = Source(name, line_at(position))
        yield _sized_record(value, text, position, end, source, require_accessioned, limits)
        position = _skip_space(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            if _skip_space(text, position + 1) != len(text):
                yield LoadError(name, _line(text, position), None, "malformed JSON: extra data")
            return
        yield LoadError(name, _line(text, position), None, "malformed JSON: expected ',' or ']'")
        return


def _unreadable(error: ValueError | RecursionError, text: str, start: int, name: str) -> LoadError:
    """The problem of a JSON value (starting at `start`) the parser could not read, at its
    line: where the syntax breaks, the value nested too deeply, the number too long."""
    if isinstance(error, json.JSONDecodeError):
        return LoadError(name, error.lineno, None, f"malformed JSON: {error.msg}")
    if isinstance(error, RecursionError):
        return LoadError(name, _line(text, start), None, TOO_DEEP)
    number = LONG_NUMBER.search(text, start)
    return LoadError(name, _line(text, number.start() if number else start), None, TOO_LONG)


def _sets_file(value: dict[str, Any], name: str, line: int) -> Iterator[Item]:
    sets = value["sets"]
    if set(value) != {"sets"} or not isinstance(sets, list):
        yield LoadError(name, line, None, 'a sets file is {"sets": [{"spec", "name"}, ...]}')
        return
    for entry in sets:
        try:
            yield make_set(Source(name, line), entry, json_quoted)
        except LoadError as e:
            yield e


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _guess_id(line: str) -> str | None:
    """The id of a record whose line is broken, if it can be read, for the message."""
    found = re.search(r'"id"\s*:\s*"([^"\\]{1,255})"', line)
    return found.group(1) if found else None
