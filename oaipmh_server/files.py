"""A record's files (DSpace bitstreams): which are content, which anonymous users may read,
and the links to them.

DSpace keeps an item's content in its ORIGINAL bundle; THUMBNAIL, TEXT and LICENSE hold
what DSpace derived or attached. DSpace's OAI crosswalks look at ORIGINAL only (oai_dc's
`dc:format`, oai_openaire's `oaire:file`), and so do the formats and pages here: the other
bundles' files are kept with the record (a re-load compares them, they cost nothing to
harvests) but never shown.

A record's access right is its files' (`access_status`), worked out as DSpace's
AccessStatus plugin does (DefaultAccessStatusHelper, which its oai_openaire crosswalk
reads through AccessStatusElementItemCompilePlugin): the primary ORIGINAL file, or else
the first, decides. Anonymous users may read it: open access; its anonymous READ policy
starts at a date still to come (DSpace's embargo, `-r 'Anonymous' 2027-01-01` in
`contents`, `"embargo"` in JSON): embargoed access until that date; anonymous users may
not read it: restricted access; no ORIGINAL file: metadata only access. oai_openaire's
datacite:rights and oaire:file, the virtual sets' access_right condition, `check` and the
record page all ask this module, so they never disagree; an embargo ends by the calendar,
not by a reload.

The server does not serve bitstreams: DSpace (or whatever holds them) does. A link is the
configured pattern (`[files] url`) filled in for one file; a file anonymous users may not
read is never linked, and there is no link at all without a pattern (or without what it
asks for: `{base}` without a configured baseURL, `{uuid}` for a file that has none).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import NamedTuple
from urllib.parse import quote

from .names import not_a_file_name
from .record_source import File

ORIGINAL = "ORIGINAL"
OPEN = "open"
RESTRICTED = "restricted"
ACCESS = (OPEN, RESTRICTED)
ANONYMOUS = "anonymous"
PLACEHOLDERS = frozenset({"base", "handle", "name", "sequence", "uuid"})
# DSpace's permissions option: a flag (-r read, -w write), then the group, in single quotes
# or as the rest of the text (ItemImportServiceImpl.processOptions); after a quoted group,
# the date the policy starts (an embargo's end), which DSpace's import reads past.
_PERMISSIONS = re.compile(
    r"\s*-([rRwW])\s*(?:'([^']*)'?(?:\s+([0-9]{4}-[0-9]{2}-[0-9]{2}))?|(.*))\s*$"
)
# COAR access right labels (vocabularies.ACCESS_RIGHTS), as AccessStatus gives them.
OPEN_ACCESS = "open access"
EMBARGOED_ACCESS = "embargoed access"
RESTRICTED_ACCESS = "restricted access"
METADATA_ONLY_ACCESS = "metadata only access"


# Which rule decides a record's access right, part of what stored renderings and virtual
# sets were made with: another rule renders and evaluates them again at the next load.
ACCESS_RULE = "access status of the files (DSpace's AccessStatus)"


class AccessStatus(NamedTuple):
    """A file's or record's access right (a COAR label) and, under an embargo, its end."""

    label: str
    embargo_end: date | None = None


class LinkedFile(NamedTuple):
    """A file as the formats and pages are given it: the stored file and its link (None:
    not linked, because anonymous users may not read it or no link can be made)."""

    file: File
    url: str | None


def access_of(permissions: str | None) -> str:
    """Whether anonymous users may read a file imported with DSpace's `permissions:` option.

    DSpace replaces every policy of the bitstream with the one given: `-r 'Anonymous'`
    leaves it readable by anyone; a read for another group, or a write (`-w`, which gives
    no read at all), leaves anonymous users out. No option, or one DSpace ignores (no
    flag it knows), keeps the collection's default policy, anonymous read in DSpace's
    default configuration."""
    if permissions is None:
        return OPEN
    found = _PERMISSIONS.match(permissions)
    if found is None:
        return OPEN  # DSpace: "invalid permissions flag, permissions set to default"
    flag, quoted, start, bare = found.groups()
    group = (quoted if quoted is not None else bare or "").strip()
    if not group:
        return OPEN  # no group DSpace could find: the default stays
    anonymous_read = flag.lower() == "r" and group.lower() == ANONYMOUS
    return OPEN if anonymous_read and start is None else RESTRICTED


def embargo_of(permissions: str | None) -> date | None:
    """The date an anonymous READ policy starts (`-r 'Anonymous' 2027-01-01`): the end of
    the file's embargo; None for any other permissions (or a date that is none)."""
    found = _PERMISSIONS.match(permissions) if permissions is not None else None
    if found is None or found.group(3) is None:
        return None
    flag, quoted = found.group(1), found.group(2) or ""
    if flag.lower() != "r" or quoted.strip().lower() != ANONYMOUS:
        return None
    try:
        return date.fromisoformat(found.group(3))
    except ValueError:
        return None


def today() -> date:
    return datetime.now(UTC).date()


def file_status(file: File, on: date | None = None) -> AccessStatus:
    """A file's access right `on` a day (today): an anonymous READ policy starting later is
    an embargo until then, one started is open access; else the file's `access`."""
    end = embargo_of(file.permissions)
    if end is not None:
        if end > (on or today()):
            return AccessStatus(EMBARGOED_ACCESS, end)
        return AccessStatus(OPEN_ACCESS)
    return AccessStatus(OPEN_ACCESS if file.access == OPEN else RESTRICTED_ACCESS)


def access_status(files: Iterable[File], on: date | None = None) -> AccessStatus:
    """A record's access right from its files, as DSpace's DefaultAccessStatusHelper
    works it out: its primary ORIGINAL file's (or else the first one's), or metadata only
    access without an ORIGINAL file."""
    decides = primary(list(files))
    if decides is None:
        return AccessStatus(METADATA_ONLY_ACCESS)
    return file_status(decides, on)


def content(files: Iterable[File]) -> list[File]:
    """The ORIGINAL bundle's files, in sequence order: the record's content."""
    return sorted((f for f in files if f.bundle == ORIGINAL), key=lambda f: f.sequence)


def is_open(file: File) -> bool:
    """Whether anonymous users may read the file (today: an embargo ends by the date)."""
    return file_status(file).label == OPEN_ACCESS


def has_open_file(files: Iterable[File]) -> bool:
    """Whether the record has content anyone may read (an ORIGINAL file open to anonymous
    users): OpenAIRE's and DRIVER's "open access with a file"."""
    return any(f.bundle == ORIGINAL and is_open(f) for f in files)


def primary(files: Sequence[File]) -> File | None:
    """The ORIGINAL file marked primary, or else the first (as DSpace's OAI item marks it)."""
    original = content(files)
    return next((f for f in original if f.primary), original[0] if original else None)


def pattern_problem(pattern: str) -> str | None:
    """What is wrong with a `[files] url` pattern (None: nothing)."""
    if not pattern:
        return None
    try:
        names = {name for _, name, spec, conversion in string.Formatter().parse(pattern)
                 if name is not None}  # fmt: skip
    except ValueError as e:
        return f"{pattern!r} is not a pattern: {e}"
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
        return f"unknown placeholder(s) {', '.join(map(repr, unknown))}: there are {known}"
    if not re.match(r"(\{base\}|https?://)", pattern):
        return f"{pattern!r} must begin with {{base}} or http(s)://"
    return None


class Linker:
    """The links of records' files, by the `[files] url` pattern. `{base}` is the server's
    root: the configured baseURL without its `/oai…` path (DSpace serves /oai and
    /bitstream on one host); `{handle}` the record's local id; `{name}` the file's name,
    URL-quoted with its `/` kept (DSpace's sub-folder names); `{sequence}`, `{uuid}`."""

    def __init__(self, pattern: str, root: str) -> None:
        self.pattern = pattern
        self.root = root
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name}
        self.needs_base = "base" in names
        self.needs_uuid = "uuid" in names

    def url(self, local_id: str, file: File) -> str | None:
        """The file's link; None if it has none: not open, not configured, or a name that
        would lead out of the item (stored before loads refused such names)."""
        if not self.pattern or not is_open(file) or not_a_file_name(file.name) is not None:
            return None
        if (self.needs_base and not self.root) or (self.needs_uuid and not file.uuid):
            return None
        return self.pattern.format(
            base=self.root,
            handle=quote(local_id, safe="/"),
            name=quote(file.name, safe="/"),
            sequence=file.sequence,
            uuid=quote(file.uuid or "", safe=""),
        )

    def linked(self, local_id: str, files: Iterable[File]) -> tuple[LinkedFile, ...]:
        """The record's content files (ORIGINAL, in sequence order), each with its link."""
        return tuple(LinkedFile(f, self.url(local_id, f)) for f in content(files))
