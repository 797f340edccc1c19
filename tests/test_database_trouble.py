"""What harvesters and operators see when the database's surroundings misbehave: another
session or process holding a lock on the records, a statement timeout set on the database,
a SQLite database restored (or its -wal removed) under a running server. A request answers
within seconds (503 and Retry-After when the store cannot), a load fails whole in one line
naming the cause, or finishes whole; a server serves the database now at its path.

A dropped connection costs at most one 503 (tests/test_pg_connections.py); here the
cluster is restarted and stopped under a live server. SQLite's write lock held by another
process is test_changes.py's for lists; for a load, here."""

from __future__ import annotations

import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from oaipmh_server.cli import main
from oaipmh_server.store import SqlStore, engine

from .cli import invoke
from .conftest import SAMPLES, LiveServer, make_app
from .db import everything, oai_identifiers
from .held_load import HOLDING
from .postgres import Cluster
from .served import end
from .test_backups import new_records

pytestmark = pytest.mark.store_behaviour
ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"])
ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])

HELD_LOAD = Path(__file__).parent / "held_load.py"
TOKEN = re.compile(r"<resumptionToken[^>]*>([^<]+)</resumptionToken>")
FIRST = "/oai?verb=ListRecords&metadataPrefix=oai_dc"
ONE = "/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:10722/212116"


def _session(postgres: Cluster, database_url: str) -> psycopg.Connection[Any]:
    name = database_url.rsplit("/", 1)[1]
    return psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=postgres dbname={name}")


@contextmanager
def records_locked(
    postgres: Cluster, database_url: str, mode: str, table: str = "records"
) -> Iterator[int]:
    """Another session holds a lock on `records` (or `table`) in `mode` (an operator's
    LOCK TABLE, a VACUUM FULL, another program's migration) until the block ends; its
    process id is given to the block."""
    with _session(postgres, database_url) as other:
        other.execute(f"LOCK TABLE {table} IN {mode} MODE")  # type: ignore[arg-type]
        try:
            yield other.info.backend_pid
        finally:
            other.rollback()


def within(seconds: float, call: Any) -> Any:
    """`call()`'s result, or AssertionError if it has not returned within `seconds` (it is
    left to finish in its thread once the lock it waits for is given up)."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"no answer within {seconds} s"
    return result[0]


def assert_load_failed_whole(ran: Any, naming: str) -> None:
    """A refused load as an operator's script sees it: status 1 and one line, no traceback,
    naming the cause and saying that nothing was loaded."""
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert ran.stderr.count("\n") == 1
    assert naming in ran.stderr
    assert "nothing was loaded" in ran.stderr


@ON_POSTGRESQL
def test_a_list_waits_seconds_not_for_ever_for_a_lock_another_session_holds(
    database_url: str, postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "SERVING_LOCK_WAIT_SECONDS", 0.3)
    client = make_app(database_url, page_size=10).test_client()
    assert client.get(FIRST).status_code == 200  # the pool's connection is made
    with records_locked(postgres, database_url, "ACCESS EXCLUSIVE"):
        for url in (FIRST, ONE):
            answer = within(20, lambda url=url: client.get(url))
            assert answer.status_code == 503 and "Retry-After" in answer.headers
    assert client.get(FIRST).status_code == 200
    assert client.get(ONE).status_code == 200


@ON_POSTGRESQL
@pytest.mark.parametrize("table", ["records", "fragments"])
def test_healthz_is_not_ok_while_a_lock_keeps_the_lists_from_reading(
    database_url: str, postgres: Cluster, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    """A load balancer asks /healthz whether to send harvesters: while another session's
    ACCESS EXCLUSIVE lock keeps the lists from their tables, it says 503 (after the lists'
    own lock wait, never hanging); pg_dump's ACCESS SHARE stops no list, nor /healthz. It
    said 200, reading only the count the last write kept."""
    monkeypatch.setattr(engine, "SERVING_LOCK_WAIT_SECONDS", 0.3)
    client = make_app(database_url, page_size=10).test_client()
    assert client.get("/healthz").status_code == 200
    with records_locked(postgres, database_url, "ACCESS EXCLUSIVE", table):
        assert within(20, lambda: client.get(FIRST)).status_code == 503
        answer = within(20, lambda: client.get("/healthz"))
        assert answer.status_code == 503 and "Retry-After" in answer.headers
    with records_locked(postgres, database_url, "ACCESS SHARE", table):
        assert within(20, lambda: client.get("/healthz")).status_code == 200
    assert client.get("/healthz").status_code == 200


@ON_POSTGRESQL
def test_a_load_fails_whole_naming_the_lock_another_session_holds_on_the_records(
    database_url: str, postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "LOAD_LOCK_WAIT_SECONDS", 0.3)
    before = everything(database_url)
    with records_locked(postgres, database_url, "ACCESS EXCLUSIVE"):
        ran = within(60, lambda: invoke("load", str(SAMPLES / "more.json"),
                                        env={"OAIPMH_DATABASE_URL": database_url}))  # fmt: skip
    assert_load_failed_whole(ran, naming="another session holds a lock on the records")
    assert everything(database_url) == before


@ON_POSTGRESQL
def test_a_load_waits_for_a_lock_that_only_keeps_others_from_writing(
    database_url: str, postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump's ACCESS SHARE (docs/backups.md: loads go on while it runs) does not stop a
    load, however short the load's wait for locks."""
    monkeypatch.setattr(engine, "LOAD_LOCK_WAIT_SECONDS", 0.3)
    with records_locked(postgres, database_url, "ACCESS SHARE"):
        ran = invoke("load", str(SAMPLES / "more.json"), env={"OAIPMH_DATABASE_URL": database_url})
    assert ran.returncode == 0, ran.stderr


@ON_POSTGRESQL
@pytest.mark.parametrize("reading", ["stats", "check"])
def test_stats_and_check_give_up_on_a_lock_saying_what_holds_it(
    database_url: str, postgres: Cluster, monkeypatch: pytest.MonkeyPatch, reading: str
) -> None:
    """They waited as long as the lock was held, without a word; they give up after
    engine.READ_LOCK_WAIT_SECONDS with one line naming the lock, the table and the session
    holding it (its process id and statement), and exit status 1."""
    monkeypatch.setattr(engine, "READ_LOCK_WAIT_SECONDS", 0.3)
    env = {"OAIPMH_DATABASE_URL": database_url}
    with records_locked(postgres, database_url, "ACCESS EXCLUSIVE") as holder:
        ran = within(20, lambda: invoke(reading, env=env))
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr and ran.stderr.count("\n") == 1, ran.stderr
    for named in ("ACCESS EXCLUSIVE", "records", f"pid {holder}",
                  "LOCK TABLE records IN ACCESS EXCLUSIVE MODE"):  # fmt: skip
        assert named in ran.stderr, (named, ran.stderr)
    again = invoke(reading, env=env)  # the lock given up: the command reads the store
    assert "gave up" not in again.stderr and again.stdout, again.stderr


@ON_POSTGRESQL
def test_the_session_holding_a_lock_is_named_without_terminal_escapes(
    database_url: str, postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement of the session named is anyone's who may log in to the database, and
    printed raw to a terminal it drives it (sets its title, clears the screen: click
    strips only the colour codes, and only where the output is no terminal, so it is
    asked for colour here as a terminal would be). Escaped, as a record id in a load's
    message is. (PostgreSQL itself writes an application name's escapes as `?`.)"""
    monkeypatch.setattr(engine, "READ_LOCK_WAIT_SECONDS", 0.3)
    env = {"OAIPMH_DATABASE_URL": database_url}
    with _session(postgres, database_url) as other:
        other.execute("LOCK TABLE records IN ACCESS EXCLUSIVE MODE /* \x1b]0;owned\x07\x1b[2J */")
        try:
            ran = within(20, lambda: CliRunner().invoke(main, ["stats"], env=env, color=True))
        finally:
            other.rollback()
    assert ran.exit_code == 1
    assert "\x1b" not in ran.output and "\x07" not in ran.output, repr(ran.output)
    assert "/* \\x1b]0;owned\\x07\\x1b[2J */" in ran.output, ran.output


@ON_POSTGRESQL
def test_migrate_waits_for_pg_dump_and_says_so(empty_database_url: str, postgres: Cluster) -> None:
    """docs/backups.md: a migration waits for pg_dump, however long. It waited without a
    word; after a few seconds it says on stderr what it waits for and who holds it."""
    SqlStore(empty_database_url).close()
    older = create_engine(empty_database_url, poolclass=NullPool)
    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    with older.begin() as conn:  # 0007 alters the fragments table: ACCESS EXCLUSIVE
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    older.dispose()
    with records_locked(postgres, empty_database_url, "ACCESS SHARE", "fragments") as holder:
        migrate = subprocess.Popen(
            [sys.executable, "-m", "oaipmh_server", "migrate"],
            env={**os.environ, "OAIPMH_DATABASE_URL": empty_database_url},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert migrate.stderr is not None and migrate.stdout is not None
        try:
            ready, _, _ = select.select([migrate.stderr], [], [], 30)
            assert ready, "migrate said nothing in 30 s"
            said = migrate.stderr.readline()
            assert migrate.poll() is None  # still waiting
        except BaseException:
            end(migrate)
            raise
    try:
        assert migrate.wait(60) == 0
        assert "→ 0008" in migrate.stdout.read()
        assert migrate.stderr.read() == ""
    finally:
        end(migrate)
        migrate.stdout.close()
        migrate.stderr.close()
    for named in ("waiting", "ACCESS EXCLUSIVE", "fragments", f"pid {holder}",
                  "LOCK TABLE fragments IN ACCESS SHARE MODE"):  # fmt: skip
        assert named in said, (named, said)


@ON_POSTGRESQL
def test_a_statement_timeout_set_on_the_database_is_named_not_taken_for_no_answer(
    database_url: str, postgres: Cluster
) -> None:
    name = database_url.rsplit("/", 1)[1]
    postgres.execute(f"ALTER DATABASE {name} SET statement_timeout = '1ms'")
    postgres.execute(f"ALTER DATABASE {name} SET lock_timeout = 0")
    ran = invoke("load", str(SAMPLES), env={"OAIPMH_DATABASE_URL": database_url})
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert "statement_timeout" in ran.stderr
    assert "no answer" not in ran.stderr and "cannot connect" not in ran.stderr


def _fetch(url: str, **params: str) -> requests.Response:
    return requests.get(url, params=params, timeout=30)


@ON_POSTGRESQL
@pytest.mark.live
def test_a_harvest_goes_on_with_its_token_across_a_restart_and_a_stop_of_postgresql(
    database_url: str, postgres: Cluster, tmp_path: Path
) -> None:
    """`pg_ctl restart -m fast` under a harvest: at most one answer is a 503 with
    Retry-After, the harvest goes on with its token. PostgreSQL stopped: every page says
    503 at once, none waits; started again: the same server answers, not restarted."""
    server = LiveServer(database_url, tmp_path, workers=1, OAIPMH_PAGE_SIZE="7",
                        OAIPMH_SERVER_METRICS_ALLOW="127.0.0.1")  # fmt: skip
    root = server.url.removesuffix("/oai")
    try:
        first = _fetch(server.url, verb="ListIdentifiers", metadataPrefix="oai_dc")
        assert first.status_code == 200
        harvested = re.findall(r"<identifier>([^<]+)</identifier>", first.text)
        next_token = TOKEN.search(first.text)
        postgres.restart()
        unavailable = 0
        while next_token is not None:
            page = _fetch(server.url, verb="ListIdentifiers", resumptionToken=next_token.group(1))
            if page.status_code == 503:
                assert "Retry-After" in page.headers
                unavailable += 1
                assert unavailable == 1, "more than one answer lost to the restart"
                continue
            assert page.status_code == 200
            harvested += re.findall(r"<identifier>([^<]+)</identifier>", page.text)
            next_token = TOKEN.search(page.text)
        assert sorted(harvested) == sorted(set(harvested))
        assert set(harvested) == oai_identifiers(database_url, deleted=None)

        postgres.halt()
        try:
            for path in ("/oai?verb=Identify", "/", "/healthz", "/metrics"):
                started = time.monotonic()
                answer = requests.get(root + path, timeout=30)
                assert answer.status_code == 503 and "Retry-After" in answer.headers, path
                assert time.monotonic() - started < 5, path
        finally:
            postgres.start()
        for path in ("/oai?verb=Identify", "/", "/healthz", "/metrics"):
            assert requests.get(root + path, timeout=30).status_code == 200, path
    finally:
        server.stop()


@contextmanager
def held_load(database_url: str) -> Iterator[subprocess.Popen[str]]:
    """A load of the samples held in its transaction after its 20th record
    (tests/held_load.py), yielded once it says so; it goes on when its stdin is closed.
    Ended, and its pipes closed, when the block ends."""
    load = subprocess.Popen(
        [sys.executable, str(HELD_LOAD), "20", "load", str(SAMPLES)],
        env={**os.environ, "OAIPMH_DATABASE_URL": database_url},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert load.stdout is not None and load.stdin is not None and load.stderr is not None
    try:
        assert load.stdout.readline().strip() == HOLDING
        yield load
    finally:
        end(load)
        for stream in (load.stdout, load.stderr):
            stream.close()


def let_go(load: subprocess.Popen[str]) -> str:
    """What the held load says once let go, which must be a failure (status 1)."""
    assert load.stdin is not None and load.stderr is not None
    load.stdin.close()
    assert load.wait(120) == 1
    return load.stderr.read()


@ON_POSTGRESQL
def test_a_load_under_way_when_postgresql_restarts_fails_whole_saying_the_connection_was_lost(
    database_url: str, postgres: Cluster
) -> None:
    before = everything(database_url)
    with held_load(database_url) as load:
        postgres.restart()
        said = let_go(load)  # it goes on, on a connection the restart ended
    assert "Traceback" not in said and said.count("\n") == 1, said
    assert "the connection to PostgreSQL was lost" in said
    assert "nothing was loaded" in said
    assert everything(database_url) == before


@ON_POSTGRESQL
def test_a_load_whose_session_the_idle_in_transaction_timeout_ended_names_the_setting(
    database_url: str, postgres: Cluster
) -> None:
    """A load held idle in its transaction (tests/held_load.py) past the database's
    idle_in_transaction_session_timeout, and let go once PostgreSQL has ended its session
    (seen in pg_stat_activity): PostgreSQL's last words are then waiting in the socket, the
    first thing the driver reads after the load's next statement, and the load names the
    setting (20 runs of 20). A timeout of milliseconds ending a load wherever it happens
    to pause was seen to leave the driver only "server closed the connection" at times;
    here nothing is sent on the session until PostgreSQL has ended it."""
    name = database_url.rsplit("/", 1)[1]
    postgres.execute(f"ALTER DATABASE {name} SET idle_in_transaction_session_timeout = '500ms'")
    before = everything(database_url)
    sessions = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    with held_load(database_url) as load:
        where = f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres"
        with psycopg.connect(where, autocommit=True) as watching:
            idle = watching.execute(sessions + " AND state = 'idle in transaction'", (name,))
            held = {pid for (pid,) in idle}
            assert held, "the held load is not idle in a transaction"
            soon(30, lambda: held & {pid for (pid,) in watching.execute(sessions, (name,))}, set())
        said = let_go(load)  # it goes on, on the session PostgreSQL ended
    assert "Traceback" not in said and said.count("\n") == 1, said
    assert "idle_in_transaction_session_timeout ended the session" in said
    assert "nothing was loaded" in said
    assert "closed" not in said and "lost" not in said
    assert everything(database_url) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_load_fails_whole_naming_the_write_lock_another_process_holds(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sqlite3 shell, or any program, in a write transaction (BEGIN IMMEDIATE) on the
    store: a load waits engine.LOCK_WAIT_SECONDS for it, then fails whole saying so (it
    said "OperationalError")."""
    monkeypatch.setattr(engine, "LOCK_WAIT_SECONDS", 0.3)
    before = everything(database_url)
    with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as other:
        other.execute("BEGIN IMMEDIATE")
        ran = invoke("load", str(SAMPLES / "more.json"), env={"OAIPMH_DATABASE_URL": database_url})
        other.rollback()
    assert_load_failed_whole(ran, naming="another process holds the database's write lock")
    assert everything(database_url) == before


def _waiting_for_a_lock(session: psycopg.Connection[Any], seconds: float) -> int:
    """The process id of the session waiting for a lock in this database (the load), once
    pg_stat_activity shows one (asked again and again, as `soon` asks)."""
    session.autocommit = True

    def waiting() -> list[int]:
        query = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")  # fmt: skip
        return [pid for (pid,) in session.execute(query)]

    soon(seconds, lambda: bool(waiting()), True)
    return waiting()[0]


@ON_POSTGRESQL
def test_a_load_another_session_cancels_fails_whole_naming_the_cancel(
    database_url: str, postgres: Cluster
) -> None:
    """An operator's pg_cancel_backend (PostgreSQL: "canceling statement due to user
    request"; a statement_timeout firing as a statement ends is reported in the same words)
    ends the load whole, named as a cancel, not as "cannot connect"."""
    before = everything(database_url)
    ran: list[Any] = []
    load = threading.Thread(
        target=lambda: ran.append(
            invoke("load", str(SAMPLES / "more.json"), env={"OAIPMH_DATABASE_URL": database_url})
        ),
        daemon=True,
    )
    with (
        records_locked(postgres, database_url, "ACCESS EXCLUSIVE"),
        closing(_session(postgres, database_url)) as operator,
    ):
        load.start()
        waiting = _waiting_for_a_lock(operator, 30)
        operator.execute("SELECT pg_cancel_backend(%s)", (waiting,))
        load.join(30)
    assert ran, "the load did not end when its statement was cancelled"
    assert_load_failed_whole(ran[0], naming="cancelled")
    assert "cannot connect" not in ran[0].stderr
    assert everything(database_url) == before


def served_records(server: LiveServer) -> int | None:
    """The records /healthz says the server serves, or None when it is not ok."""
    answer = requests.get(server.url.removesuffix("/oai") + "/healthz", timeout=30)
    return int(answer.json()["records"]) if answer.status_code == 200 else None


def soon(seconds: float, look: Any, expected: Any) -> None:
    """`look()` answers `expected` within `seconds` (it is asked again and again: a server
    notices a change to its files at its next requests, not at the moment it is made)."""
    deadline = time.monotonic() + seconds
    while (seen := look()) != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"still {seen!r}, not {expected!r}, after {seconds} s")
        time.sleep(0.05)


def sqlite_files(database_url: str) -> tuple[Path, Path, Path]:
    """The database file at the URL, its -wal and its -shm."""
    path = Path(database_url.removeprefix("sqlite:///"))
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


@ON_SQLITE
@pytest.mark.live
@pytest.mark.parametrize("restore", ["mv", "cp"])
def test_a_database_restored_under_a_running_server_is_served_and_loaded_into(
    database_url: str, tmp_path: Path, restore: str
) -> None:
    """A restore done while `serve` runs: the -wal and -shm removed, the backup moved onto
    the database's path (a new file) or copied onto it (the same file, rewritten). The
    server serves the restored state, and a later load, without a restart; it served the
    state it had, /healthz ok, and never saw a later load."""
    env = {"OAIPMH_DATABASE_URL": database_url}
    backup = tmp_path / "backup.sqlite3"
    assert invoke("backup", str(backup), env=env).returncode == 0
    restored = len(oai_identifiers(f"sqlite:///{backup}", deleted=None))
    server = LiveServer(database_url, tmp_path, workers=1)
    try:
        assert invoke("load", str(new_records(tmp_path / "new.jsonl", 3)), env=env).returncode == 0
        loaded = served_records(server)
        assert loaded is not None and loaded > restored
        database, wal, shm = sqlite_files(database_url)
        wal.unlink()
        shm.unlink()
        if restore == "mv":
            backup.rename(database)
        else:
            shutil.copyfile(backup, database)
        soon(10, lambda: served_records(server), restored)
        assert invoke("load", str(new_records(tmp_path / "new.jsonl", 3)), env=env).returncode == 0
        soon(10, lambda: served_records(server), loaded)
    finally:
        server.stop()


@ON_SQLITE
@pytest.mark.live
def test_a_load_after_the_wal_was_removed_under_a_running_server_is_served(
    database_url: str, tmp_path: Path
) -> None:
    env = {"OAIPMH_DATABASE_URL": database_url}
    server = LiveServer(database_url, tmp_path, workers=1)
    try:
        before = served_records(server)
        assert before is not None
        _, wal, shm = sqlite_files(database_url)
        wal.unlink()
        shm.unlink()
        assert invoke("load", str(new_records(tmp_path / "new.jsonl", 3)), env=env).returncode == 0
        after = len(oai_identifiers(database_url, deleted=None))
        assert after > before
        soon(10, lambda: served_records(server), after)
    finally:
        server.stop()


@ON_SQLITE
@pytest.mark.live
def test_a_database_file_replaced_by_one_unusable_is_503_until_a_good_one_is_back(
    database_url: str, tmp_path: Path
) -> None:
    """Not a database, or no file at all: every request is 503 with Retry-After, /healthz
    too (never a 500, never the old state), no empty database is made at the path; the
    database moved back, it is served again, without a restart."""
    server = LiveServer(database_url, tmp_path, workers=1)
    root = server.url.removesuffix("/oai")
    database, wal, shm = sqlite_files(database_url)
    kept = tmp_path / "kept.sqlite3"
    try:
        records = served_records(server)
        assert records is not None
        database.rename(kept)
        soon(10, lambda: served_records(server), None)
        for path in (FIRST, ONE, "/healthz", "/"):
            answer = requests.get(root + path, timeout=30)
            assert answer.status_code == 503 and "Retry-After" in answer.headers, path
        assert not database.exists()
        database.write_bytes(b"not a database " * 1000)
        wal.unlink(missing_ok=True)
        shm.unlink(missing_ok=True)
        for path in (FIRST, ONE, "/healthz", "/"):
            answer = requests.get(root + path, timeout=30)
            assert answer.status_code == 503 and "Retry-After" in answer.headers, path
        kept.rename(database)
        soon(10, lambda: served_records(server), records)
        assert requests.get(root + FIRST, timeout=30).status_code == 200
    finally:
        server.stop()
