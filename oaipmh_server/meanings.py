"""What a record's fields mean, whichever format or page shows them: its access right and
embargo, its resource type and version, read through the configured COAR vocabularies.

A record with content files has its files' access right (files.access_status, DSpace's
AccessStatus); one without keeps what its metadata says. oai_openaire renders these; the
virtual sets' access_right condition and `check`'s rules ask the same functions, so no two
places can disagree about a record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date

from .crosswalk import Crosswalk
from .files import AccessStatus, access_status, content
from .record_source import Field, File
from .settings import Settings
from .vocabularies import Term, Vocabularies

# [0-9], not \d, which takes the digits of every script.
DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
ACCESS_FIELDS = ("dcterms.accessRights", "dc.rights.accessrights", "dc.rights.access",
                 "dc.rights")  # fmt: skip
EMBARGO_FIELDS = ("dc.date.embargo", "dc.embargo.lift", "dc.embargo.terms",
                  "dc.date.embargoend", "dc.description.embargo")  # fmt: skip
EMBARGO_END = re.compile(r"info:eu-repo/date/embargoEnd/(\d{4}-\d{2}-\d{2})")
VERSION_FIELDS = ("oaire.version", "dc.type.version", "dc.description.version")


class RecordFields:
    """A record's public fields, in stored order, grouped by name: the property functions
    (and `check`'s rules, a million records in a row) ask by name many times a record."""

    def __init__(self, fields: Iterable[Field], crosswalk: Crosswalk) -> None:
        self.fields = [f for f in fields if crosswalk.is_public(f.name) and f.value.strip()]
        self.by_name: dict[str, list[Field]] = {}
        for f in self.fields:
            self.by_name.setdefault(f.name, []).append(f)

    def values(self, *names: str) -> list[Field]:
        """The values of these fields, field by field in the order named."""
        if len(names) == 1:
            return self.by_name.get(names[0], [])
        return [f for name in names for f in self.by_name.get(name, ())]

    def matching(self, predicate: Callable[[str], bool]) -> list[Field]:
        """The values of every field whose name passes, in stored order. (Which of a
        record's names a predicate of the name alone passes is remembered: records come
        with the same few sets of names, by the million in a check.)"""
        if getattr(predicate, "__closure__", True) is None:
            key = (getattr(predicate, "__code__", None), tuple(self.by_name))
            names = _MATCHING.get(key)
            if names is None:
                names = [name for name in self.by_name if predicate(name)]
                if len(_MATCHING) < 10_000:
                    _MATCHING[key] = names
        else:
            names = [name for name in self.by_name if predicate(name)]
        if len(names) <= 1:
            return self.by_name[names[0]] if names else []
        wanted = set(names)
        return [f for f in self.fields if f.name in wanted]

    def first(self, *names: str) -> Field | None:
        for name in names:
            found = self.by_name.get(name)
            if found:
                return found[0]
        return None


_MATCHING: dict[tuple[object, tuple[str, ...]], list[str]] = {}


def w3cdtf(value: str) -> str | None:
    """A date as the guidelines want it (YYYY, YYYY-MM or YYYY-MM-DD), or None: as much
    of the value's start as is a real date (2019-02-30 gives 2019-02, 2019-13 gives 2019)."""
    match = DATE.match(value.strip())
    if match is None:
        return None
    year, month, day = match.groups()
    if month is None or not 1 <= int(month) <= 12:
        return year
    if day is not None:
        try:
            date(int(year), int(month), int(day))
        except ValueError:
            return f"{year}-{month}"
        return f"{year}-{month}-{day}"
    return f"{year}-{month}"


def embargo_end(record: RecordFields) -> str | None:
    """The end of an embargo: a date in an embargo field, or the info:eu-repo form."""
    for f in record.values(*EMBARGO_FIELDS):
        date = w3cdtf(f.value)
        if date is not None:
            return date
    for f in record.matching(lambda name: name.startswith(("dc.date", "dc.rights"))):
        match = EMBARGO_END.fullmatch(f.value.strip())
        if match:
            return match.group(1)
    return None


def publication_type(record: RecordFields, vocabularies: Vocabularies) -> Term | None:
    """Resource Type (M): the first dc.type value that maps to a COAR resource type."""
    types = record.matching(
        lambda name: (
            name == "dc.type" or (name.startswith("dc.type.") and name != "dc.type.version")
        )
    )
    for f in types:
        term = vocabularies.resource_type(f.value)
        if term is not None:
            return term
    return None


def files_status(files: Sequence[File]) -> AccessStatus | None:
    """The access status of a record's content files (files.access_status), or None for a
    record without any: its metadata then says."""
    return access_status(files) if content(files) else None


def access_right(
    record: RecordFields,
    vocabularies: Vocabularies,
    files: Sequence[File] = (),
    status: AccessStatus | None = None,
) -> Term | None:
    """Access Rights (M): with content files, their access status (`status`, if worked out
    already); without, the first access field (or dc.rights value) that maps, else
    embargoed access if an embargo end is given, else the configured default."""
    if status is None:
        status = files_status(files)
    if status is not None:
        return vocabularies.access_right(status.label)
    for f in record.values(*ACCESS_FIELDS):
        term = vocabularies.access_right(f.value)
        if term is not None:
            return term
    if embargo_end(record) is not None:
        return vocabularies.access_right("embargoed access")
    default = vocabularies.default_access_right
    return vocabularies.access_right(default) if default else None


def vocabularies_of(settings: Settings) -> Vocabularies:
    return Vocabularies.from_tables(
        [
            ("resource_types", settings.openaire_resource_types),
            ("access_rights", settings.openaire_access_rights),
            ("versions", settings.openaire_versions),
        ],
        settings.openaire_default_access_right,
    )
