"""The configuration reference, rendered from config/oaipmh.toml at build time.

The shipped TOML documents every key in place, in the comment above it; this MkDocs hook
turns that file into the manual's reference page, so the reference is never written twice
and cannot drift from the defaults the server reads. In a page, what lies from MARKER to
END (a note for readers of the unbuilt page) is replaced by one section per table: the
comment above the table header, then each key's comment followed by its TOML lines as the
file writes them (default values included).
"""

from __future__ import annotations

import html
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "<!-- configuration reference: generated from config/oaipmh.toml -->"
END = "<!-- end of the configuration reference -->"
TOML = Path(__file__).resolve().parents[2] / "config" / "oaipmh.toml"

_TABLE = re.compile(r"^\[([A-Za-z0-9_.\-]+)\]\s*$")
_KEY = re.compile(r'^("(?:[^"\\]|\\.)*"|[A-Za-z0-9_\-]+)\s*=')


@dataclass
class Entry:
    """A key (or a run of keys without comments of their own) with the comment above it."""

    comment: list[str]
    lines: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


@dataclass
class Table:
    name: str
    comment: list[str]
    notes: list[list[str]] = field(default_factory=list)  # comments standing alone
    entries: list[Entry | list[str]] = field(default_factory=list)


def _depth(line: str) -> int:
    """How many brackets/braces a value line leaves open (strings and comments aside)."""
    depth, quote, i = 0, "", 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            break
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        i += 1
    return depth


def parse(text: str) -> tuple[list[str], list[Table]]:
    """The file's opening comment, and its tables in file order with their comments."""
    intro: list[str] = []
    tables: list[Table] = []
    pending: list[str] = []  # the comment block just read, not yet given to anything
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped[1:].removeprefix(" ") if stripped != "#" else "")
        elif not stripped:
            if pending:  # a comment followed by a blank line stands alone
                if tables:
                    tables[-1].entries.append(pending)
                else:
                    intro.extend([*([""] if intro else []), *pending])
                pending = []
        elif table := _TABLE.match(stripped):
            tables.append(Table(table.group(1), pending))
            pending = []
        elif key := _KEY.match(line):
            value = [line]
            depth = _depth(line)
            while depth > 0 and i + 1 < len(lines):
                i += 1
                value.append(lines[i])
                depth += _depth(lines[i])
            name = key.group(1)
            name = tomllib.loads(f"{name} = 0").popitem()[0]
            last = tables[-1].entries[-1] if tables[-1].entries else None
            if not pending and isinstance(last, Entry):
                last.lines.extend(value)
                last.keys.append(name)
            else:
                tables[-1].entries.append(Entry(pending, value, [name]))
            pending = []
        else:
            raise ValueError(f"config reference: cannot read line {i + 1}: {line!r}")
        i += 1
    return intro, tables


def _prose(comment: list[str]) -> str:
    """A comment as Markdown: prose paragraphs, or as written when it is laid out by hand."""
    if not any(comment):
        return ""
    if any(line.startswith("  ") for line in comment):
        return "```text\n" + "\n".join(comment) + "\n```\n"
    paragraphs = "\n".join(comment).split("\n\n")
    return "\n\n".join(_inline(" ".join(p.split("\n"))) for p in paragraphs) + "\n"


def _inline(text: str) -> str:
    """Plain comment text made safe for Markdown; `code spans` are kept as they are."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans
        parts = [text.replace("`", "\\`")]
    for n in range(0, len(parts), 2):
        escaped = html.escape(parts[n], quote=False)
        parts[n] = re.sub(r"([\\*_\[\]])", r"\\\1", escaped)
    return "`".join(parts)


def anchor(table: str) -> str:
    """The id of a table's section: its name with dots as hyphens (`oai_dc-map`)."""
    return table.replace(".", "-")


def render(text: str) -> str:
    """The reference page's body for a TOML file written as config/oaipmh.toml is."""
    tomllib.loads(text)  # a file TOML cannot read is an error here, not a wrong page
    intro, tables = parse(text)
    out = [_prose(intro)]
    for table in tables:
        out.append(f"## `[{table.name}]` {{#{anchor(table.name)}}}\n")
        if table.comment:
            out.append(_prose(table.comment))
        for entry in table.entries:
            if isinstance(entry, list):
                out.append(_prose(entry))
                continue
            if entry.comment:
                out.append(_prose(entry.comment))
            out.append("```toml\n" + "\n".join(entry.lines) + "\n```\n")
    return "\n".join(out)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: put the rendered reference where a page holds the markers."""
    if MARKER not in markdown:
        return markdown
    before, rest = markdown.split(MARKER, 1)
    if END not in rest:
        raise ValueError(f"config reference: {MARKER} without {END}")
    return before + render(TOML.read_text("utf-8")) + rest.split(END, 1)[1]


def on_serve(server: Any, **_: Any) -> Any:
    """MkDocs hook: `mkdocs serve` rebuilds when the TOML changes."""
    server.watch(str(TOML))
    return server
