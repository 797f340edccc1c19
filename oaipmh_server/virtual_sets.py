"""Virtual sets: sets whose records are chosen by a filter on their stored fields, as
DSpace's `driver` and `openaire` contexts choose theirs (`[virtual_sets]` in
config/oaipmh.toml).

DSpace applies a context's filter when a harvester asks, so an item that starts or stops
matching it appears in, or vanishes from, the context's lists without a new datestamp: an
incremental harvester of the set never hears of it. Here a filter is applied when a record
is loaded, where its other sets are worked out, and each virtual set it passes is one more
of its set specs: in its header, in its content hash and in the `memberships` table. So

- a harvest of a virtual set is one range of one index, like any set's;
- a record that enters or leaves a virtual set has changed, and gets a new datestamp from
  the load's dating rules (store/writes.py): an incremental harvest sees it enter (set=
  the virtual set) or leave (its header without the spec, in a harvest of the whole
  repository or of its other sets);
- when the definitions themselves change, the stored memberships are stale until every
  record is evaluated again, in one write (`oaipmh-server refresh-sets`, or the next load,
  which notices it by the definitions' digest kept in the store's meta). Until then the
  server serves the memberships it has, whose datestamps are right, and warns.

The filter language is small and declarative, so a definition is data a digest can be
taken of, and one an operator can read: a condition is one of

    { field = "dc.title" }                          the record has a value of the field
    { field = "dc.type", matches = "(?i)thesis$" }  … a value matching the regular expression
    { access_right = "open access" }                its COAR access right, as oai_openaire
                                                    gives it, is this one (or one of a list)
    { has_open_file = true }                        one of its files is openly readable
    { all = [ … ] }, { any = [ … ] }, { not = { … } }

A field name is as in `[oai_dc.map]`: `dc.relation.*` is the bare `dc.relation` and any
qualifier of it. A definition is a condition with a `name` (and an optional
`description`) beside it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from . import meanings
from .crosswalk import Crosswalk
from .files import ACCESS_RULE
from .files import has_open_file as files_have_open_file
from .record_source import Field, File
from .settings import Settings
from .virtual_set_definitions import FieldNames, VirtualSet

if TYPE_CHECKING:
    from .vocabularies import Term, Vocabularies

# The store's meta key holding what the stored memberships were evaluated with.
META_KEY = "virtual_sets"


class _Record:
    """What conditions ask of one record, each worked out once and only if asked."""

    __slots__ = ("_access", "_names", "facts", "fields", "files")

    def __init__(self, fields: Sequence[Field], files: Sequence[Any], facts: _Facts) -> None:
        self.fields = fields
        self.files = files
        self.facts = facts
        self._names: set[str] | None = None
        self._access: str | bool | None = False  # False: not worked out yet

    def has(self, names: FieldNames) -> bool:
        """Whether the record has a value of one of these fields (as DSpace's
        DSpaceMetadataExistsFilter: any value)."""
        present = self._names
        if present is None:
            present = self._names = {f.name for f in self.fields}
        if names.stem is None:
            return names.pattern in present
        return any(names.matches(name) for name in present)

    def values(self, names: FieldNames) -> list[str]:
        if names.stem is None:
            pattern = names.pattern
            return [f.value for f in self.fields if f.name == pattern]
        return [f.value for f in self.fields if names.matches(f.name)]

    def access_right(self) -> str | None:
        if self._access is False:
            self._access = self.facts.access_right(self.fields, self.files)
        return self._access  # type: ignore[return-value]

    def has_open_file(self) -> bool:
        return self.facts.has_open_file(self.files)


def served(settings: Settings) -> tuple[VirtualSet, ...]:
    """The definitions `[virtual_sets] served` names, in its order."""
    defined = {d.spec: d for d in settings.virtual_set_definitions}
    return tuple(defined[spec] for spec in settings.virtual_sets_served)


def stored_state(settings: Settings) -> str:
    """What the stored memberships must have been evaluated with to be current, as the
    store's meta keeps it: the served specs and a digest of their filters (and of the
    tables an access_right condition reads). Names and descriptions are not in it: a new
    name changes no membership."""
    sets = served(settings)
    if not sets:
        return json.dumps({"specs": []})
    canonical: list[Any] = [[s.spec, s.condition.key()] for s in sets]
    if any(s.uses_access_right() for s in sets):
        canonical.append(
            [
                settings.openaire_access_rights,
                settings.openaire_default_access_right,
                sorted(settings.hidden_fields),
                ACCESS_RULE,
            ]
        )
    digest = hashlib.sha256(json.dumps(canonical).encode()).hexdigest()[:32]
    return json.dumps({"specs": [s.spec for s in sets], "digest": digest})


def stale_warning(settings: Settings, stored: str | None) -> str | None:
    """What the server says when the configured virtual sets are not those the store's
    memberships were evaluated with (None: they are)."""
    state = stored_state(settings)
    if stored == state or (stored is None and not served(settings)):
        return None
    return (
        "the virtual sets configured ([virtual_sets]: "
        f"{', '.join(settings.virtual_sets_served) or 'none'}) are not those the stored "
        f"memberships were evaluated with ({', '.join(stored_specs(stored)) or 'none'}, or "
        "other filters): the stored memberships and their datestamps are served until "
        "`oaipmh-server refresh-sets` (or the next load) evaluates every record again"
    )


def stored_specs(state: str | None) -> tuple[str, ...]:
    """The virtual specs a stored state names (none for a store that never had any)."""
    if not state:
        return ()
    specs = json.loads(state).get("specs", [])
    return tuple(s for s in specs if isinstance(s, str))


class _Facts:
    """What conditions need beyond the fields: the access right as meanings.py works it
    out, from the record's files when it has any (files.access_status, so a set and the
    record's datacite:rights never disagree), and whether a file is open."""

    def __init__(self, settings: Settings, has_open_file: Callable[[Sequence[Any]], bool]) -> None:
        self.crosswalk = Crosswalk.from_settings(settings)
        # Read through a memory of each value's term: records repeat the same few values.
        self.vocabularies = cast("Vocabularies", _Remembered(meanings.vocabularies_of(settings)))
        self._record_fields: Callable[..., meanings.RecordFields] = meanings.RecordFields
        self._access_right = meanings.access_right
        # The fields access_right reads (its access and embargo fields, and dc.date.* and
        # dc.rights.* for an embargo's end): only those are handed to it, as a record of a
        # million is evaluated at every load.
        names = frozenset((*meanings.ACCESS_FIELDS, *meanings.EMBARGO_FIELDS))
        self._reads: Callable[[str], bool] = lambda name: (
            name in names or name.startswith(("dc.date", "dc.rights"))
        )
        self._read: dict[str, bool] = {}
        self.has_open_file = has_open_file

    def access_right(self, fields: Sequence[Field], files: Sequence[Any] = ()) -> str | None:
        read = self._read
        wanted = [f for f in fields if (read[f.name] if f.name in read else self._learn(f.name))]
        record = self._record_fields(wanted, self.crosswalk)
        own = [f for f in files if isinstance(f, File)]  # (tests hand other things)
        term = self._access_right(record, self.vocabularies, own)
        return None if term is None else term.label

    def _learn(self, name: str) -> bool:
        if len(self._read) < 10_000:  # names repeat; whatever the input, memory is bounded
            self._read[name] = self._reads(name)
        return self._reads(name)


class _Remembered:
    """The access-right side of Vocabularies (all that meanings.access_right asks of
    it), remembering each value's term, up to a bound."""

    def __init__(self, vocabularies: Vocabularies) -> None:
        self._vocabularies = vocabularies
        self.default_access_right = vocabularies.default_access_right
        self._terms: dict[str, Term | None] = {}

    def access_right(self, value: str) -> Term | None:
        terms = self._terms
        if value in terms:
            return terms[value]
        term = self._vocabularies.access_right(value)
        if len(terms) < 10_000:
            terms[value] = term
        return term


class VirtualSets:
    """The served definitions, ready to be applied to records (in the loading process and
    in each worker process)."""

    def __init__(
        self,
        settings: Settings,
        has_open_file: Callable[[Sequence[Any]], bool] = files_have_open_file,
    ) -> None:
        self.sets = served(settings)
        self.specs = tuple(s.spec for s in self.sets)
        self._facts = _Facts(settings, has_open_file) if self.sets else None

    def __bool__(self) -> bool:
        return bool(self.sets)

    def of(self, fields: Sequence[Field], files: Sequence[Any] = ()) -> tuple[str, ...]:
        """The specs of the virtual sets a live record with these fields (and files) is in,
        in the configured order."""
        if self._facts is None:
            return ()
        record = _Record(fields, files, self._facts)
        return tuple(s.spec for s in self.sets if s.condition.holds(record))
