"""UTC datestamps at the granularity of seconds (OAI-PMH 2.0, 3.3).

Two very different parsers live here on purpose. Request arguments (`from`, `until`) are
parsed strictly: exactly `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ssZ`, ASCII digits only, because
anything looser would echo values the XSD rejects. Record dates (`dc.date.accessioned`)
come from repository exports in any ISO 8601 form and are parsed generously with
python-dateutil, then normalised to UTC seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import Enum

from dateutil.parser import isoparse


class Granularity(Enum):
    DAY = "YYYY-MM-DD"
    SECOND = "YYYY-MM-DDThh:mm:ssZ"


# [0-9], not \d (which matches any Unicode digit), and fullmatch, not $ (which allows "\n").
_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_SECOND = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_datestamp(value: str) -> tuple[datetime, Granularity]:
    """Parse a request's from/until; ValueError if it is not a real date in either form."""
    if m := _SECOND.fullmatch(value):
        year, month, day, hour, minute, second = (int(p) for p in m.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC), Granularity.SECOND
    if m := _DAY.fullmatch(value):
        year, month, day = (int(p) for p in m.groups())
        return datetime(year, month, day, tzinfo=UTC), Granularity.DAY
    raise ValueError(f"not a datestamp of the form {Granularity.SECOND.value} or YYYY-MM-DD")


def end_of(moment: datetime, granularity: Granularity) -> datetime:
    """The last second an `until` covers: a day-granularity until includes the whole day."""
    if granularity is Granularity.DAY:
        return moment + timedelta(days=1, seconds=-1)
    return moment


def format_datestamp(moment: datetime) -> str:
    """The one form this repository answers in (granularity YYYY-MM-DDThh:mm:ssZ)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_utc_second(moment: datetime) -> datetime:
    """UTC, whole seconds: datestamps never carry more precision than the granularity."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


_DSPACE_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)


def parse_record_date(value: str) -> datetime:
    """Parse a dc.date.accessioned as exports write it: any ISO 8601 form, naive means UTC.

    DSpace writes `2015-07-21T02:23:32Z`; other exports add offsets, fractions, a space
    instead of the T, or only a date. ValueError for anything else.
    """
    text = value.strip()
    if _DSPACE_FORM.fullmatch(text):  # the usual case, parsed in C
        try:
            return to_utc_second(datetime.fromisoformat(text))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date") from None
    if not text or not text.isascii():
        raise ValueError(f"{value!r} is not an ISO 8601 date")
    # isoparse does not take a space separator; ISO 8601 allows it by mutual agreement.
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:.*", text):
        text = text.replace(" ", "T", 1)
    try:
        return to_utc_second(isoparse(text))
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not an ISO 8601 date") from None


def now() -> datetime:
    """The current time, at the repository's granularity."""
    return to_utc_second(datetime.now(UTC))
