"""The access line: one JSON object per request, with when (ISO-8601 UTC), who (the client's
address, from X-Forwarded-For only when a trusted proxy sent it; its user agent), what was
asked and answered, and how fast."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import Databases, free_port, make_app
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
        ["--port", str(port)], {"OAIPMH_DATABASE_URL": sample_sqlite, "OAIPMH_CONFIG": str(config)}
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
