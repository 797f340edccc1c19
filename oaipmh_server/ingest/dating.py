"""The datestamps a load gives records: the rules harvesters depend on (store/writes.py
says how they are kept).

- "The time of the load" is when it starts writing: lists stop one second before it until
  the load commits, so what it changes is new to every incremental harvest
  (from=<responseDate of the last one>), even one that ran while it loaded. It is never
  earlier than a cut-off already handed out, whatever the clock says.
- Into an empty store, a record is dated by its dc.date.accessioned, unless a harvester has
  already been given a cut-off at or after that date (it would never see the record).
- Into a store that already holds records, anything up to now may have been harvested, so
  a new record dated in the past would be invisible to an incremental harvest. It is
  dated at the time of the load instead, and counted as "clamped" (unless
  `keep_accessioned` is set).
- A changed or deleted record is dated at the time of the load, and always at least one
  second after its previous datestamp; an unchanged one keeps its datestamp.
"""

from __future__ import annotations

from datetime import datetime, timedelta

SECOND = timedelta(seconds=1)
# A dc.date.accessioned this far ahead of our clock is an error, not clock skew.
MAX_SKEW = timedelta(days=1)


def in_the_future(accessioned: datetime, moment: datetime) -> bool:
    """Whether a dc.date.accessioned is too far ahead of the time of the load to be clock
    skew: a problem, not a datestamp."""
    return accessioned > moment + MAX_SKEW


def redated(moment: datetime, previous: datetime) -> datetime:
    """The datestamp of a record a load changes (or deletes, or serves in other sets): the
    time of the load, and at least one second after its previous datestamp."""
    return max(moment, previous + SECOND)


def keeps_date(accessioned: datetime, moment: datetime, since: datetime, backdating: bool) -> bool:
    """Whether a new record may be dated by its dc.date.accessioned: in a load that may
    keep dates (`backdating`, from `since`: store/writes.py), when no list can have been
    cut off at or after it, and not after the time of the load (`moment`)."""
    return backdating and since <= accessioned <= moment
