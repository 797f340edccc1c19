"""Every way a request or a load can fail, as exceptions that carry their data.

OAI-PMH errors (section 3.6 of the specification) are answered inside an HTTP 200 reply;
`protocol.respond` answers them, in `xml.envelope` with `xml.error_elements`; nothing else
writes `<error>`.
"""

from __future__ import annotations

import json
import reprlib
from datetime import datetime
from itertools import islice
from typing import Any, ClassVar

# Characters of a value (an id, a field's value, a file's text) that a message shows: enough
# to find it, never a whole file's content or a screenful.
MAX_SHOWN = 80
# A reason is made of shown values and fixed text; past this it is cut all the same.
MAX_REASON = 1000
# Of a record id that is not one (an id is at most 255 characters), only this much is kept.
MAX_KEPT_ID = 1000


class OAIError(Exception):
    """A protocol error: an <error> element inside an HTTP 200 reply, never a 4xx or 5xx."""

    code: ClassVar[str]
    # 3.2: for badVerb and badArgument the <request> element carries no attributes, since
    # the arguments themselves are what is wrong.
    echo_arguments: ClassVar[bool] = True

    def __init__(self, message: str, *, response_date: datetime | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The responseDate of its reply, when not the moment of the request: a list's
        # noRecordsMatch is as of the list's cut-off (see protocol._list).
        self.response_date = response_date


class BadArgument(OAIError):
    """Illegal, missing, repeated or malformed arguments."""

    code = "badArgument"
    echo_arguments = False


class BadResumptionToken(OAIError):
    """The token is forged, damaged, or belongs to another verb."""

    code = "badResumptionToken"


class BadVerb(OAIError):
    """The verb is missing, repeated or not one of the six."""

    code = "badVerb"
    echo_arguments = False


class CannotDisseminateFormat(OAIError):
    """The metadataPrefix is not a format this repository (or this item) offers."""

    code = "cannotDisseminateFormat"


class IdDoesNotExist(OAIError):
    """The identifier is unknown or illegal in this repository."""

    code = "idDoesNotExist"


class NoRecordsMatch(OAIError):
    """The combination of from, until, set and metadataPrefix selects nothing."""

    code = "noRecordsMatch"


class NoMetadataFormats(OAIError):
    """No metadata formats are available for the item."""

    code = "noMetadataFormats"


class NoSetHierarchy(OAIError):
    """The repository has no sets, so it cannot answer ListSets or set-selective harvests."""

    code = "noSetHierarchy"


ERRORS: dict[str, type[OAIError]] = {
    cls.code: cls
    for cls in (
        BadArgument,
        BadResumptionToken,
        BadVerb,
        CannotDisseminateFormat,
        IdDoesNotExist,
        NoRecordsMatch,
        NoMetadataFormats,
        NoSetHierarchy,
    )
}


class StoreUnavailable(Exception):
    """The database cannot be reached or is locked: a 503 with Retry-After, not an OAI error."""


class CannotWrite(StoreUnavailable):
    """This process may not write the store (a read-only role, a hot standby, SQLite opened
    with mode=ro): a write asked of it cannot run here at all. Said as that, and where to
    run it, not as a database failure to try again."""


class SchemaTooNew(StoreUnavailable):
    """The database's schema is at a revision this program's migrations do not know: a
    newer oaipmh-server migrated it. Raised when the store is opened, before anything is
    served or written, with one sentence naming the revision and the version needed."""


class SchemaOutdated(StoreUnavailable):
    """The database's schema is older than this program's and this process cannot migrate
    it (a read-only role, a hot standby): one sentence saying who can, raised when the
    store is opened."""


class BackupFailed(Exception):
    """`oaipmh-server backup` could not make a complete copy; an earlier one is kept."""


class CopyRefused(Exception):
    """`oaipmh-server copy` could not copy the store, in one sentence; the target database
    is as it was."""


class LoadBusy(Exception):
    """Another load is writing to the store (the message says whose, since when) and this
    one was told not to wait for it."""


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message names the key and its source.

    `settings` names the settings it is about, so `oaipmh-server config check` can put them
    back to their defaults and look for the next mistake; `problems` holds each mistake on
    its own when one error stands for several (production mode's requirements)."""

    def __init__(
        self, message: str, settings: tuple[str, ...] = (), problems: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.settings = settings
        self.problems = problems or (message,)


def escaped(text: str) -> str:
    """`text` with every character a terminal would act on (control characters, escape
    sequences, bidirectional overrides, line breaks) written as Python writes it in a
    string literal (`\\x1b`, `\\u202e`, `\\n`), so a message shows what is there and can
    neither clear the screen nor hide part of itself."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def excerpt(text: str, limit: int = MAX_SHOWN) -> str:
    """A value as a message shows it, unquoted: escaped, and cut after `limit` characters."""
    if len(text) <= limit:
        return escaped(text)
    return escaped(text[:limit]) + "…"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_SHOWN
_REPR.maxlevel = 3


def quoted(value: object, limit: int = MAX_SHOWN) -> str:
    """A value as a message shows it, quoted as Python would (`'soon'`); long strings cut
    after `limit` characters (`'aaaa…'`), other values (a list, a number of 5,000 digits)
    shortened at every level. Every value a load message quotes goes through here, or,
    read from a JSON file, through `json_quoted`."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        text = repr(value[:limit])
        return f"{text[:-1]}…{text[-1]}"
    try:
        return _REPR.repr(value)
    except ValueError:  # an int too long to turn into digits
        return f"<{type(value).__name__}>"


def _json_escape(character: str) -> str:
    """A character JSON may hold unescaped but a terminal would act on, as JSON escapes it
    (`\\u202e`; beyond U+FFFF as a surrogate pair, the one way JSON can)."""
    code = ord(character)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _json_string(text: str) -> str:
    """`text` as JSON writes it, with every character a terminal would act on escaped."""
    written = json.dumps(text, ensure_ascii=False)
    if written.isprintable():
        return written
    return "".join(c if c.isprintable() else _json_escape(c) for c in written)


class _JsonRepr(reprlib.Repr):
    """reprlib's shortening at every level, in JSON's words: null, true, "text", [1, 2],
    keys in the order the file gave them."""

    def repr_str(self, x: str, level: int) -> str:
        if len(x) <= self.maxstring:
            return _json_string(x)
        written = _json_string(x[: self.maxstring])
        return f"{written[:-1]}…{written[-1]}"

    def repr_NoneType(self, x: None, level: int) -> str:
        return "null"

    def repr_bool(self, x: bool, level: int) -> str:
        return "true" if x else "false"

    def repr_float(self, x: float, level: int) -> str:
        return json.dumps(x)  # Infinity, as Python's json reads 1e400

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # too long to turn into digits
            return "a number too long to show"

    def repr_list(self, x: list[Any], level: int) -> str:
        if not x or level <= 0:
            return "[...]" if x else "[]"
        pieces = [self.repr1(item, level - 1) for item in islice(x, self.maxlist)]
        return "[" + ", ".join(pieces + ["..."] * (len(x) > self.maxlist)) + "]"

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x or level <= 0:
            return "{...}" if x else "{}"
        pieces = [
            f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}"
            for key, value in islice(x.items(), self.maxdict)
        ]
        return "{" + ", ".join(pieces + ["..."] * (len(x) > self.maxdict)) + "}"


_JSON_REPR = _JsonRepr()
_JSON_REPR.maxstring = _JSON_REPR.maxother = MAX_SHOWN
_JSON_REPR.maxlevel = 3


def json_quoted(value: object) -> str:
    """A value read from a JSON file as a message shows it: as JSON writes it (`null`,
    `true`, `"soon"`, `[1, "a"]`), since whoever wrote the file knows no Python; shortened
    and escaped as `quoted` does, so it can neither flood nor drive the terminal."""
    return _JSON_REPR.repr(value)


class LoadError(Exception):
    """One problem in a record file: where it is, which record, and what is wrong.

    What it shows comes from the file, written by whoever made the export: its message
    escapes control characters and shortens long values (`excerpt`), so a hostile id or
    value can neither drive the terminal nor flood it."""

    def __init__(
        self,
        path: str,
        line: int | None,
        record_id: str | None,
        reason: str,
        about_record: bool = True,
    ) -> None:
        """`record_id` None with `about_record` is a record whose id could not be read
        (`record ?`); `about_record` False is a problem of the file itself at that line (a
        CSV header, a structure export's community, a worker that stopped there), which
        names no record at all."""
        self.path = path
        self.line = line
        self.about_record = about_record
        if record_id is not None and len(record_id) > MAX_KEPT_ID:
            record_id = record_id[:MAX_KEPT_ID]  # up to 1,000 problems are kept: bound them
        self.record_id = record_id
        self.reason = reason
        super().__init__(str(self))

    @classmethod
    def at(cls, path: str, line: int | None, reason: str) -> LoadError:
        """A problem of the file itself at `line`, in no record: a CSV header, a structure
        export's community or collection, a worker process that stopped reading there."""
        return cls(path, line, None, reason, about_record=False)

    @classmethod
    def unreadable(cls, path: str, error: OSError) -> LoadError:
        """A record file that cannot be opened or read at all."""
        return cls(path, None, None, f"cannot read the file: {error.strerror}")

    def __reduce__(
        self,
    ) -> tuple[type[LoadError], tuple[str, int | None, str | None, str, bool]]:
        # Sent back by the worker processes that read big files (ingest.workers).
        return LoadError, (self.path, self.line, self.record_id, self.reason, self.about_record)

    def elsewhere(self, path: str, reason: str) -> LoadError:
        """The same problem shown at another path (a member of an archive) or in other words."""
        return LoadError(path, self.line, self.record_id, reason, self.about_record)

    def __str__(self) -> str:
        path, reason = escaped(self.path), excerpt(self.reason, MAX_REASON)
        if self.line is None and self.record_id is None:
            return f"{path}: {reason}"  # about the file, not one record in it
        where = path if self.line is None else f"{path}:{self.line}"
        if self.record_id is None and not self.about_record:
            return f"{where}: {reason}"  # about the file at that line
        return f"{where}: record {excerpt(self.record_id or '?')}: {reason}"


class LoadFailed(Exception):
    """A load found problems; nothing was written. Carries every problem found."""

    def __init__(self, problems: list[LoadError], total: int) -> None:
        self.problems = problems
        self.total = total
        super().__init__(f"{total} problem(s); nothing was loaded")
