"""What a load did: the counts and warnings it reports, and each change as it is decided."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# Told of each record a load changes: (what happened, its id). What happened is one of
# CHANGE_KINDS.
Changes = Callable[[str, str], None]
CHANGE_KINDS = ("added", "updated", "deleted", "withdrawn")


@dataclass
class LoadSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    # Stored records a --sync load did not hold, now tombstones; `synced`: it was one.
    withdrawn: int = 0
    synced: bool = False
    clamped: int = 0
    rejected: int = 0
    sets: int = 0
    cleaned: int = 0
    warnings: list[str] = field(default_factory=list)
    # Records that entered and left each virtual set: spec → [entered, left] (a new
    # record in one has entered it); whether every stored record was evaluated again
    # (the definitions changed), and how many that re-dated.
    virtual_moves: dict[str, list[int]] = field(default_factory=dict)
    reevaluated: bool = False
    redated: int = 0

    def moved(self, before: Iterable[str], after: Iterable[str]) -> None:
        before, after = tuple(before), tuple(after)
        for spec in after:
            if spec not in before:
                self.virtual_moves.setdefault(spec, [0, 0])[0] += 1
        for spec in before:
            if spec not in after:
                self.virtual_moves.setdefault(spec, [0, 0])[1] += 1

    @property
    def records(self) -> int:
        return self.added + self.updated + self.unchanged + self.deleted

    def line(self) -> str:
        withdrawn = f", withdrawn {self.withdrawn}" if self.synced else ""
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deleted {self.deleted}{withdrawn}, clamped {self.clamped}, "
            f"rejected {self.rejected}"
        )
