"""The harvest report of real harvesters' runs against `oaipmh-server serve`: Sickle and pyoai
follow their lists to the end, one loop stops halfway, one gives up at a 503, one waits out
the 503 and goes on. The server's own log, fed to `oaipmh-server harvests`, says exactly
which completed and where the others stopped.

One server (sample store, 50 records, 7 a page, one list at a time) serves every run. The
503 is made without waiting on anything: the test holds the server's only place (its lock
file, as a busy worker would) while the loop asks for its next page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from oaipmh.client import Client
from oaipmh.metadata import MetadataRegistry, oai_dc_reader
from sickle import Sickle

from oaipmh_server.web.admission import HarvestLimit

from .cli import invoke
from .conftest import Databases, LiveServer
from .oai import NS

pytestmark = pytest.mark.live

PAGES = 8  # 50 records, 7 a page
SICKLE = "Sickle/0.7 (report test)"
PYOAI = "pyoai"  # the client's own User-Agent
HALFWAY = "halfway-loop/1.0"
GIVES_UP = "gives-up-loop/1.0"
PATIENT = "patient-loop/1.0"


@pytest.fixture(scope="module")
def report(
    databases: Databases, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, dict[str, Any]], str]]:
    """Every run against one server, then the report of its log: JSON by user agent, and
    the table."""
    tmp = tmp_path_factory.mktemp("harvests")
    places = tmp / "places"
    config = tmp / "oaipmh.toml"
    config.write_text(f'[server]\nmax_concurrent_lists = 1\nplaces_folder = "{places}"\n')
    url = databases.samples("sqlite", request)
    server = LiveServer(url, tmp, workers=1, OAIPMH_PAGE_SIZE="7", OAIPMH_CONFIG=str(config))
    try:
        records = list(
            Sickle(server.url, headers={"User-Agent": SICKLE}).ListRecords(metadataPrefix="oai_dc")
        )
        assert len(records) == 50
        registry = MetadataRegistry()
        registry.registerReader("oai_dc", oai_dc_reader)
        headers = list(Client(server.url, registry).listIdentifiers(metadataPrefix="oai_dc"))
        assert len(headers) == 50
        loop(server.url, HALFWAY, pages=3)
        limit = HarvestLimit(1, places)
        loop(server.url, GIVES_UP, pages=2, then_busy=limit)
        loop(server.url, PATIENT, pages=PAGES, then_busy=limit)
    finally:
        server.stop()
    log = Path(server.log.name)
    ran = invoke("harvests", "--format", "json", str(log))
    assert ran.returncode == 0, ran.stderr
    table = invoke("harvests", str(log))
    assert table.returncode == 0, table.stderr
    yield {who["user_agent"]: who for who in json.loads(ran.stdout)}, table.stdout


def loop(url: str, agent: str, pages: int, then_busy: HarvestLimit | None = None) -> None:
    """A curl-like loop over ListRecords: `pages` pages at most. With `then_busy`, the page
    after the second is asked while the server's only place is held (a 503); a loop of
    fewer pages gives up there, a longer one asks again once the place is free."""
    session = requests.Session()
    session.headers["User-Agent"] = agent
    query = {"verb": "ListRecords", "metadataPrefix": "oai_dc"}
    served = 0
    while served < pages or (then_busy is not None and served == 2):
        if then_busy is not None and served == 2:
            with then_busy.take(resuming=True) as held:
                assert held
                busy = session.get(url, params=query, timeout=30)
            assert busy.status_code == 503
            assert busy.headers["Retry-After"]
            if pages <= 2:
                return
        answer = session.get(url, params=query, timeout=30)
        assert answer.status_code == 200
        served += 1
        element = etree.fromstring(answer.content).find(".//oai:resumptionToken", NS)
        if element is None or not element.text:
            return
        query = {"verb": "ListRecords", "resumptionToken": element.text}


def test_sickle_and_pyoai_harvests_are_complete(
    report: tuple[dict[str, dict[str, Any]], str],
) -> None:
    harvesters, _ = report
    for agent, verb in ((SICKLE, "ListRecords"), (PYOAI, "ListIdentifiers")):
        who = harvesters[agent]
        assert who["address"] == "127.0.0.1"
        assert who["incomplete"] == [], who
        (harvest,) = who["complete"]
        assert (harvest["verb"], harvest["format"], harvest["set"], harvest["from"]) == (
            verb, "oai_dc", None, None
        )  # fmt: skip
        assert (harvest["pages"], harvest["records"], harvest["list_size"]) == (PAGES, 50, 50)
        assert harvest["first_request"] <= harvest["last_request"]
        assert who["errors"] == {}


def test_a_loop_that_stops_halfway_is_incomplete_at_its_position(
    report: tuple[dict[str, dict[str, Any]], str],
) -> None:
    who = report[0][HALFWAY]
    assert who["complete"] == []
    (harvest,) = who["incomplete"]
    assert (harvest["pages"], harvest["records"], harvest["stopped_at"]) == (3, 21, 21)
    assert harvest["reason"] == "still under way when the log ends"


def test_a_loop_turned_away_with_503_stopped_there(
    report: tuple[dict[str, dict[str, Any]], str],
) -> None:
    who = report[0][GIVES_UP]
    assert who["complete"] == []
    (harvest,) = who["incomplete"]
    assert (harvest["pages"], harvest["stopped_at"], harvest["list_size"]) == (2, 14, 50)
    assert harvest["reason"].startswith("turned away with 503")
    assert who["errors"] == {"HTTP 503": 1}


def test_a_loop_that_waits_out_a_503_completes(
    report: tuple[dict[str, dict[str, Any]], str],
) -> None:
    who = report[0][PATIENT]
    assert who["incomplete"] == []
    assert [(h["pages"], h["records"]) for h in who["complete"]] == [(PAGES, 50)]
    assert who["errors"] == {"HTTP 503": 1}


def test_exactly_these_harvesters_and_a_readable_table(
    report: tuple[dict[str, dict[str, Any]], str],
) -> None:
    harvesters, table = report
    assert set(harvesters) == {SICKLE, PYOAI, HALFWAY, GIVES_UP, PATIENT}
    assert f"{PYOAI}\n  address 127.0.0.1, {PAGES} requests" in table
    assert "stopped at position 14 of 50: turned away with 503" in table
    assert "stopped at position 21 of 50: still under way when the log ends" in table
