"""/metrics: the store's gauges (records, deleted records, the last load, the schema
revision, the cut-off lag), read at each scrape from a few rows; and only for the
addresses of [server] metrics_allow."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import create_engine, delete

from oaipmh_server.cli import main
from oaipmh_server.store import COUNTS_KEY
from oaipmh_server.store.schema import meta_table

from .conftest import SAMPLES, load_into, make_app
from .db import oai_identifiers


def scrape(database_url: str, **environ: Any) -> dict[str, float]:
    client = make_app(database_url).test_client()
    response = client.get("/metrics", environ_base=environ)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    return {
        name: float(value)
        for name, value in re.findall(r"^(oaipmh_[a-z_]+(?:\{[^}]*\})?) (\S+)$", text, re.M)
    }


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


@pytest.mark.store_behaviour
def test_store_gauges(database_url: str) -> None:
    before = datetime.now(UTC)
    metrics = scrape(database_url)
    everything = oai_identifiers(database_url)
    deleted = oai_identifiers(database_url, deleted=True)
    assert metrics["oaipmh_store_records"] == len(everything)
    assert metrics["oaipmh_store_deleted_records"] == len(deleted) > 0
    assert metrics[f'oaipmh_schema_info{{revision="{head_revision()}"}}'] == 1
    # No load runs: lists stop one second before now.
    assert 1 <= metrics["oaipmh_cutoff_lag_seconds"] < 5
    # The sample store was loaded by this session, before this test.
    loaded = metrics["oaipmh_last_load_timestamp_seconds"]
    assert (before - timedelta(hours=1)).timestamp() < loaded <= before.timestamp()

    # A delete is a write: the counts and the time move with it.
    lid = sorted(everything - deleted)[0].removeprefix("oai:repository.example.org:")
    done = CliRunner().invoke(main, ["delete", lid], env={"OAIPMH_DATABASE_URL": database_url})
    assert done.exit_code == 0, done.output
    after = scrape(database_url)
    assert after["oaipmh_store_records"] == len(everything)
    assert after["oaipmh_store_deleted_records"] == len(deleted) + 1
    assert after["oaipmh_last_load_timestamp_seconds"] >= before.timestamp()


@pytest.mark.store_behaviour
def test_counts_of_a_store_written_before_they_were_kept(database_url: str) -> None:
    """A store last written by an older version has no counts kept: they are counted."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(delete(meta_table).where(meta_table.c.key == COUNTS_KEY))
    engine.dispose()
    metrics = scrape(database_url)
    assert metrics["oaipmh_store_records"] == len(oai_identifiers(database_url))
    assert metrics["oaipmh_store_deleted_records"] == len(
        oai_identifiers(database_url, deleted=True)
    )


@pytest.mark.store_behaviour
def test_cutoff_lag_while_a_load_runs(database_url: str) -> None:
    """Lists stop before a load in progress: the lag is how long it has run (here a load
    whose clock says it began an hour ago), and back to a second once it commits."""
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    during: list[dict[str, float]] = []
    load_into(
        database_url,
        SAMPLES,
        clock=lambda: an_hour_ago,
        before_commit=lambda: during.append(scrape(database_url)),
    )
    assert 3600 < during[0]["oaipmh_cutoff_lag_seconds"] < 3660
    assert 1 <= scrape(database_url)["oaipmh_cutoff_lag_seconds"] < 5


@pytest.mark.parametrize(
    ("allow", "peer", "forwarded", "status"),
    [
        pytest.param(None, "127.0.0.1", None, 200, id="default-loopback"),
        pytest.param(None, "::1", None, 200, id="default-loopback-ipv6"),
        pytest.param(None, "192.0.2.7", None, 404, id="default-others"),
        pytest.param(None, "10.0.0.1", "203.0.113.9", 404, id="through-the-proxy"),
        pytest.param(None, "192.0.2.7", "127.0.0.1", 404, id="forged-forwarded-for"),
        pytest.param(["203.0.113.0/24"], "10.0.0.1", "203.0.113.9", 200, id="allowed-behind"),
        pytest.param(["192.0.2.7"], "192.0.2.7", None, 200, id="listed-address"),
        pytest.param([], "127.0.0.1", None, 404, id="nobody"),
    ],
)
def test_metrics_only_for_allowed_addresses(
    database_url: str, allow: list[str] | None, peer: str, forwarded: str | None, status: int
) -> None:
    overrides: dict[str, Any] = {"trusted_proxies": ["10.0.0.0/8"]}
    if allow is not None:
        overrides["metrics_allow"] = allow
    client = make_app(database_url, **overrides).test_client()
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": peer})
    assert response.status_code == status
    if status == 404:
        assert b"oaipmh_" not in response.data
