"""The ranges of /sitemap.xml and of ResourceSync's indexes (store/ranges.py, issue 26): the
index walk that finds where each range begins runs once per store state, not per request;
after a load it runs again, and the ranges still cover every record exactly once; a change
list's ranges follow its cut-off without a walk unless records entered the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from lxml import etree

from oaipmh_server.store import SqlStore, ranges
from oaipmh_server.store.columns import keyset_starts
from oaipmh_server.store.schema import records_table
from oaipmh_server.web import resourcesync as web_resourcesync
from oaipmh_server.web import sitemaps

from .conftest import SECRET, load_into, make_app
from .test_changes import START, Clock, records, write_jsonl
from .test_resourcesync import FORMATS, SM, all_headers, get_xml, list_entries, locs

INDEXES = ("/resources/resourcelist.xml", "/resources/changelist.xml", "/sitemap.xml")


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The index walks (columns.keyset_starts) the store runs: the first key column's
    name, and where the walk resumed (None: from the index's start)."""
    seen: list[tuple[Any, ...]] = []

    def counted(conn: Any, key: Any, where: Any, size: int, resume: Any = None) -> Any:
        seen.append((key[0].name, resume))
        return keyset_starts(conn, key, where, size, resume=resume)

    monkeypatch.setattr(ranges, "keyset_starts", counted)
    return seen


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock(START)
    monkeypatch.setattr("oaipmh_server.datestamps.now", moving)
    return moving


def sitemap_ids(client: FlaskClient) -> list[str]:
    """Every record of every records' sitemap /sitemap.xml names, repeats kept (the first
    sitemap it names is the site's own pages')."""
    index = etree.fromstring(client.get("/sitemap.xml").data)
    pages, *records = index.iterfind("sm:sitemap/sm:loc", SM)
    assert pages.text == "http://localhost/sitemaps/pages.xml"
    listed = []
    for loc in records:
        parts = urlsplit(loc.text or "")
        page = etree.fromstring(client.get(f"{parts.path}?{parts.query}").get_data())
        listed += [(u.text or "").removeprefix("http://localhost/records/")
                   for u in page.iterfind("sm:url/sm:loc", SM)]  # fmt: skip
    return listed


def covered_once(client: FlaskClient) -> None:
    """Every live record in every list of each index exactly once, every change once."""
    headers = all_headers(client)
    live = sorted(lid for lid, (_, deleted) in headers.items() if not deleted)
    assert sorted(sitemap_ids(client)) == live
    resources = [u.findtext("sm:loc", namespaces=SM) or "" for u in
                 list_entries(client, "http://localhost/resources/resourcelist.xml")]  # fmt: skip
    assert sorted(resources) == sorted(
        f"http://localhost/resources/{prefix}/{lid}.xml" for prefix in FORMATS for lid in live
    )
    changes = [u.findtext("sm:loc", namespaces=SM) or "" for u in
               list_entries(client, "http://localhost/resources/changelist.xml")]  # fmt: skip
    assert sorted(changes) == sorted(
        f"http://localhost/resources/{prefix}/{lid}.xml" for prefix in FORMATS for lid in headers
    )


@pytest.mark.store_behaviour
def test_index_ranges_are_walked_once_per_store_state_and_cover_every_record_after_a_load(
    empty_database_url: str,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    walks: list[tuple[Any, ...]],
) -> None:
    """With 7 URLs a list: the first request of each index walks the index, the next ones
    do not; a load that adds records before the first range's start, between two starts
    and after the last, changes one and deletes one, makes the next request walk again
    (once), and the ranges then hold every record exactly once."""
    monkeypatch.setattr(web_resourcesync, "MAX_URLS", 7)
    monkeypatch.setattr(web_resourcesync, "RENDERED", 5)
    monkeypatch.setattr(sitemaps, "SITEMAP_SIZE", 7)
    load_into(empty_database_url, write_jsonl(tmp_path / "first.jsonl", records(30)),
              clock=lambda: START - timedelta(days=30))  # fmt: skip
    app = make_app(empty_database_url)
    client = app.test_client()
    for path in INDEXES:
        assert client.get(path).status_code == 200
    # local ids at 7 and at 5 (resource lists, sitemaps), and the changes
    assert sorted(walks) == [("datestamp", None), ("local_id", None), ("local_id", None)]
    walks.clear()
    for _ in range(3):
        for path in INDEXES:
            clock.tick()
            assert client.get(path).status_code == 200
    covered_once(client)
    assert walks == []

    added = [{**r, "id": lid} for r, lid in zip(records(3), ["10000/1", "10722/15a", "10722/99"],
                                                strict=True)]  # fmt: skip
    later = [*added, *records(8, note="Corrected.")[7:], {"id": "10722/20", "deleted": True}]
    clock.tick(5)
    load_into(empty_database_url, write_jsonl(tmp_path / "later.jsonl", later), clock=clock)
    clock.tick(5)
    for path in INDEXES:
        assert client.get(path).status_code == 200
    assert sorted(walks) == [("datestamp", None), ("local_id", None), ("local_id", None)]
    walks.clear()
    covered_once(client)
    assert walks == []
    index = get_xml(client, "http://localhost/resources/resourcelist.xml")
    assert any("start=10000%2F1" in loc for loc in locs(index))


@pytest.mark.store_behaviour
def test_change_list_ranges_follow_the_cut_off_as_a_fresh_walk_would(
    empty_database_url: str, tmp_path: Path, walks: list[tuple[Any, ...]]
) -> None:
    """Records dated over four weeks, no write in between: the change list starts for a
    cut-off are a fresh walk's, whether the cut-off moved back, forward past records (the
    walk goes on from the last start only) or forward past none (no walk)."""
    load_into(empty_database_url, write_jsonl(tmp_path / "r.jsonl", records(40)),
              clock=lambda: START - timedelta(days=30))  # fmt: skip
    store = SqlStore(empty_database_url, token_secret=SECRET)
    key = (records_table.c.datestamp, records_table.c.local_id)

    def fresh(until: datetime) -> list[tuple[Any, ...]]:
        with store.engine.connect() as conn:
            return keyset_starts(conn, key, records_table.c.datestamp <= until, 4)

    def starts(until: datetime) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        walks.clear()
        got = [tuple(p) for p in store.change_starts(4, until)]
        return got, list(walks)

    def day(n: int) -> datetime:
        return datetime(2015, 7, n, 12, tzinfo=UTC)

    try:
        got, walked = starts(day(10))
        assert got == fresh(day(10)) and walked == [("datestamp", None)]
        resumed = [("datestamp", got[-1])]  # the walk goes on from the last start
        for until, walk in [(day(5), []), (day(10), []), (day(20), resumed), (day(20), []),
                            (day(1), []), (day(30), "resumed"), (START, [])]:  # fmt: skip
            got, walked = starts(until)
            assert got == fresh(until), until
            if walk == "resumed":
                assert [resume is not None for _, resume in walked] == [True], until
            else:
                assert walked == walk, until
        _, walked = starts(day(30))
        assert walked == [] and len(fresh(START)) == 10
    finally:
        store.close()
