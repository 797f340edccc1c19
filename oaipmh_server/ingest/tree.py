"""Where a record sits in the tree of sets, as DSpace serves it: the communities above its
collections. One function for the loading process and the worker processes, so a worker
can render a record's <header> with the sets it will be served with."""

from __future__ import annotations

from collections.abc import Mapping


def communities(specs: tuple[str, ...], parents: Mapping[str, str | None]) -> tuple[str, ...]:
    """The sets above `specs` in the tree (`parents`: spec → its parent's), breadth first,
    nearest first (DSpace's order), without `specs` themselves."""
    found: dict[str, None] = {}
    level = [parents.get(s) for s in specs]
    while level:
        above = []
        for spec in level:
            if spec is not None and spec not in found and spec not in specs:
                found[spec] = None
                above.append(parents.get(spec))
        level = above
    return tuple(found)


def served_flat(specs: tuple[str, ...], parents: Mapping[str, str | None]) -> tuple[str, ...]:
    """A record's set specs as served in DSpace's flat style: its communities, then its
    own sets."""
    if not specs:
        return ()
    return (*communities(specs, parents), *dict.fromkeys(specs))
