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

from datetime import timedelta

SECOND = timedelta(seconds=1)
# A dc.date.accessioned this far ahead of our clock is an error, not clock skew.
MAX_SKEW = timedelta(days=1)
