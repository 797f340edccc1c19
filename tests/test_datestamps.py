"""3.3: UTC datestamps, two granularities, strict request syntax; generous record dates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oaipmh_server.datestamps import (
    Granularity,
    end_of,
    format_datestamp,
    parse_datestamp,
    parse_record_date,
)


@pytest.mark.parametrize(
    ("text", "expected", "granularity"),
    [
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC), Granularity.DAY),
        ("2015-07-21T02:23:32Z", datetime(2015, 7, 21, 2, 23, 32, tzinfo=UTC), Granularity.SECOND),
        ("0001-01-01", datetime(1, 1, 1, tzinfo=UTC), Granularity.DAY),
        (
            "9999-12-31T23:59:59Z",
            datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
            Granularity.SECOND,
        ),
    ],
)
def test_request_datestamps(text: str, expected: datetime, granularity: Granularity) -> None:
    assert parse_datestamp(text) == (expected, granularity)


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-30", "2023-02-29", "2024-00-10", "0000-01-01", "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z", "2024-01-01T23:59:60Z", "2024-01-01T00:00:00+00:00",
        "2024-01-01T00:00:00z", "2024-01-01t00:00:00Z", "2024-01-01T00:00:00", "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00.0Z", "2024-01-01T00:00Z", "20240101", "2024-1-01", " 2024-01-01",
        "2024-01-01\n", "２０２４-01-01", "٢٠٢٤-01-01", "2024-01-01T00:00:00ZZ", "", "yesterday",
    ],
)  # fmt: skip
def test_request_datestamps_are_strict(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datestamp(text)


def test_until_covers_the_whole_day() -> None:
    day, granularity = parse_datestamp("2024-03-01")
    assert end_of(day, granularity) == datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC)
    second, granularity = parse_datestamp("2024-03-01T10:00:00Z")
    assert end_of(second, granularity) == second


def test_format_is_the_repository_granularity() -> None:
    assert format_datestamp(datetime(2015, 7, 21, 2, 23, 32, tzinfo=UTC)) == "2015-07-21T02:23:32Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-07-21T02:23:32Z", datetime(2015, 7, 21, 2, 23, 32, tzinfo=UTC)),
        ("2019-11-02T15:04:05+08:00", datetime(2019, 11, 2, 7, 4, 5, tzinfo=UTC)),
        ("2018-05-02T10:00:00.923Z", datetime(2018, 5, 2, 10, 0, 0, tzinfo=UTC)),
        ("2017-06-30", datetime(2017, 6, 30, tzinfo=UTC)),
        ("2017-06-30 12:00:00", datetime(2017, 6, 30, 12, tzinfo=UTC)),
        ("2016-01-05T10:00:00", datetime(2016, 1, 5, 10, tzinfo=UTC)),
    ],
)
def test_record_dates_any_iso_form_to_utc_seconds(text: str, expected: datetime) -> None:
    assert parse_record_date(text) == expected


@pytest.mark.parametrize(
    "text", ["", "2015-13-01", "July 2015", "2015-07-21T25:00:00Z", "２０１５-01-01"]
)
def test_record_dates_unparseable(text: str) -> None:
    with pytest.raises(ValueError):
        parse_record_date(text)
