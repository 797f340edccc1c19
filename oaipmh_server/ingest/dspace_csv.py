"""DSpace metadata CSV, as `dspace metadata-export` writes it.

An `id` column (the item's UUID), a `collection` column (owning collections' handles,
`||`-separated), and one column per field with an optional language: `dc.title[en]`. Cells
hold `||`-separated values; an empty cell is no value. The local id is the handle in
`dc.identifier.uri`, else the UUID, so an export of items loaded before from SAF updates
them instead of duplicating them. Problems name the file and the row's first line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import LoadError, quoted
from .drafts import Limits, Source, draft_or_error
from .json import Item
from .saf import collection_spec

SEPARATOR = "||"
COLUMN = re.compile(
    r"([a-z][a-z0-9]*\.[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z][A-Za-z0-9_-]*)?)(?:\[([^\]]*)\])?"
)
HANDLE = re.compile(r"(?:hdl\.handle\.net/|/handle/)([0-9.]+/[^/?#\s]+)/?$")
BOOKKEEPING = frozenset({"rowName", "action"})


def handle_of(uris: list[str]) -> str | None:
    for uri in uris:
        if m := HANDLE.search(uri.strip()):
            return m.group(1)
    return None


def read_csv_file(path: Path, *, require_accessioned: bool, limits: Limits) -> Iterator[Item]:
    name = str(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as e:
        yield LoadError.unreadable(name, e)
        return
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except (StopIteration, csv.Error, UnicodeDecodeError):
            yield LoadError(name, 1, None, "no header row")
            return
        columns: list[tuple[str, str | None] | None] = []
        for title in header:
            if title in ("id", "collection") or title in BOOKKEEPING:
                columns.append(None)
                continue
            m = COLUMN.fullmatch(title)
            if m is None:
                yield LoadError(
                    name, 1, None, f"column {quoted(title)} is not a field like dc.title[en]"
                )
                return
            columns.append((m.group(1), m.group(2)))
        if "id" not in header:
            yield LoadError(name, 1, None, "no id column")
            return
        where: dict[str, int] = {t: header.index(t) for t in ("id", "collection") if t in header}
        start = 2
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                yield LoadError(name, start, None, f"malformed CSV: {e}")
                return
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            yield _row(name, line, row, columns, where, require_accessioned, limits)


def _row(
    name: str,
    line: int,
    row: list[str],
    columns: list[tuple[str, str | None] | None],
    where: dict[str, int],
    require_accessioned: bool,
    limits: Limits,
) -> Item:
    if len(row) != len(columns):
        return LoadError(name, line, None, f"{len(row)} cells for {len(columns)} columns")
    uuid = row[where["id"]].strip()
    fields = [
        (column[0], value, column[1] or None)
        for column, cell in zip(columns, row, strict=True)
        if column is not None and cell
        for value in cell.split(SEPARATOR)
    ]
    uris = [v for f, v, _ in fields if f == "dc.identifier.uri"]
    local_id = handle_of(uris) or uuid
    if not local_id:
        return LoadError(name, line, None, "no id: no handle in dc.identifier.uri and no UUID")
    collections = row[where["collection"]] if "collection" in where else ""
    sets = [collection_spec(h) for h in collections.split(SEPARATOR) if h.strip()]
    return draft_or_error(
        Source(name, line),
        local_id,
        sets,
        False,
        fields,
        require_accessioned=require_accessioned,
        limits=limits,
    )
