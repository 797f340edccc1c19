"""An embargo that ends is a change of the record that harvesters must be told of.

A file's embargo ends by the calendar (files.file_status): from its date on, oai_openaire
says "open access" and links the file, and the `openaire` virtual set may take the record.
Nothing is loaded that day, so without more the record's datestamp stays, and OpenAIRE,
harvesting `from=` its last responseDate, never lists it again. As DSpace's OAI does (its
incremental import indexes embargoed items again), the first write on or after that day (a
load of anything, `refresh-sets`, which a daily timer runs) re-dates such records, renders
their stored formats again and evaluates their virtual sets again.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, select
from sqlalchemy.pool import NullPool

import oaipmh_server.files
from oaipmh_server import datestamps
from oaipmh_server.config import load_settings
from oaipmh_server.formats import build_formats
from oaipmh_server.ingest.load import refresh_sets
from oaipmh_server.ingest.refreshing import EMBARGOES_KEY
from oaipmh_server.store import SqlStore
from oaipmh_server.store.schema import meta_table, records_table

from .conftest import SECRET, load_into, make_app
from .db import fetch
from .oai import NS, tree
from .test_hostile_exports import record, write_jsonl

HANDLE = "10722/212116"
LINKED = {
    "base_url": "https://repo.example.org/oai/request",
    "files_url": "{base}/bitstream/handle/{handle}/{name}?sequence={sequence}",
}
EMBARGO_END = date(2027, 1, 31)
DATACITE = "http://datacite.org/schema/kernel-4"
T0 = datetime(2027, 1, 29, 12, 0, tzinfo=UTC)


class Calendar:
    """The day the embargo rules read (files.today) and the clock of requests and writes
    (datestamps.now, a second later at each reading), moved by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.day = T0.date()
        self.base = T0
        self.ticks = count()
        monkeypatch.setattr(oaipmh_server.files, "today", lambda: self.day)
        monkeypatch.setattr(datestamps, "now", self.now)

    def now(self) -> datetime:
        return self.base + timedelta(seconds=next(self.ticks))

    def turn_to(self, day: date) -> None:
        self.day = day
        self.base = datetime.combine(day, T0.timetz())
        self.ticks = count()


@pytest.fixture
def calendar(monkeypatch: pytest.MonkeyPatch) -> Calendar:
    return Calendar(monkeypatch)


def embargoed(tmp_path: Path, local_id: str = HANDLE, end: date = EMBARGO_END) -> Path:
    """A record whose one content file is embargoed until `end`."""
    fields = [
        {"field": "dc.title", "value": "An embargoed thesis"},
        {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"},
        {"field": "dc.type", "value": "Thesis"},
        {"field": "dc.identifier.uri", "value": f"http://hdl.handle.net/{local_id}"},
    ]
    entry = {"name": "thesis.pdf", "size": 3, "md5": "0" * 32, "embargo": end.isoformat(),
             "primary": True}  # fmt: skip
    path = tmp_path / f"{local_id.replace('/', '_')}.json"
    path.write_text(json.dumps([{"id": local_id, "metadata": fields, "files": [entry]}]))
    return path


def rights(client: Any, local_id: str = HANDLE) -> str | None:
    identifier = f"oai:repository.example.org:{local_id}"
    root = tree(
        client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_openaire&identifier={identifier}")
    )
    return root.findtext(f".//{{{DATACITE}}}rights")


def listed_since(client: Any, since: str) -> list[str]:
    root = tree(client.get(f"/oai?verb=ListIdentifiers&metadataPrefix=oai_openaire&from={since}"))
    return [i.text or "" for i in root.iterfind(".//oai:header/oai:identifier", NS)]


def datestamp_of(url: str, local_id: str = HANDLE) -> datetime:
    ((stamp,),) = fetch(
        url, select(records_table.c.datestamp).where(records_table.c.local_id == local_id)
    )
    return stamp.replace(tzinfo=UTC)


def refresh(url: str, **overrides: Any) -> None:
    """`oaipmh-server refresh-sets`, at the time datestamps.now gives (the calendar's)."""
    settings = load_settings({"database_url": url, **LINKED, **overrides}, environ={})
    store = SqlStore(url, token_secret=SECRET)
    try:
        refresh_sets(store, settings, build_formats(settings), clock=datestamps.now)
    finally:
        store.close()


@pytest.mark.store_behaviour
@pytest.mark.parametrize(
    "write", ["refresh-sets", "a load of another record", "the same export loaded again"]
)
def test_an_embargo_that_ended_is_listed_to_incremental_harvests_after_the_next_write(
    empty_database_url: str, tmp_path: Path, calendar: Calendar, write: str
) -> None:
    load_into(empty_database_url, embargoed(tmp_path), clock=datestamps.now, **LINKED)
    client = make_app(empty_database_url, **LINKED).test_client()
    assert rights(client) == "embargoed access"
    first = tree(client.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_openaire"))
    since = first.findtext("oai:responseDate", namespaces=NS) or ""

    calendar.turn_to(EMBARGO_END + timedelta(days=1))
    if write == "refresh-sets":
        refresh(empty_database_url)
    elif write == "the same export loaded again":  # the nightly cron: nothing in it changed
        load_into(empty_database_url, embargoed(tmp_path), clock=datestamps.now, **LINKED)
    else:
        other = write_jsonl(tmp_path / "other.jsonl", [record("other/1")])
        load_into(empty_database_url, other, clock=datestamps.now, **LINKED)

    assert rights(client) == "open access"
    assert f"oai:repository.example.org:{HANDLE}" in listed_since(client, since)
    assert datestamp_of(empty_database_url).date() == EMBARGO_END + timedelta(days=1)


def test_a_record_whose_embargo_runs_on_keeps_its_datestamp(
    empty_database_url: str, tmp_path: Path, calendar: Calendar
) -> None:
    load_into(empty_database_url, embargoed(tmp_path), clock=datestamps.now, **LINKED)
    loaded = datestamp_of(empty_database_url)
    calendar.turn_to(EMBARGO_END - timedelta(days=1))
    refresh(empty_database_url)
    assert datestamp_of(empty_database_url) == loaded


def test_an_ended_embargo_re_dates_its_record_once(
    empty_database_url: str, tmp_path: Path, calendar: Calendar
) -> None:
    """The write of the day the embargo ended re-dates the record; later writes, the same
    day or after, leave it (nothing changed since)."""
    load_into(empty_database_url, embargoed(tmp_path), clock=datestamps.now, **LINKED)
    calendar.turn_to(EMBARGO_END)  # open from its first day on (files.file_status)
    refresh(empty_database_url)
    redated = datestamp_of(empty_database_url)
    assert redated.date() == EMBARGO_END
    refresh(empty_database_url)
    calendar.turn_to(EMBARGO_END + timedelta(days=3))
    refresh(empty_database_url)
    assert datestamp_of(empty_database_url) == redated


def test_the_stored_oai_openaire_of_an_ended_embargo_is_rendered_again(
    empty_database_url: str, tmp_path: Path, calendar: Calendar
) -> None:
    """With oai_openaire stored at load ([formats] stored), its stored bytes said
    "embargoed access" for good."""
    stored = {"stored_formats": ["oai_dc", "oai_openaire"], **LINKED}
    load_into(empty_database_url, embargoed(tmp_path), clock=datestamps.now, **stored)
    calendar.turn_to(EMBARGO_END + timedelta(days=1))
    refresh(empty_database_url, stored_formats=["oai_dc", "oai_openaire"])
    client = make_app(empty_database_url, **stored).test_client()
    assert rights(client) == "open access"


def test_the_openaire_virtual_set_takes_a_record_whose_embargo_ended(
    empty_database_url: str, tmp_path: Path, calendar: Calendar
) -> None:
    """A virtual set of open-access records (`access_right`) takes the record at the write
    that re-dates it, so a harvest of that set lists it from then on."""
    virtual = {
        "virtual_set_definitions": {"open": {"name": "Open access", "access_right": "open access"}},
        "virtual_sets_served": ["open"],
    }
    load_into(empty_database_url, embargoed(tmp_path), clock=datestamps.now, **LINKED, **virtual)
    client = make_app(empty_database_url, **LINKED, **virtual).test_client()
    empty = tree(client.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc&set=open"))
    assert empty.find("oai:error", namespaces=NS).get("code") == "noRecordsMatch"
    calendar.turn_to(EMBARGO_END + timedelta(days=1))
    refresh(empty_database_url, **virtual)
    taken = tree(client.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc&set=open"))
    assert [i.text for i in taken.iterfind(".//oai:identifier", NS)] == [
        f"oai:repository.example.org:{HANDLE}"
    ]


def test_a_record_loaded_with_an_embargo_that_ended_keeps_the_datestamp_a_load_gives(
    empty_database_url: str, tmp_path: Path, calendar: Calendar
) -> None:
    """Rendered as it is loaded, by today's calendar, it is not re-dated again by the
    same load: dated by its dc.date.accessioned as a new record is, like one without files."""
    load_into(empty_database_url, write_jsonl(tmp_path / "first.jsonl", [record("first/1")]),
              clock=datestamps.now, **LINKED)  # fmt: skip
    calendar.turn_to(EMBARGO_END + timedelta(days=1))
    plain = write_jsonl(tmp_path / "plain.jsonl", [record("plain/1")])
    load_into(empty_database_url, embargoed(tmp_path), plain, clock=datestamps.now, **LINKED)
    assert datestamp_of(empty_database_url) == datestamp_of(empty_database_url, "plain/1")


def test_a_store_never_looked_at_re_dates_every_embargo_that_has_ended(
    empty_database_url: str, tmp_path: Path, calendar: Calendar
) -> None:
    """A store written by a version that did not re-date ended embargoes (no day kept):
    its first write re-dates every record whose embargo has ended, as it may have been
    served changed with its old datestamp."""
    load_into(empty_database_url, embargoed(tmp_path, end=date(2020, 1, 1)),
              clock=datestamps.now, **LINKED)  # fmt: skip
    loaded = datestamp_of(empty_database_url)
    engine = create_engine(empty_database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(delete(meta_table).where(meta_table.c.key == EMBARGOES_KEY))
    engine.dispose()
    calendar.turn_to(T0.date() + timedelta(days=1))
    refresh(empty_database_url)
    assert datestamp_of(empty_database_url) > loaded
