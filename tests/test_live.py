"""A real harvester (Sickle) against a real server process (gunicorn).

What a live server adds to the in-process tests is HTTP through gunicorn and processes of
their own; these tests only read, so they share the module's server on SQLite. A harvest
of each store, every record once, is test_harvest's (in process, on SQLite and
PostgreSQL); live servers on PostgreSQL while a load writes, test_changes' and
test_read_only's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from sickle import Sickle
from sickle.oaiexceptions import BadArgument, IdDoesNotExist

from .conftest import LiveServer
from .db import oai_identifiers
from .xsd import validate

# Real server processes: a slow tier (-m "not live" leaves it out of a quick run).
pytestmark = pytest.mark.live

REPO = "oai:repository.example.org:"


def stored(url: str) -> tuple[set[str], set[str]]:
    return oai_identifiers(url), oai_identifiers(url, deleted=True)


def test_sickle_harvests_everything_exactly_once(reading_live_server: LiveServer) -> None:
    sickle = Sickle(reading_live_server.url, max_retries=0, timeout=30)
    identify = sickle.Identify()
    assert identify.protocolVersion == "2.0"
    assert identify.deletedRecord == "persistent"

    everything, deleted = stored(reading_live_server.database_url)
    records = list(sickle.ListRecords(metadataPrefix="oai_dc", ignore_deleted=False))
    harvested = [r.header.identifier for r in records]
    assert len(harvested) == len(set(harvested)) == len(everything)  # page size 7: many pages
    assert set(harvested) == everything
    assert {r.header.identifier for r in records if r.header.deleted} == deleted
    seed = next(r for r in records if r.header.identifier == REPO + "10722/212116")
    assert seed.metadata["creator"][0] == "Wang, D"

    headers = list(sickle.ListIdentifiers(metadataPrefix="oai_dc", ignore_deleted=False))
    assert [h.identifier for h in headers] == harvested

    sets = [s.setSpec for s in sickle.ListSets()]
    assert {"com_10722_1", "com_10722_4", "col_10722_5", "col_10722_6"} <= set(sets)

    record = sickle.GetRecord(identifier=REPO + "10722/212116", metadataPrefix="oai_dc")
    assert record.metadata["title"][0].startswith("Allogeneic mesenchymal")
    try:
        sickle.GetRecord(identifier=REPO + "0/0", metadataPrefix="oai_dc")
        raise AssertionError("expected idDoesNotExist")
    except IdDoesNotExist:
        pass
    try:
        sickle.ListRecords(metadataPrefix="oai_dc", **{"from": "2024-02-30"})
        raise AssertionError("expected badArgument")
    except BadArgument:
        pass


def test_live_server_http_behaviour(reading_live_server: LiveServer) -> None:
    """HTTP through gunicorn (methods, sizes): the web edge's, the same on either store."""
    live_server = reading_live_server
    response = requests.get(live_server.url, params={"verb": "Identify"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    validate(response.content)
    assert requests.post(live_server.url, data={"verb": "Identify"}, timeout=10).status_code == 200
    assert requests.put(live_server.url, timeout=10).status_code == 405
    too_long = requests.get(live_server.url + "?verb=Identify&x=" + "a" * 1_000_000, timeout=10)
    assert too_long.status_code in (400, 414)
    assert requests.get(live_server.url, params={"verb": "Identify"}, timeout=10).status_code == 200


def test_two_servers_share_one_harvest(reading_live_server: LiveServer, tmp_path: Path) -> None:
    """Stateless tokens: pages alternate between two server processes on one database,
    and the harvest still gets every record exactly once. (The token carries the list's
    position and cut-off, signed; what a server then reads is a one-server harvest's,
    shown on each store by test_harvest.)"""
    database_url = reading_live_server.database_url
    other = LiveServer(database_url, tmp_path, workers=1, OAIPMH_PAGE_SIZE="7")
    servers = [reading_live_server, other]
    try:
        harvested: list[str] = []
        params = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"}
        page = 0
        while True:
            server = servers[page % 2]
            response = requests.get(server.url, params=params, timeout=10)
            validate(response.content)
            harvested += re.findall(r"<identifier>([^<]+)</identifier>", response.text)
            token = re.search(r"<resumptionToken[^>]*>([^<]+)</resumptionToken>", response.text)
            page += 1
            if token is None:
                break
            params = {"verb": "ListIdentifiers", "resumptionToken": token.group(1)}
        assert page > 2
        assert len(harvested) == len(set(harvested)) == len(oai_identifiers(database_url))
        assert (
            requests.get(servers[1].url.replace("/oai", "/healthz"), timeout=10).status_code == 200
        )
    finally:
        other.stop()
