"""PostgreSQL's pooled connections: a page pays for its one statement, not for a ping before
it, and a connection the server dropped still costs a harvester at most one answer."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from oaipmh_server.store import engine

from .conftest import make_app
from .postgres import Cluster

pytestmark = [pytest.mark.store_behaviour, pytest.mark.parametrize("backend", ["postgresql"])]

TOKEN = re.compile(r"<resumptionToken[^>]*>([^<]+)</resumptionToken>")
FIRST = "/oai?verb=ListRecords&metadataPrefix=oai_dc"


def _drop_connections(postgres: Cluster, database_url: str) -> None:
    """End every session of the store's database, as a server restart or a failover does."""
    name = database_url.rsplit("/", 1)[1]
    postgres.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )


def _next_page(client: FlaskClient, token: str) -> tuple[int, str]:
    response = client.get(f"/oai?verb=ListRecords&resumptionToken={token}")
    return response.status_code, response.get_data(as_text=True)


def test_a_connection_dropped_while_idle_is_replaced_before_the_next_page(
    database_url: str, postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_app(database_url, page_size=10).test_client()
    first = client.get(FIRST).get_data(as_text=True)
    token = TOKEN.search(first)
    assert token is not None
    _drop_connections(postgres, database_url)
    # Every pooled connection now counts as idle long enough to be pinged before use.
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    status, page = _next_page(client, token.group(1))
    assert status == 200 and page.count("<record>") == 10


def test_a_connection_dropped_in_use_costs_at_most_one_answer(
    database_url: str, postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the seconds after its last use a pooled connection is not pinged: if the
    server dropped it then, that one request is answered 503 (a harvester retries), and
    the pool's other connections are replaced with it, so the next request is answered."""
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 3600.0)
    client = make_app(database_url, page_size=10).test_client()
    first = client.get(FIRST).get_data(as_text=True)
    token = TOKEN.search(first)
    assert token is not None
    _drop_connections(postgres, database_url)
    url = f"/oai?verb=ListRecords&resumptionToken={token.group(1)}"
    first_try, second_try = client.get(url), client.get(url)
    assert first_try.status_code == 200 or (
        first_try.status_code == 503 and "Retry-After" in first_try.headers
    )
    assert second_try.status_code == 200
