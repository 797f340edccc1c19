"""The access line: one JSON object per request, with when (ISO-8601 UTC), who (the client's
address, from X-Forwarded-For only when a trusted proxy sent it; its user agent), what was
asked and answered, and how fast."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from oaipmh_server.tokens import decode_token, encode_token

from .conftest import Databases, free_port, make_app
from .oai import harvest, identifiers, token, tree
from .served import Served

AGENT = "Harvester/2.1 (+https://aggregator.example.org/bot)"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "oaipmh_server.access"
    ]


@pytest.fixture
def sample_sqlite(databases: Databases, request: pytest.FixtureRequest) -> str:
    return databases.samples("sqlite", request)


def test_access_line_fields(sample_sqlite: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="oaipmh_server.access")
    client = make_app(sample_sqlite, page_size=3).test_client()
    before = datetime.now(UTC)
    response = client.get(
        "/oai?verb=ListRecords&metadataPrefix=oai_dc",
        headers={"User-Agent": AGENT},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 200
    (line,) = access_lines(caplog)
    assert line["time"].endswith("Z")
    moment = datetime.fromisoformat(line["time"])
    assert moment.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= moment <= datetime.now(UTC)
    assert line["client"] == "192.0.2.7"
    assert line["agent"] == AGENT
    assert line["method"] == "GET"
    assert line["path"] == "/oai"
    assert line["status"] == 200
    assert line["verb"] == "ListRecords"
    assert line["arguments"] == {"verb": "ListRecords", "metadataPrefix": "oai_dc"}
    assert line["records"] == 3
    assert line["errors"] == []
    assert isinstance(line["ms"], float)


def test_access_line_of_an_error_without_agent(
    sample_sqlite: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oaipmh_server.access")
    client = make_app(sample_sqlite).test_client()
    client.get("/oai?verb=Nope", headers={"User-Agent": ""})
    (line,) = access_lines(caplog)
    assert line["agent"] is None
    assert line["errors"] == ["badVerb"]
    assert line["client"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        ("10.0.0.1", "203.0.113.9"),  # the trusted proxy: the address it forwards
        ("192.0.2.7", "192.0.2.7"),  # anyone else: the header is the client's own claim
    ],
)
def test_client_address_from_trusted_proxies_only(
    sample_sqlite: str, caplog: pytest.LogCaptureFixture, peer: str, client: str
) -> None:
    caplog.set_level(logging.INFO, logger="oaipmh_server.access")
    app = make_app(sample_sqlite, trusted_proxies=["10.0.0.0/8"])
    app.test_client().get(
        "/oai?verb=Identify",
        headers={"X-Forwarded-For": "203.0.113.9"},
        environ_base={"REMOTE_ADDR": peer},
    )
    (line,) = access_lines(caplog)
    assert line["client"] == client


def test_live_access_line_behind_a_trusted_proxy(sample_sqlite: str, tmp_path: Path) -> None:
    """Under gunicorn, a request from the proxy (127.0.0.1 listed in trusted_proxies)
    is logged with the address the proxy forwards, and the harvester's user agent."""
    config = tmp_path / "oaipmh.toml"
    config.write_text('[server]\ntrusted_proxies = ["127.0.0.1"]\n')
    port = free_port()
    server = Served(
        ["--port", str(port), "--workers", "1"],
        {"OAIPMH_DATABASE_URL": sample_sqlite, "OAIPMH_CONFIG": str(config)},
    )
    try:
        response = requests.get(
            f"http://127.0.0.1:{port}/oai",
            params={"verb": "GetRecord", "identifier": "oai:repository.example.org:10722/212116",
                    "metadataPrefix": "oai_dc"},
            headers={"X-Forwarded-For": "198.51.100.23", "User-Agent": AGENT},
            timeout=30,
        )  # fmt: skip
        assert response.status_code == 200
        line = json.loads(server.expect(r'^\{.*"verb": "GetRecord"'))
    finally:
        server.stop()
    assert line["client"] == "198.51.100.23"
    assert line["agent"] == AGENT
    assert line["records"] == 1
    assert line["time"].endswith("Z")


def test_access_lines_name_the_harvest_each_page_belongs_to(
    sample_sqlite: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every page of one list carries the same harvest id, its position and item count,
    the list's size and whether a token followed: what `oaipmh-server harvests` reads."""
    caplog.set_level(logging.INFO, logger="oaipmh_server.access")
    client = make_app(sample_sqlite, page_size=20).test_client()
    pages, _ = harvest(client, "ListRecords", metadataPrefix="oai_dc")
    assert len(pages) == 3
    lines = [line["harvest"] for line in access_lines(caplog)]
    (harvest_id,) = {line["id"] for line in lines}
    assert len(harvest_id) == 8
    assert [(h["cursor"], h["count"], h["size"], h["more"]) for h in lines] == [
        (0, 20, 50, True), (20, 20, 50, True), (40, 10, 50, False)
    ]  # fmt: skip
    harvest(client, "ListRecords", metadataPrefix="oai_dc")
    assert access_lines(caplog)[-1]["harvest"]["id"] != harvest_id  # a new list, a new id
    client.get("/oai?verb=Identify")
    assert access_lines(caplog)[-1]["harvest"] is None


def test_token_from_before_harvest_ids_resumes_and_stays_without_one(
    sample_sqlite: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After an upgrade, a token handed out before harvest ids existed resumes its list;
    the next token is carried as it came (no id), and the access line has the position."""
    caplog.set_level(logging.INFO, logger="oaipmh_server.access")
    app = make_app(sample_sqlite, page_size=20)
    client = app.test_client()
    first = token(tree(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc")))
    assert first is not None
    secret = app.extensions["oaipmh"].store.token_secret()
    state = replace(decode_token(first.text, secret, "ListRecords"), harvest=None)
    older = encode_token(state, secret)
    following = tree(
        client.get("/oai", query_string={"verb": "ListRecords", "resumptionToken": older})
    )
    assert len(identifiers(following)) == 20
    line = access_lines(caplog)[-1]
    assert line["harvest"] == {"id": None, "cursor": 20, "count": 20, "size": 50, "more": True}
    after = token(following)
    assert after is not None
    assert decode_token(after.text, secret, "ListRecords").harvest is None


def test_access_line_of_a_turned_away_page_names_its_harvest(
    sample_sqlite: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A page turned away with 503 (every place taken) or with a refused token still says
    which harvest it was, from what the token claims, so the report can tell why it stopped."""
    caplog.set_level(logging.INFO, logger="oaipmh_server.access")
    app = make_app(sample_sqlite, page_size=20, max_concurrent_lists=1)
    client = app.test_client()
    first = token(tree(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc")))
    assert first is not None
    harvest_id = access_lines(caplog)[-1]["harvest"]["id"]
    with app.extensions["oaipmh"].harvest_limit.take(resuming=True) as held:
        assert held
        busy = client.get(
            "/oai", query_string={"verb": "ListRecords", "resumptionToken": first.text}
        )
    assert busy.status_code == 503
    line = access_lines(caplog)[-1]
    assert (line["status"], line["harvest"]) == (503, {"id": harvest_id, "cursor": 20})
    damaged = first.text[:-3] + ("AAA" if not first.text.endswith("AAA") else "BBB")
    client.get("/oai", query_string={"verb": "ListRecords", "resumptionToken": damaged})
    line = access_lines(caplog)[-1]
    assert line["errors"] == ["badResumptionToken"]
    assert line["harvest"] == {"id": harvest_id, "cursor": 20}
