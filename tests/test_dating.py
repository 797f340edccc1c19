"""The datestamp rules a load applies (ingest/dating.py), each on its own; test_ingest.py
shows them through whole loads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from oaipmh_server.ingest.dating import in_the_future, keeps_date, redated

LOAD = datetime(2026, 12, 6, 6, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_a_changed_record_is_dated_by_the_load() -> None:
    assert redated(LOAD, datetime(2020, 1, 1, tzinfo=UTC)) == LOAD


def test_a_changed_record_is_dated_at_least_a_second_after_its_previous_datestamp() -> None:
    # A clock set back (or a load within the second of the last) still moves it forward.
    assert redated(LOAD, LOAD) == LOAD + SECOND
    assert redated(LOAD, LOAD + timedelta(hours=1)) == LOAD + timedelta(hours=1) + SECOND


def test_a_date_up_to_a_day_ahead_is_clock_skew_beyond_it_a_problem() -> None:
    assert not in_the_future(LOAD + timedelta(days=1), LOAD)
    assert in_the_future(LOAD + timedelta(days=1) + SECOND, LOAD)


def test_a_new_record_keeps_its_date_only_between_the_last_cut_off_and_the_load() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert keeps_date(since, LOAD, since, backdating=True)
    assert keeps_date(LOAD, LOAD, since, backdating=True)
    assert not keeps_date(since - SECOND, LOAD, since, backdating=True)  # harvested past it
    assert not keeps_date(LOAD + SECOND, LOAD, since, backdating=True)  # after the load
    assert not keeps_date(since, LOAD, since, backdating=False)  # a store already holding records
