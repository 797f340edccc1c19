"""What production relies on: flow control, metrics, health, production-mode settings,
secrets from the environment, and loads that queue instead of colliding."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from flask.testing import FlaskClient

from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError
from oaipmh_server.ingest.batches import BATCH
from oaipmh_server.placeholders import SAMPLE_REPOSITORY_NAME, is_example_domain
from oaipmh_server.web.admission import HarvestLimit

from .conftest import LiveServer, make_app
from .db import oai_identifiers
from .held_load import HOLDING
from .oai import error_codes, token, tree
from .xsd import validate

HELD_LOAD = Path(__file__).parent / "held_load.py"

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour


def test_new_harvests_wait_when_every_place_is_taken(database_url: str) -> None:
    app = make_app(database_url, max_concurrent_lists=4, retry_after=7, page_size=5)
    client = app.test_client()
    value = token(tree(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc"))).text
    places: HarvestLimit = app.extensions["oaipmh"].harvest_limit
    assert places.reserved == 1
    with places.take(resuming=False) as a, places.take(False) as b, places.take(False) as c:
        assert a and b and c  # three places for new harvests, all taken now
        busy = client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc")
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "7"
        # A harvest under way still gets the place kept for it …
        going_on = client.get(
            "/oai", query_string={"verb": "ListRecords", "resumptionToken": value}
        )
        assert going_on.status_code == 200
        # … and verbs that are not lists are never turned away.
        assert error_codes(client.get("/oai?verb=Identify")) == []
        with places.take(resuming=True) as d:
            assert d
            assert (
                client.get(
                    "/oai", query_string={"verb": "ListRecords", "resumptionToken": value}
                ).status_code
                == 503
            )
    assert client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc").status_code == 200


@pytest.mark.same_on_every_store
def test_a_places_folder_removed_under_the_server_is_made_again(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Flow control's folder goes while the server runs ($XDG_RUNTIME_DIR is removed when
    its user's last session ends; a clean-up of the database's folder): lists go on, the
    folder made again as at the start (every list was a 500 until a restart). A place
    that cannot be taken at all (the worker out of file descriptors, a folder made
    unusable) turns the list away as a busy server does, 503 with Retry-After, and says
    why in the log."""
    folder = tmp_path / "places"
    app = make_app(database_url, max_concurrent_lists=4, retry_after=7, places_folder=str(folder))
    client = app.test_client()
    lists = "/oai?verb=ListIdentifiers&metadataPrefix=oai_dc"
    assert client.get(lists).status_code == 200
    shutil.rmtree(folder)
    assert client.get(lists).status_code == 200
    assert client.get("/sets/com_10722_1").status_code == 200
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    shutil.rmtree(folder)
    folder.write_text("not a folder\n")
    answer = client.get(lists)
    assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "7")
    why = f"{folder}/place-0: Not a directory"
    assert f"flow control: no place can be taken, list turned away: {why}" in caplog.text


def test_live_server_turns_new_harvests_away_while_its_places_are_taken(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across processes, as in production: the test holds the flow-control places of a
    running server (2 worker processes) itself, so what the server must answer is known at
    every step. The places are found through an app built from the same settings, never
    by a path written here, so the test follows wherever the places are kept."""
    config = tmp_path / "flow.toml"
    config.write_text("[server]\nmax_concurrent_lists = 4\nretry_after = 3\n")
    monkeypatch.setenv("OAIPMH_CONFIG", str(config))
    server = LiveServer(database_url, tmp_path, OAIPMH_PAGE_SIZE="5")
    places: HarvestLimit = make_app(database_url).extensions["oaipmh"].harvest_limit
    assert (places.count, places.reserved) == (4, 1)

    def get(**params: str) -> requests.Response:
        return requests.get(server.url, params=params, timeout=30)

    def new_harvest() -> requests.Response:
        return get(verb="ListRecords", metadataPrefix="oai_dc")

    def throttled() -> str:
        metrics = requests.get(server.url.replace("/oai", "/metrics"), timeout=10).text
        counted = re.search(r'^oaipmh_throttled_total\{reason="busy"\} (\S+)$', metrics, re.M)
        return counted.group(1) if counted else "0"

    try:
        first = new_harvest()
        assert first.status_code == 200
        value = token(validate(first.content)).text
        with ExitStack() as held:
            for _ in range(2):
                assert held.enter_context(places.take(resuming=False))
            with places.take(resuming=False) as third:
                assert third  # every place for new harvests is taken now
                for _ in range(2):  # either worker process may answer
                    busy = new_harvest()
                    assert busy.status_code == 503
                    assert busy.headers["Retry-After"] == "3"
                assert throttled() == "2.0"
                # A harvest under way gets the place kept back for it…
                going_on = get(verb="ListRecords", resumptionToken=value)
                assert going_on.status_code == 200
                assert validate(going_on.content).findall(".//{*}record")
                # …unless that is taken too.
                with places.take(resuming=True) as kept:
                    assert kept
                    assert get(verb="ListRecords", resumptionToken=value).status_code == 503
                assert get(verb="Identify").status_code == 200  # not a list: never held back
            # One place freed: a new harvest is admitted again.
            assert new_harvest().status_code == 200
        assert throttled() == "3.0"
    finally:
        server.stop()


def test_metrics_in_prometheus_text_format(client: FlaskClient) -> None:
    client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc")
    client.get("/oai?verb=Nope")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.get_data(as_text=True)
    for name in ("oaipmh_requests_total", "oaipmh_errors_total", "oaipmh_page_seconds_bucket",
                 "oaipmh_records_served_total"):  # fmt: skip
        assert name in text
    assert 'oaipmh_errors_total{code="badVerb"}' in text


def test_health_fails_when_the_database_is_down(
    client: FlaskClient, app, backend: str, request
) -> None:
    assert client.get("/healthz").status_code == 200
    store = app.extensions["oaipmh"].store
    store.engine.dispose()
    if backend == "sqlite":
        os.remove(store.engine.url.database)
        os.mkdir(store.engine.url.database)
    else:
        request.getfixturevalue("postgres").drop_database(store.engine.url.database)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OAIPMH_MODE": "production"}, "token_secret"),
        ({"OAIPMH_MODE": "production", "OAIPMH_TOKEN_SECRET": "short"}, "32 characters"),
        ({"OAIPMH_MODE": "production", "OAIPMH_TOKEN_SECRET": "x" * 32}, "base_url"),
        ({"OAIPMH_MODE": "staging"}, "mode"),
        ({"OAIPMH_BASE_URL": "/oai"}, "base_url"),
    ],
)
def test_production_mode_needs_secret_and_base_url(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


# An identity of the repository's own: production mode refuses the shipped placeholders.
OWN_IDENTITY = {
    "repository_name": "Muster University Repository",
    "repository_identifier": "oai.muster-university.de",
    "admin_emails": ["oai-admin@muster-university.de"],
}


def test_production_mode_with_everything_set() -> None:
    settings = load_settings(OWN_IDENTITY, environ={
        "OAIPMH_MODE": "production", "OAIPMH_TOKEN_SECRET": "s" * 40,
        "OAIPMH_BASE_URL": "https://hub.muster-university.de/oai"})  # fmt: skip
    assert settings.mode == "production"


def test_production_mode_refuses_placeholder_identities() -> None:
    """The shipped sample identity and example domains (RFC 2606), every key named at once."""
    environ = {"OAIPMH_MODE": "production", "OAIPMH_TOKEN_SECRET": "s" * 40,
               "OAIPMH_BASE_URL": "https://oai.repository.example.edu/oai"}  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=environ)
    message = str(refused.value)
    for key in (
        "repository.name",
        "repository.identifier",
        "repository.admin_emails",
        "repository.base_url",
    ):
        assert f": {key}: " in message, key
    assert "'Sample DSpace Repository'" in message and "'repository.example.org'" in message
    # One placeholder left among own values is still refused, and only it is named.
    with pytest.raises(ConfigError) as refused:
        load_settings({**OWN_IDENTITY, "admin_emails": ["me@www.example.com"]}, environ={
            **environ, "OAIPMH_BASE_URL": "https://oai.muster-university.de/oai"})  # fmt: skip
    assert ": repository.admin_emails: " in str(refused.value)
    assert ": repository.identifier: " not in str(refused.value)
    # Development mode keeps the sample identity, for a first run without edits.
    assert load_settings(environ={}).repository_identifier == "repository.example.org"


def test_production_mode_needs_strong_previous_secrets_too() -> None:
    """A previous secret still signs what the server accepts: as strong as the current."""
    environ = {"OAIPMH_MODE": "production", "OAIPMH_TOKEN_SECRET": "s" * 40,
               "OAIPMH_BASE_URL": "https://oai.muster-university.de/oai",
               "OAIPMH_PREVIOUS_TOKEN_SECRETS": "p" * 32 + ",short"}  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"harvest\.previous_token_secrets: production mode needs each"
    ):
        load_settings(OWN_IDENTITY, environ=environ)
    environ["OAIPMH_PREVIOUS_TOKEN_SECRETS"] = "p" * 32
    assert load_settings(OWN_IDENTITY, environ=environ).previous_token_secrets == ("p" * 32,)


def test_the_sample_name_is_the_shipped_one() -> None:
    assert load_settings(environ={}).repository_name == SAMPLE_REPOSITORY_NAME


def test_serve_refuses_to_start_with_bad_settings(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "oaipmh_server", "serve", "--port", "1"],
        env={**os.environ, "OAIPMH_MODE": "production", "OAIPMH_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode != 0
    assert "token_secret" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite has no passwords
def test_database_password_from_the_environment(backend: str, request) -> None:
    cluster = request.getfixturevalue("postgres")
    cluster.execute(
        "DO $$ BEGIN CREATE ROLE harvester LOGIN PASSWORD 's3cret'; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    url = cluster.create_database("password_test")
    cluster.execute("ALTER DATABASE password_test OWNER TO harvester")
    with_user = url.replace("postgres@", "harvester@")
    settings = load_settings(
        {"database_url": with_user}, environ={"OAIPMH_DATABASE_PASSWORD": "s3cret"}
    )
    assert settings.database_password == "s3cret"
    app = make_app(with_user, database_password="s3cret")
    assert app.test_client().get("/healthz").status_code == 200


def test_concurrent_loads_queue_and_both_land(empty_database_url: str, tmp_path: Path) -> None:
    """Two `load` processes at once: the second, started while the first has a batch
    written in its transaction (held there, tests/held_load.py), says it waits for it and
    does; once the first goes on, both land. More than a batch each (BATCH)."""
    count = BATCH + 100
    files = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({
            "id": f"{name}{i}", "sets": ["s"],
            "metadata": [{"field": "dc.date.accessioned", "value": "2020-01-01T00:00:00Z"},
                         {"field": "dc.title", "value": f"{name} {i}"}]}) + "\n" for i in range(count)))  # fmt: skip
        files.append(path)
    env = {**os.environ, "OAIPMH_DATABASE_URL": empty_database_url}
    first = subprocess.Popen([sys.executable, str(HELD_LOAD), str(BATCH + 1), "load", str(files[0])],
                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    second = None
    try:
        assert first.stdout is not None and first.stdin is not None
        assert select.select([first.stdout], [], [], 120)[0], "the first load never held"
        assert first.stdout.readline().strip() == HOLDING, "the first load ended before it held"
        second = subprocess.Popen([sys.executable, "-m", "oaipmh_server", "load", str(files[1])],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True)  # fmt: skip
        assert second.stderr is not None
        assert select.select([second.stderr], [], [], 120)[0], "the second load never spoke"
        said = second.stderr.readline()
        assert said.startswith("another load is running") and "waiting for it" in said, said
        for process in (first, second):  # communicate closes stdin: the first load goes on
            _, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert len(oai_identifiers(empty_database_url)) == 2 * count


@pytest.mark.parametrize(
    ("host", "example"),
    [("example.org", True), ("repository.example.org", True), ("OAI.Example.COM.", True),
     ("example.net", True), ("uni.example.edu", True), ("repo.example", True),
     ("oai.invalid", True), ("myexample.org", False), ("example.org.uni-hamburg.de", False),
     ("oai.muster-university.de", False), ("localhost", False)],
)  # fmt: skip
def test_example_domains(host: str, example: bool) -> None:
    assert is_example_domain(host) is example


def test_every_page_that_runs_a_list_takes_a_place(database_url: str) -> None:
    """With max_concurrent_lists = 4 and every place for new harvests held, 40 list
    requests at once at /oai/view are turned away as at /oai, not all answered (a view
    page costs more than an /oai page: it must not walk around the limit)."""
    app = make_app(database_url, max_concurrent_lists=4, retry_after=7, page_size=5)
    client = app.test_client()
    first = client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc")
    value = token(tree(first)).text
    places: HarvestLimit = app.extensions["oaipmh"].harvest_limit
    lists = "verb=ListRecords&metadataPrefix=dim"

    def view(query: str) -> tuple[int, str | None]:
        answer = app.test_client().get(f"/oai/view?{query}")
        return answer.status_code, answer.headers.get("Retry-After")

    with places.take(False) as a, places.take(False) as b, places.take(False) as c:
        assert a and b and c
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(view, [lists] * 20 + [lists.replace("Records", "Identifiers")] * 20)
            )
        assert answers == [(503, "7")] * 40
        assert client.get(f"/oai?{lists}").status_code == 503
        assert client.get(f"/oai/request?{lists}").status_code == 503
        assert client.get("/sets/com_10722_1").status_code == 503  # a set page lists its records
        assert view("verb=Identify") == (200, None)  # not a list: never held back
        resumed = f"verb=ListRecords&resumptionToken={quote(str(value))}"
        assert view(resumed) == (200, None)  # the place kept for harvests under way
        with places.take(resuming=True) as kept:
            assert kept
            assert view(resumed) == (503, "7")
    assert view(lists) == (200, None)
    assert client.get("/sets/com_10722_1").status_code == 200
