"""`load --sync`: the load is the whole repository, so the stored records it does not hold
are withdrawn."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass

from ..errors import LoadError
from .batches import BATCH
from .drafts import Draft, Source
from .state import LoadState

SYNC = "--sync"  # where a --sync problem is, and the source of its tombstones


@dataclass(frozen=True)
class Sync:
    """`load --sync`: the load is the whole repository. `allow_deletes`: how many
    withdrawals the operator expects (--sync-allow-deletes), allowed whatever their share."""

    allow_deletes: int | None = None


class Syncing(LoadState):
    """The --sync part of a load (`load._Loader`)."""

    def withdraw(self, sync: Sync, stored_before: int) -> None:
        """`load --sync`: every stored record this load did not hold becomes a tombstone
        dated by the load (it keeps its sets, as a deleted record does), unless that would
        be more than [load] sync_max_deleted percent of the `stored_before` records and not
        as many as the operator allowed: then a problem naming the number, and nothing is
        written. The load's ids are kept as hashes (`add`): sorted, each stored id is
        looked up in them."""
        if self.parts and not self.whole_records:
            reason = (
                "only metadata CSV rows: a CSV holds the items and columns it exports, not "
                "the whole repository, so it cannot show which items are gone; give the SAF "
                "or JSON export (a CSV's rows beside it count as records the load holds)"
            )
            self.problem(LoadError(SYNC, None, None, reason))
            return
        loaded = array("q", sorted(self.id_hashes))
        gone = [
            local_id
            for batch in self.tx.live_ids()
            for local_id in batch
            if not _holds(loaded, hash(local_id))
        ]
        share = self.settings.sync_max_deleted
        allowed = sync.allow_deletes
        if len(gone) * 100 > share * stored_before and (allowed is None or len(gone) > allowed):
            percent = 100 * len(gone) / stored_before
            expected = "" if allowed is None else f" and than the {allowed:,} allowed"
            reason = (
                f"would withdraw {len(gone):,} of the {stored_before:,} records stored "
                f"({percent:.1f} %), more than [load] sync_max_deleted ({share:g} %){expected}: "
                "an empty or cut-short export? If that many are gone, give "
                f"--sync-allow-deletes {len(gone)}"
            )
            self.problem(LoadError(SYNC, None, None, reason))
            return
        self.withdrawing = True
        source = Source(SYNC, None)
        for start in range(0, len(gone), BATCH):
            chunk = gone[start : start + BATCH]
            tombstones = [Draft(source, local_id, (), True, (), None, 0) for local_id in chunk]
            self._write(self.tx.existing(chunk), tombstones)
        self.withdrawing = False


def _holds(hashes: array[int], value: int) -> bool:
    """Whether the sorted `hashes` hold `value`."""
    at = bisect_left(hashes, value)
    return at < len(hashes) and hashes[at] == value
