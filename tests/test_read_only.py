"""Serving a store this process cannot write: a PostgreSQL role that may only SELECT (made
with the lines `oaipmh-server grants` prints), a SQLite file opened read-only (mode=ro),
and a hot standby streaming from a real primary. Every verb answers, and an incremental
harvester polling such a server sees every change, with its final datestamp, once it is
committed (store/readonly.py says how).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from oaipmh_server import datestamps
from oaipmh_server.errors import StoreUnavailable
from oaipmh_server.store import SqlStore, readonly

from .cli import invoke
from .conftest import SAMPLES, load_into, make_app, postgres_bindir
from .oai import NS, tree
from .postgres import Cluster
from .test_changes import (
    REPO,
    START,
    Clock,
    HeldLoad,
    final_datestamps,
    poll,
    records,
    write_jsonl,
)

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour

READER = "oai_reader"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock(START)
    monkeypatch.setattr(datestamps, "now", moving)
    return moving


def read_only_url(owner_url: str, request: pytest.FixtureRequest) -> str:
    """The store at `owner_url` as a server that cannot write opens it: SQLite read-only
    (mode=ro), or PostgreSQL as a role given only what `oaipmh-server grants` prints."""
    if owner_url.startswith("sqlite:///"):
        return f"sqlite:///file:{owner_url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    cluster: Cluster = request.getfixturevalue("postgres")
    cluster.execute(
        f"DO $$ BEGIN CREATE ROLE {READER} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    printed = invoke("grants", READER, env={"OAIPMH_DATABASE_URL": owner_url})
    assert printed.returncode == 0, printed.stderr
    database = owner_url.rsplit("/", 1)[1]
    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname={database}",
                         autocommit=True) as conn:  # fmt: skip
        for line in printed.stdout.splitlines():
            conn.execute(line)  # type: ignore[call-overload]
    return owner_url.replace("postgres@", f"{READER}@")


def oai_get(client: FlaskClient) -> Callable[[dict[str, str]], etree._Element]:
    return lambda query: tree(client.get("/oai", query_string=query))


def test_grants_name_every_table_and_nothing_to_write(bare_database_url: str) -> None:
    """The lines a read-only role is made with: SELECT on the schema's tables, no more."""
    env = {"OAIPMH_DATABASE_URL": bare_database_url}
    if bare_database_url.startswith("sqlite"):
        printed = invoke("grants", READER, env=env)
        assert printed.returncode == 1
        assert printed.stderr.count("\n") == 1 and "mode=ro" in printed.stderr
        return
    before = invoke("grants", READER, env=env)  # no schema yet: nothing to grant
    assert before.returncode == 1 and "oaipmh-server migrate" in before.stderr
    assert "Traceback" not in before.stderr
    assert invoke("migrate", env=env).returncode == 0
    printed = invoke("grants", READER, env=env)
    assert printed.returncode == 0
    database = bare_database_url.rsplit("/", 1)[1]
    assert printed.stdout.splitlines() == [
        f"GRANT CONNECT ON DATABASE {database} TO {READER};",
        f"GRANT USAGE ON SCHEMA public TO {READER};",
        "GRANT SELECT ON public.alembic_version, public.files, public.fragments, "
        "public.memberships, public.meta, public.records, public.sets, public.writers "
        f"TO {READER};",
    ]


@pytest.mark.parametrize("configured", [False, True], ids=["kept-secret", "configured-secret"])
def test_migrate_for_read_only_servers_says_what_it_prepared(
    empty_database_url: str, configured: bool
) -> None:
    """`migrate --read-only-servers` says it prepared the store, and where the servers' token
    secret comes from; it printed only plain `migrate`'s schema line, so an operator could
    not tell that the option had done anything."""
    env = {"OAIPMH_DATABASE_URL": empty_database_url}
    if configured:
        env["OAIPMH_TOKEN_SECRET"] = "s" * 40
    for _ in range(2):  # preparing it again says the same
        prepared = invoke("migrate", "--read-only-servers", env=env)
        assert prepared.returncode == 0, prepared.stderr
        schema, said = prepared.stdout.splitlines()
        assert schema.startswith("schema: ")
        assert said.startswith(
            "prepared for servers that cannot write: every write now raises the list "
            "cut-off mark as it commits; "
        )
        assert said.endswith(
            "the token secret is the configured one: give the servers the same"
            if configured
            else "the token secret is kept in the database, for the servers to read"
        )
    plain = invoke("migrate", env=env)
    assert len(plain.stdout.splitlines()) == 1


def test_a_read_only_server_answers_every_verb_and_lists_each_write_once_committed(
    empty_database_url: str, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> None:
    """The owner prepares the store (`migrate --read-only-servers`: the token secret, the
    mark, writes that raise it as they commit); a server that cannot write answers every
    verb, its lists cut off at the mark: a load's changes appear in the next incremental list once it has committed (even
    within the second it dated them), with their final datestamps, never before."""
    owner = empty_database_url
    prepared = invoke("migrate", "--read-only-servers", env={"OAIPMH_DATABASE_URL": owner})
    assert prepared.returncode == 0, prepared.stderr
    reader_url = read_only_url(owner, request)
    app = make_app(reader_url, page_size=7, token_secret="")  # the stored one
    assert app.extensions["oaipmh"].store.read_only is not None
    client = app.test_client()
    get = oai_get(client)
    since, listed = poll(get, None)  # an empty repository, its mark the migration's
    assert (since, listed) == ("2026-03-01T12:00:00Z", {})

    load_into(owner, write_jsonl(tmp_path / "a.jsonl", records(50)), clock=clock)
    since, listed = poll(get, since)  # the same second: the commit raised the mark to it
    assert listed == final_datestamps(owner) and len(listed) == 50

    for query in (
        {"verb": "Identify"},
        {"verb": "ListMetadataFormats"},
        {"verb": "ListSets"},
        {"verb": "GetRecord", "metadataPrefix": "oai_dc", "identifier": REPO + "10722/3"},
        {"verb": "ListRecords", "metadataPrefix": "oai_dc"},
    ):
        root = get(query)
        assert root.find("oai:error", NS) is None, etree.tostring(root)
    for page in ("/healthz", "/metrics"):
        assert client.get(page).status_code == 200

    # A load held before its commit: lists stop before it, then see it all.
    clock.tick()
    held = HeldLoad(owner, write_jsonl(tmp_path / "b.jsonl", records(50, "Corrected.")), clock)
    for _ in range(3):
        clock.tick()
        again, listed = poll(get, since)
        assert listed == {} and again == since
    held.commit()
    clock.tick()
    _, listed = poll(get, since)
    assert listed == final_datestamps(owner) and set(listed.values()) == {"2026-03-01T12:00:01Z"}

    # It cannot write: a load, or preparing the store, through it is one sentence.
    refused = invoke("migrate", "--read-only-servers", env={"OAIPMH_DATABASE_URL": reader_url})
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "cannot prepare the store from here" in refused.stderr
    store = SqlStore(reader_url)
    try:
        with pytest.raises(StoreUnavailable, match="cannot write the store"), store.loading(clock):
            pass
    finally:
        store.close()


def test_a_write_dated_past_the_clock_is_listed_once_committed(
    empty_database_url: str, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> None:
    """A write that starts within the second the previous one committed dates its changes
    a second later (past the mark), so it may commit before the clock reaches their
    datestamp. Its commit must still raise the mark to them: a server that cannot write
    only moves with the mark, and nothing else may write for days. (Seen in CI: a
    5,000-record load on a standby's primary, committed within that second, never listed.)"""
    owner = empty_database_url
    assert (
        invoke("migrate", "--read-only-servers", env={"OAIPMH_DATABASE_URL": owner}).returncode == 0
    )
    get = oai_get(
        make_app(read_only_url(owner, request), page_size=7, token_secret="").test_client()
    )
    since, _ = poll(get, None)
    load_into(owner, write_jsonl(tmp_path / "a.jsonl", records(5)), clock=clock)
    since, listed = poll(get, since)
    assert set(listed.values()) == {"2026-03-01T12:00:00Z"}
    # The clock has not moved: the next load dates its changes 12:00:01 and commits at 12:00:00.
    load_into(owner, write_jsonl(tmp_path / "b.jsonl", records(10, "Corrected.")), clock=clock)
    assert set(final_datestamps(owner).values()) == {"2026-03-01T12:00:01Z"}
    clock.tick(5)  # time passes; nothing writes
    _, listed = poll(get, since)
    assert listed == final_datestamps(owner)


def test_a_read_only_server_on_an_older_schema_refuses_to_start_in_one_line(
    empty_database_url: str, request: pytest.FixtureRequest
) -> None:
    owner = empty_database_url
    env = {"OAIPMH_DATABASE_URL": owner}
    assert invoke("migrate", "--read-only-servers", env=env).returncode == 0
    reader_url = read_only_url(owner, request)
    engine = create_engine(owner, poolclass=NullPool)
    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    engine.dispose()
    served = invoke("serve", env={"OAIPMH_DATABASE_URL": reader_url})
    assert served.returncode == 1
    assert served.stderr.count("\n") == 1 and "Traceback" not in served.stderr
    assert "schema revision 0005" in served.stderr
    assert "run `oaipmh-server migrate` with a role that can write" in served.stderr


def test_a_read_only_server_refuses_a_store_not_prepared_for_it_in_one_line(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    """A store loaded and served by writable processes only: its writes do not raise the
    mark when they commit, so a server that cannot write would lag until the next write
    starts. It says what to run instead, in one line."""
    served = invoke("serve", env={"OAIPMH_DATABASE_URL": read_only_url(database_url, request)})
    assert served.returncode == 1 and served.stderr.count("\n") == 1
    assert "not prepared for servers that cannot write" in served.stderr
    assert "run `oaipmh-server migrate --read-only-servers`" in served.stderr


def test_the_refusal_names_the_database_url_as_it_was_written(tmp_path: Path) -> None:
    """An SQLite URI filename, as docs/read-only.md writes it, is named in the refusal as
    the operator wrote it: SQLAlchemy's rendering of it read `sqlite:///file%3A/…`."""
    path = tmp_path / "oai.sqlite3"
    load_into(f"sqlite:///{path}", SAMPLES)
    reader = f"sqlite:///file:{path}?mode=ro&uri=true"
    served = invoke("serve", env={"OAIPMH_DATABASE_URL": reader})
    assert served.returncode == 1
    assert served.stderr.startswith(f"Error: cannot serve {reader}: it is opened read-only")


def test_a_writable_server_on_a_file_uri_watches_the_loads_lease(tmp_path: Path) -> None:
    """`sqlite:///file:PATH?uri=true` is the file PATH: a list must see a load's lease on
    `PATH-writer`, or it would take a live load's row for a dead one's and pass it."""
    path = tmp_path / "oai.sqlite3"
    SqlStore(f"sqlite:///{path}").close()
    store = SqlStore(f"sqlite:///file:{path}?uri=true")
    try:
        assert store.read_only is None
        assert getattr(store._lease, "path", None) == f"{path}-writer"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("command", "undone"),
    [
        (["load", "--no-progress", "SAMPLES"], "loaded"),
        (["delete", "10722/212116"], "deleted"),
        (["refresh-sets"], "changed"),
    ],
)
def test_a_write_through_a_store_it_cannot_write_says_so_in_one_line(
    tmp_path: Path, command: list[str], undone: str
) -> None:
    """A load, delete or refresh-sets pointed at a store opened read-only (a reader's URL,
    a standby) cannot run there: said as that, and where to run it, not as "the database
    failed", which reads as a fault to retry."""
    path = tmp_path / "oai.sqlite3"
    load_into(f"sqlite:///{path}", SAMPLES)
    assert (
        invoke(
            "migrate", "--read-only-servers", env={"OAIPMH_DATABASE_URL": f"sqlite:///{path}"}
        ).returncode
        == 0
    )
    reader = f"sqlite:///file:{path}?mode=ro&uri=true"
    args = [str(SAMPLES) if a == "SAMPLES" else a for a in command]
    refused = invoke(*args, env={"OAIPMH_DATABASE_URL": reader})
    assert refused.returncode == 1
    assert refused.stderr == (
        "Error: cannot write the store: it is opened read-only (mode=ro); run this where "
        f"the store can be written (the primary, a role that can write); nothing was {undone}\n"
    )


# -- a real primary and a hot standby ---------------------------------------------------


class Replicated:
    """A primary and a hot standby streaming from it, both throw-away clusters."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        self.primary = Cluster(bindir)
        try:
            self.standby = Cluster(bindir, primary=self.primary)
        except BaseException:
            self.primary.stop()
            raise

    def database(self, name: str) -> tuple[str, str]:
        """A new database on the primary, once the standby has it: (primary's URL,
        standby's URL)."""
        url = self.primary.create_database(name)
        prepared = invoke("migrate", "--read-only-servers", env={"OAIPMH_DATABASE_URL": url})
        assert prepared.returncode == 0, prepared.stderr
        self.caught_up()
        return url, self.standby.url(name)

    def caught_up(self) -> None:
        """Return once the standby has replayed everything the primary has written: its
        replay position reaches the primary's WAL insert position as it was now. (Not
        `pg_current_wal_lsn()`, the position written out: with synchronous_commit off, as
        the test clusters run, a commit returns before its record is written, and the
        standby could be "caught up" without it.)"""
        with self._connect(self.primary) as conn:
            query = "SELECT pg_current_wal_insert_lsn()"
            lsn = conn.execute(query).fetchone()[0]  # type: ignore[index]
        with self._connect(self.standby) as conn:
            for _ in range(1_000_000):
                query = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
                if conn.execute(query, (lsn,)).fetchone()[0]:  # type: ignore[index]
                    return
        raise AssertionError("the standby did not catch up")

    def replay(self, on: bool) -> None:
        with self._connect(self.standby) as conn:
            conn.execute("SELECT pg_wal_replay_resume()" if on else "SELECT pg_wal_replay_pause()")

    @staticmethod
    def _connect(cluster: Cluster) -> psycopg.Connection[Any]:
        return psycopg.connect(
            f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", autocommit=True
        )

    def stop(self) -> None:
        try:
            self.standby.stop()
        finally:
            self.primary.stop()


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    pair = Replicated()
    yield pair
    pair.stop()


def test_a_harvester_polling_a_standby_during_a_load_sees_every_change(
    replicated: Replicated, tmp_path: Path
) -> None:
    """A 5,000-record load on the primary (50 records updated, 4,950 new) while an
    incremental harvester polls a server on the standby: no list answers 503, nothing is
    listed before it is committed, and every change arrives with its final datestamp."""
    primary, standby = replicated.database("polled")
    load_into(primary, write_jsonl(tmp_path / "base.jsonl", records(50)))
    replicated.caught_up()
    app = make_app(standby, page_size=500)
    assert app.extensions["oaipmh"].store.read_only == "it is a hot standby"
    get = oai_get(app.test_client())  # every answer 200 (`tree`), never 503
    since, seen = poll(get, None)
    assert seen == final_datestamps(primary)

    failed: list[BaseException] = []

    def load() -> None:
        try:
            load_into(primary, write_jsonl(tmp_path / "big.jsonl", records(5000, "New.")))
        except BaseException as e:
            failed.append(e)

    loading = threading.Thread(target=load)
    loading.start()
    polls = 0  # those that ended while the load was still running
    while True:
        since, listed = poll(get, since)
        seen.update(listed)
        if not loading.is_alive():
            break
        polls += 1
        loading.join(0.05)  # a poll at most every 50 ms, or at once when the load ends
    assert not failed, failed
    assert polls > 0
    replicated.caught_up()
    _, listed = poll(get, since)
    seen.update(listed)
    final = final_datestamps(primary)
    assert len(final) == 5000
    assert seen == final


def test_a_harvest_alternating_between_standby_and_primary_servers_lists_each_record_once(
    replicated: Replicated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two servers on the standby and a writable one on the primary, the pages of one
    harvest asked of each in turn. The first page, on the primary, is cut off after an
    update the standby has not replayed (its replay paused): the standby does not serve
    the next page from its older state, which would miss records. It waits for its
    replay (503 with Retry-After only past the bound), then the harvest goes on, every
    record exactly once, as finally dated."""
    primary, standby = replicated.database("alternated")
    load_into(primary, write_jsonl(tmp_path / "base.jsonl", records(300)))
    replicated.caught_up()
    clients = [make_app(url, page_size=20).test_client() for url in (primary, standby, standby)]
    replicated.replay(False)
    try:
        # Records 0-99 change: they move to the end of the list, past every other record.
        load_into(primary, write_jsonl(tmp_path / "update.jsonl", records(100, "Changed.")))
        first = oai_get(clients[0])({"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"})
        token = first.findtext(".//oai:resumptionToken", namespaces=NS)
        assert token
        follow = {"verb": "ListIdentifiers", "resumptionToken": token}
        with monkeypatch.context() as bound:
            bound.setattr(readonly, "REPLAY_WAIT_SECONDS", 0.0)
            stale = clients[1].get("/oai", query_string=follow)
        assert stale.status_code == 503 and stale.headers["Retry-After"]

        # Within the bound it waits: the page is asked for, found behind, and answered
        # once the standby has replayed.
        waiting = threading.Event()

        def pause(seconds: float) -> None:
            waiting.set()
            time.sleep(seconds)

        monkeypatch.setattr(readonly, "time", SimpleNamespace(monotonic=time.monotonic,
                                                              sleep=pause))  # fmt: skip
        answered: list[Any] = []
        asking = threading.Thread(
            target=lambda: answered.append(clients[2].get("/oai", query_string=follow))
        )
        asking.start()
        assert waiting.wait(60), "the standby served the page without waiting"
    finally:
        replicated.replay(True)
    asking.join(60)
    (second,) = answered
    listed: list[tuple[str, str]] = []
    turn = 3
    for root in (first, tree(second)):
        listed += headers(root)
    root = tree(second)
    while token := root.findtext(".//oai:resumptionToken", namespaces=NS):
        root = oai_get(clients[turn % 3])({"verb": "ListIdentifiers", "resumptionToken": token})
        listed += headers(root)
        turn += 1
    assert turn > 10  # pages on each server
    assert Counter(identifier for identifier, _ in listed).most_common(1)[0][1] == 1
    assert dict(listed) == final_datestamps(primary)


def headers(root: etree._Element) -> list[tuple[str, str]]:
    """(identifier, datestamp) of each header of a list's page."""
    return [
        (h.findtext("oai:identifier", namespaces=NS) or "",
         h.findtext("oai:datestamp", namespaces=NS) or "")
        for h in root.iterfind(".//oai:header", NS)
    ]  # fmt: skip
