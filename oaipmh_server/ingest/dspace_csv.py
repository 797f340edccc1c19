"""DSpace metadata CSV, as `dspace metadata-export` writes it.

An `id` column (the item's UUID), a `collection` column (owning collections' handles,
`||`-separated), and one column per field with an optional language: `dc.title[en]`. Cells
hold `||`-separated values; an empty cell is no value, nor is an empty value between
separators (`a||||b` is two values). A controlled value is written
`value::authority::confidence` (`Wang, D::0000-0002-1825-0097::600`): its authority and
confidence are kept with it, not in it, read as DSpace's metadata-import reads them. The
local id is the handle in
`dc.identifier.uri`, else the UUID, so an export of items loaded before from SAF updates
them instead of duplicating them. Problems name the file and the row's first line.

A row is a part of a record: the loader merges it with the stored record
(`csv_merge.merge_fields`), as DSpace's metadata-import changes only the columns present,
with or without a dc.date.accessioned column (`-a`). A row for a record not yet stored is
the whole record, which needs its dc.date.accessioned (an `-a` export) to be dated.
An `action` column is read as DSpace's metadata-import reads it: `withdraw` or `expunge`
makes the row's item a tombstone (DSpace's OAI serves a withdrawn item as deleted), no
date needed; `reinstate` or an empty cell is a row like any other (one for a tombstone is
the whole record, published again); any other value is refused, as DSpace refuses it.

A column given twice in the header (`id`, or a field's: `dc.title[en]`) is refused, as
DSpace's reader refuses a repeated heading.

Columns are separated with `,`, as DSpace writes and reads them; a header separated with
`;` or a tab (a spreadsheet's "CSV" in a European locale) is refused in one line saying so.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import LoadError, quoted
from .csv_merge import column_key
from .drafts import ACCESSIONED, Limits, Source, draft_or_error, too_big
from .json import Item
from .saf import collection_spec

SEPARATOR = "||"
AUTHORITY_SEPARATOR = "::"  # DSpace's bulkedit.authorityseparator, by default
# What Java's Integer.parseInt reads (the confidence's part of a cell), of at most 10 digits.
CONFIDENCE = re.compile(r"[+-]?[0-9]{1,10}", re.ASCII)
INT_RANGE = range(-(2**31), 2**31)
COLUMN = re.compile(
    r"([a-z][a-z0-9]*\.[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z][A-Za-z0-9_-]*)?)(?:\[([^\]]*)\])?"
)
# A handle URL of any prefix: DSpace's prefixes are digits and dots (`10722`, `20.500.1`) or
# letters (`DICT`, as in DSpace's own test data), the suffix anything up to the next `/`.
HANDLE_ID = r"(?:[0-9]+(?:\.[0-9]+)*|[A-Za-z][A-Za-z0-9]*)/[^/?#\s]+"  # PREFIX/SUFFIX
HANDLE = re.compile(rf"(?:hdl\.handle\.net/|/handle/)({HANDLE_ID})/?$")
NEW_ITEM = "+"  # metadata-import's id for an item it is to create
LONE_CR = re.compile(rb"(?<=\r)(?!\n|$)")  # between a CR that ends a line and the next
BOOKKEEPING = frozenset({"rowName"})
# The columns a row's item is read from, one value each: the same one twice would leave
# which of them is the item's to chance, so a header holding one twice is refused.
ITEM_COLUMNS = ("id", "collection", "action")
ONE_OF_EACH = "a row has one of each"
# A field's column twice: DSpace's CSV reader refuses the file ("Duplicate heading found"),
# so no export holds one, and joining the two columns' values would be a guess. Headings
# are told apart by their text, as there: `dc.title[en_US]` beside `dc.title[en-US]` is not
# refused (the values of both are loaded).
DUPLICATE_HEADING = (
    "DSpace's metadata-import refuses a heading given twice; give the field's values in "
    "one column, separated by ||"
)
# The `action` column's values (DSpace's metadata-import), an empty cell being none: an
# item withdrawn (or expunged: deleted from DSpace) is a deleted record in DSpace's OAI, so
# here a tombstone; one reinstated is published again, as any row's item is.
WITHDRAWING = frozenset({"withdraw", "expunge"})
ACTIONS = frozenset({"", "reinstate", *WITHDRAWING})


def controlled(name: str, value: str, lang: str | None) -> tuple[Any, ...]:
    """One value of a cell as a field entry: (name, value, lang), or with the authority
    and confidence DSpace writes after it, (name, value, lang, authority, confidence).

    As DSpace's metadata-import reads `value::authority::confidence`: split at every `::`
    (trailing empty parts dropped, as Java's split does), the last part the confidence if
    it is an integer, the one before it the authority, the rest (joined again) the value;
    anything else (`a::b`, `ratio 1::2::x`) is a value of its own, `::` and all."""
    if AUTHORITY_SEPARATOR not in value:
        return name, value, lang
    parts = value.split(AUTHORITY_SEPARATOR)
    while parts and not parts[-1]:
        parts.pop()
    if len(parts) < 3 or not CONFIDENCE.fullmatch(parts[-1]):
        return name, value, lang
    confidence = int(parts[-1])
    if confidence not in INT_RANGE:
        return name, value, lang
    return name, AUTHORITY_SEPARATOR.join(parts[:-2]), lang, parts[-2], confidence


def handle_of(uris: list[str]) -> str | None:
    for uri in uris:
        if m := HANDLE.search(uri.strip()):
            return m.group(1)
    return None


class _Unreadable(Exception):
    """A physical line of the file that cannot be handed to the CSV parser."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.reason = line, reason


def _lines(handle: BinaryIO, limits: Limits) -> Iterator[str]:
    """The file's lines, decoded one by one (so a byte that is not UTF-8 is reported on its
    own line, not on the line being read when the decoder's buffer reached it), none held
    longer than a record may be. Lines end with LF, CRLF or a lone CR, as the csv module
    reads them."""
    limit = limits.max_record_bytes
    number = 0
    for read in iter(lambda: handle.readline(limit + 2), b""):
        if len(read) == limit + 2 and not read.endswith(b"\n"):
            raise _Unreadable(
                number + 1, f"a line of more than {limit:,} bytes ([limits] max_record_bytes)"
            )
        for raw in LONE_CR.split(read) if b"\r" in read else (read,):
            number += 1
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise _Unreadable(number, "not UTF-8 text") from None


def foreign_separator(header: str) -> str | None:
    """The separator a header line uses instead of DSpace's `,` (`';'`, as a spreadsheet set
    to a European locale saves "CSV", or `a tab`), or None. Such a file read with `,` is one
    column named after the whole line: refused, as DSpace's metadata-import refuses it,
    naming the separator rather than that column."""
    if "," in header:
        return None
    semicolons, tabs = header.count(";"), header.count("\t")
    if not semicolons and not tabs:
        return None
    return "';'" if semicolons >= tabs else "a tab"


def read_csv_file(path: Path, *, require_accessioned: bool, limits: Limits) -> Iterator[Item]:
    name = str(path)
    try:
        handle = path.open("rb")
    except OSError as e:
        yield LoadError.unreadable(name, e)
        return
    # The csv module's cell limit (process-wide) is a record's: a cell longer than that is
    # refused by the parser, one within it by the same checks as a JSON record's values.
    previous = csv.field_size_limit(limits.max_record_bytes)
    try:
        with handle:
            lines = _lines(handle, limits)
            header = next(lines, "")
            separator = foreign_separator(header)
            if separator is not None:
                yield LoadError.at(
                    name, 1,
                    f"the header separates its columns with {separator}, where DSpace writes "
                    "',' (a spreadsheet's CSV in another list separator): save it "
                    "comma-separated, as DSpace's metadata-import reads only that",
                )  # fmt: skip
                return
            yield from _rows(name, csv.reader(itertools.chain((header,), lines), strict=True),
                             require_accessioned, limits)  # fmt: skip
    except _Unreadable as e:
        yield LoadError(name, e.line, None, e.reason)
    finally:
        csv.field_size_limit(previous)


def _rows(name: str, reader: Any, require_accessioned: bool, limits: Limits) -> Iterator[Item]:
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        yield LoadError.at(name, 1, "no header row")
        return
    columns: list[tuple[str, str | None] | None] = []
    firsts: dict[str, int] = {}
    for number, title in enumerate(header, start=1):
        first = number if title in BOOKKEEPING else firsts.setdefault(title, number)
        if first < number:
            why = ONE_OF_EACH if title in ITEM_COLUMNS else DUPLICATE_HEADING
            yield LoadError.at(name, 1, f"two {quoted(title)} columns (columns {first} and "
                               f"{number}): {why}")  # fmt: skip
            return
        if title in ITEM_COLUMNS or title in BOOKKEEPING:
            columns.append(None)
            continue
        m = COLUMN.fullmatch(title)
        if m is None:
            yield LoadError.at(name, 1, f"column {quoted(title)} is not a field like dc.title[en]")
            return
        columns.append((m.group(1), m.group(2)))
    if "id" not in header:
        yield LoadError.at(name, 1, "no id column")
        return
    where: dict[str, int] = {t: header.index(t) for t in ITEM_COLUMNS if t in header}
    # Each row changes only its columns of the stored record, as DSpace's metadata-import
    # does; an export with dc.date.accessioned (-a) has more columns, nothing else. Without
    # that column (the default export) a row cannot be a new record unless the load may
    # date it by its time (see load._merged).
    partial = frozenset(column_key(*c) for c in columns if c is not None)
    all_metadata = any(c is not None and c[0] == ACCESSIONED for c in columns)
    start = 2
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            reason = f"malformed CSV: {e}"
            if "field limit" in str(e):
                reason = (
                    f"a cell of more than {limits.max_record_bytes:,} characters "
                    "([limits] max_record_bytes)"
                )
            yield LoadError(name, start, None, reason)
            return
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        yield _row(name, line, row, columns, where, require_accessioned and all_metadata,
                   limits, partial)  # fmt: skip


def _row(
    name: str,
    line: int,
    row: list[str],
    columns: list[tuple[str, str | None] | None],
    where: dict[str, int],
    require_accessioned: bool,
    limits: Limits,
    partial: frozenset[tuple[str, str | None]],
) -> Item:
    if len(row) != len(columns):
        return LoadError(name, line, None, f"{len(row)} cells for {len(columns)} columns")
    uuid = row[where["id"]].strip()
    fields = [
        (column[0], value, column[1] or None)
        if AUTHORITY_SEPARATOR not in value  # most values: no call for them
        else controlled(column[0], value, column[1] or None)
        for column, cell in zip(columns, row, strict=True)
        if column is not None and cell
        for value in cell.split(SEPARATOR)
        if value  # `a||||b`, `||`: no empty value between separators
    ]
    uris = [f[1] for f in fields if f[0] == "dc.identifier.uri"]
    local_id = handle_of(uris) or uuid
    if not local_id:
        return LoadError(name, line, None, "no id: no handle in dc.identifier.uri and no UUID")
    if local_id.startswith(NEW_ITEM):  # an id of its own, never the `+`
        return LoadError(
            name,
            line,
            None,
            f"{quoted(uuid)} in the id column is an item DSpace has not created yet: it has no "
            "UUID or handle to be served by; import it into DSpace and export again, or give "
            "its handle in dc.identifier.uri",
        )
    if sum(map(len, row)) > limits.max_record_bytes // 4:  # else it cannot be over
        size = sum(len(cell.encode("utf-8", "surrogatepass")) for cell in row)
        if size > limits.max_record_bytes:
            return LoadError(name, line, local_id, too_big(size, limits))
    collections = row[where["collection"]] if "collection" in where else ""
    try:
        sets = [collection_spec(h) for h in collections.split(SEPARATOR) if h.strip()]
    except ValueError as e:
        return LoadError(name, line, local_id, f"collection {e}")
    action = row[where["action"]].strip() if "action" in where else ""
    if action not in ACTIONS:
        return LoadError(
            name, line, local_id,
            f"action {quoted(action)} is not one of DSpace's metadata-import actions: "
            "expunge, withdraw or reinstate (an empty cell: none)",
        )  # fmt: skip
    if action in WITHDRAWING:
        # A tombstone, whatever its other cells say (a tombstone has no metadata), in the
        # row's collections if it names any, else where the item is; still a row of a
        # CSV (`partial`), which no --sync takes for the whole repository.
        return draft_or_error(Source(name, line), local_id, sets, True, (),
                              require_accessioned=False, limits=limits, partial=partial,
                              keeps_sets=not sets)  # fmt: skip
    return draft_or_error(
        Source(name, line),
        local_id,
        sets,
        False,
        fields,
        require_accessioned=require_accessioned,
        limits=limits,
        files=None,  # DSpace's metadata-import never touches bitstreams: the stored stay
        partial=partial,
        # No collection (no column, or an empty cell): the item stays where it is, as
        # DSpace's items never leave their owning collection for none.
        keeps_sets=not sets,
    )
