"""The filter language of virtual sets: a definition read from `[virtual_sets.define]` and
checked, as plain data (config.py reads it; virtual_sets.py applies it to records).

A condition is asked of a `Candidate`: a record as virtual_sets.py sees it, each fact worked
out once and only when asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .record_source import SetInfo
from .vocabularies import ACCESS_RIGHTS

# A virtual set is flat (no ":"): one membership, no parent set to be counted in.
SPEC = re.compile(r"[A-Za-z0-9\-_\.!~\*'\(\)]+", re.ASCII)
FIELD = re.compile(
    r"[a-z][a-z0-9]*\.[A-Za-z][A-Za-z0-9_-]*(\.([A-Za-z][A-Za-z0-9_-]*|\*))?", re.ASCII
)
CONDITIONS = ("field", "access_right", "has_open_file", "all", "any", "not")


class BadDefinition(ValueError):
    """A definition the filter language does not allow; config.py names the setting."""


class Candidate(Protocol):
    """What conditions ask of one record."""

    def has(self, names: FieldNames) -> bool: ...

    def values(self, names: FieldNames) -> list[str]: ...

    def access_right(self) -> str | None: ...

    def has_open_file(self) -> bool: ...


class Condition(Protocol):
    def holds(self, record: Candidate) -> bool: ...

    def key(self) -> object:
        """The condition as plain data (the digest of the definitions is taken of it)."""
        ...


@dataclass(frozen=True)
class FieldNames:
    """A field name as `[oai_dc.map]` writes it: exact, or `schema.element.*` for the bare
    element and every qualifier of it (`stem` is then `schema.element`)."""

    pattern: str
    stem: str | None

    @classmethod
    def of(cls, pattern: str) -> FieldNames:
        return cls(pattern, pattern[:-2] if pattern.endswith(".*") else None)

    def matches(self, name: str) -> bool:
        stem = self.stem or self.pattern
        return name == stem or (name.startswith(stem) and name[len(stem)] == ".")


@dataclass(frozen=True)
class HasField:
    names: FieldNames
    matches: re.Pattern[str] | None = None

    def holds(self, record: Candidate) -> bool:
        if self.matches is None:
            return record.has(self.names)
        search = self.matches.search
        return any(search(v) is not None for v in record.values(self.names))

    def key(self) -> object:
        if self.matches is None:
            return ["field", self.names.pattern]
        return ["field", self.names.pattern, self.matches.pattern, self.matches.flags]


@dataclass(frozen=True)
class AccessRight:
    labels: frozenset[str]

    def holds(self, record: Candidate) -> bool:
        return record.access_right() in self.labels

    def key(self) -> object:
        return ["access_right", sorted(self.labels)]


@dataclass(frozen=True)
class HasOpenFile:
    def holds(self, record: Candidate) -> bool:
        return record.has_open_file()

    def key(self) -> object:
        return ["has_open_file"]


@dataclass(frozen=True)
class All:
    conditions: tuple[Condition, ...]

    def holds(self, record: Candidate) -> bool:
        return all(c.holds(record) for c in self.conditions)

    def key(self) -> object:
        return ["all", [c.key() for c in self.conditions]]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]

    def holds(self, record: Candidate) -> bool:
        return any(c.holds(record) for c in self.conditions)

    def key(self) -> object:
        return ["any", [c.key() for c in self.conditions]]


@dataclass(frozen=True)
class Not:
    condition: Condition

    def holds(self, record: Candidate) -> bool:
        return not self.condition.holds(record)

    def key(self) -> object:
        return ["not", self.condition.key()]


@dataclass(frozen=True)
class VirtualSet:
    """One definition: the set ListSets shows, and the filter that chooses its records."""

    spec: str
    name: str
    description: str | None
    condition: Condition

    @property
    def info(self) -> SetInfo:
        return SetInfo(self.spec, self.name, self.description)

    def uses_access_right(self) -> bool:
        return '"access_right"' in json.dumps(self.condition.key())


def parse_definition(spec: str, body: Any) -> VirtualSet:
    """A definition of `[virtual_sets.define.SPEC]`; BadDefinition saying what is wrong
    and where (`all[2].matches`)."""
    if not SPEC.fullmatch(spec) or len(spec) > 255:
        raise BadDefinition(
            f"{spec!r} is not a set spec without ':' (letters, digits and -_.!~*'())"
        )
    if not isinstance(body, Mapping):
        raise BadDefinition("expected a table with name and a condition")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadDefinition('needs a non-empty "name"')
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise BadDefinition('"description" must be a string')
    condition = {k: v for k, v in body.items() if k not in ("name", "description")}
    return VirtualSet(spec, name.strip(), description or None, parse_condition(condition, ""))


def parse_condition(value: Any, where: str) -> Condition:
    """One condition at `where` (its path in the definition, for messages)."""

    def fail(message: str, key: str = "") -> BadDefinition:
        path = ".".join(p for p in (where, key) if p)
        return BadDefinition(f"{path}: {message}" if path else message)

    if not isinstance(value, Mapping):
        raise fail(f'expected a condition such as {{ field = "dc.title" }}, got {value!r}')
    kinds = [k for k in CONDITIONS if k in value]
    allowed = {kinds[0], "matches"} if kinds[:1] == ["field"] else set(kinds[:1])
    if len(kinds) != 1 or set(value) - allowed:
        known = ", ".join(CONDITIONS)
        raise fail(f"expected exactly one of {known} (and matches with field), got "
                   f"{', '.join(map(repr, value)) or 'nothing'}")  # fmt: skip
    kind = kinds[0]
    inner = value[kind]
    here = f"{where}.{kind}" if where else kind
    if kind == "field":
        if not isinstance(inner, str) or not FIELD.fullmatch(inner):
            raise fail(f"{inner!r} is not a field name like 'dc.title' or 'dc.relation.*'", kind)
        pattern = value.get("matches")
        if pattern is None:
            return HasField(FieldNames.of(inner))
        if not isinstance(pattern, str):
            raise fail(f"expected a regular expression, got {pattern!r}", "matches")
        try:
            return HasField(FieldNames.of(inner), re.compile(pattern))
        except re.error as e:
            raise fail(f"{pattern!r} is not a regular expression: {e}", "matches") from None
    if kind == "access_right":
        labels = [inner] if isinstance(inner, str) else inner
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(label, str) and label in ACCESS_RIGHTS for label in labels)
        ):
            raise fail(f"{inner!r} is not a COAR access right "
                       f"({', '.join(ACCESS_RIGHTS)}) or a list of them", kind)  # fmt: skip
        return AccessRight(frozenset(labels))
    if kind == "has_open_file":
        if inner is not True:
            raise fail('only true (for "no open file", { not = … })', kind)
        return HasOpenFile()
    if kind == "not":
        return Not(parse_condition(inner, here))
    if not isinstance(inner, list) or not inner:
        raise fail(f"expected a list of one or more conditions, got {inner!r}", kind)
    parts = tuple(parse_condition(c, f"{here}[{i}]") for i, c in enumerate(inner, start=1))
    return All(parts) if kind == "all" else AnyOf(parts)
