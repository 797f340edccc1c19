"""DSpace qualified Dublin Core → the 15 elements of simple Dublin Core, as a table.

The table is data (`[oai_dc.map]` in config/oaipmh.toml) so an operator can change it
without touching code. A field resolves by its most specific key: `dc.date.issued`, then
`dc.date.*` (which also covers the bare `dc.date`), then nothing: unmapped fields are left
out. Private fields are removed before the table is even consulted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator

from .record_source import Field
from .settings import Settings

# Never disseminated, whatever the configuration says: staff e-mail addresses and the
# provenance log (which names the submitter and the staff who approved the item).
PRIVATE_FIELDS = frozenset({"dc.identifier.email", "dc.description.provenance"})
MAX_REMEMBERED = 10_000  # field names resolved and kept, whatever the input
_UNSEEN = object()


class Crosswalk:
    """One crosswalk table with its hidden fields; `version` changes when either does."""

    def __init__(self, mapping: Iterable[tuple[str, str]], hidden: Iterable[str] = ()) -> None:
        self.mapping = dict(mapping)
        self.hidden = PRIVATE_FIELDS | frozenset(hidden)
        canonical = json.dumps([sorted(self.mapping.items()), sorted(self.hidden)])
        self.version = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        self._elements: dict[str, str | None] = {}  # field name → element, as resolved

    @classmethod
    def from_settings(cls, settings: Settings) -> Crosswalk:
        return cls(settings.oai_dc_map, settings.hidden_fields)

    def is_public(self, name: str) -> bool:
        return name not in self.hidden

    def element_for(self, name: str) -> str | None:
        """The simple DC element a qualified field maps to, or None to leave it out.
        Resolved once per field name (a load asks millions of times for a few names)."""
        element = self._elements.get(name, _UNSEEN)
        if element is _UNSEEN:
            element = self._resolve(name)
            if len(self._elements) < MAX_REMEMBERED:
                self._elements[name] = element
        return element  # type: ignore[return-value]

    def _resolve(self, name: str) -> str | None:
        if not self.is_public(name):
            return None
        parts = name.split(".")
        candidates = [name]
        if len(parts) == 3:
            candidates.append(f"{parts[0]}.{parts[1]}.*")
        elif len(parts) == 2:
            candidates.append(f"{name}.*")
        for key in candidates:
            if key in self.mapping:
                return self.mapping[key] or None
        return None

    def apply(self, fields: Iterable[Field]) -> Iterator[tuple[str, Field]]:
        """(element, field) for every field that goes into simple DC, in stored order."""
        for f in fields:
            element = self.element_for(f.name)
            if element is not None:
                yield element, f
