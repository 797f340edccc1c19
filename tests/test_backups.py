"""docs/backups.md, run as written: a backup taken while the server serves and a load is
held half-way restores to a store holding the state before that load, whole, that a
server harvests."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import Engine, event

from oaipmh_server.cli import main
from oaipmh_server.ingest.load import BATCH

from .cli import run_cli
from .conftest import Databases, LiveServer, load_into, make_app, sqlite_url
from .db import everything, oai_identifiers
from .held_load import HOLDING
from .oai import harvest, identifiers
from .postgres import Cluster

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour

HELD_LOAD = Path(__file__).parent / "held_load.py"
WAIT = 120


def new_records(path: Path, count: int) -> Path:
    lines = [
        json.dumps({"id": f"backup/{n}", "sets": ["com_1:col_1"],
                    "metadata": [{"field": "dc.title", "value": f"Loaded during a backup {n}"},
                                 {"field": "dc.date.accessioned", "value": "2026-12-01"}]})
        for n in range(count)
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@contextmanager
def held_load(database_url: str, records: Path) -> Iterator[subprocess.Popen[str]]:
    """`oaipmh-server load` held after more than a batch of records: they are written in
    its transaction, uncommitted. Its stderr goes to a file (a pipe nobody reads while it
    is held could fill and stop it)."""
    errors = records.with_suffix(".stderr")
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(HELD_LOAD), str(BATCH + 10), "load", str(records)],
            env={**os.environ, "OAIPMH_DATABASE_URL": database_url},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    try:
        assert select.select([process.stdout], [], [], WAIT)[0], "the load never held"
        assert process.stdout.readline().strip() == HOLDING, errors.read_text()
        yield process
        process.stdin.close()  # the load goes on, and commits
        assert process.wait(WAIT) == 0, errors.read_text()
        assert "Loaded 1200 records" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            stream.close()


def assert_serves(
    restored_url: str, before: list[tuple[object, ...]], ids: set[str], tmp: Path
) -> None:
    """The restored store is the one before the held load, and a harvest gets all of it."""
    assert everything(restored_url) == before
    client = make_app(restored_url, page_size=10).test_client()
    pages, _ = harvest(client, "ListRecords", metadataPrefix="oai_dc")
    assert {i for page in pages for i in identifiers(page)} == ids
    result = CliRunner().invoke(main, ["migrate"], env={"OAIPMH_DATABASE_URL": restored_url})
    assert result.exit_code == 0 and "up to date" in result.output
    # The held load's lease, copied into the backup, is a dead writer's: loads go on.
    summary = load_into(restored_url, new_records(tmp / "again.jsonl", 3))
    assert summary.added == 3
    assert len(oai_identifiers(restored_url)) == len(ids) + 3


def test_a_sqlite_backup_taken_during_a_load_restores_the_state_before_it(
    databases: Databases, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    database_url = databases.samples("sqlite", request)
    live = Path(database_url.removeprefix("sqlite:///"))
    before, ids = everything(database_url), oai_identifiers(database_url)
    backup = tmp_path / "backups" / "oai-2026-12-06.sqlite3"
    backup.parent.mkdir()
    server = LiveServer(database_url, tmp_path, workers=1)
    try:
        with held_load(database_url, new_records(tmp_path / "new.jsonl", 1200)):
            # docs/backups.md: oaipmh-server backup /var/backups/oaipmh-server/oaipmh-$(date +%F).sqlite3
            made = run_cli("backup", str(backup), env={"OAIPMH_DATABASE_URL": database_url})
            assert made.returncode == 0, made.stderr
            assert f"{len(ids)} records, schema 0008" in made.stdout
            assert requests.get(server.url, params={"verb": "Identify"}, timeout=30).ok
    finally:
        server.stop()
    assert oai_identifiers(database_url) > ids  # the load went on after the backup
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    assert not list(backup.parent.glob("*.partial*"))
    assert not Path(f"{backup}-wal").exists()
    # docs/backups.md: systemctl stop …; rm -f DB-wal DB-shm; cp BACKUP DB; systemctl start …
    for stale in (f"{live}-wal", f"{live}-shm"):
        subprocess.run(["rm", "-f", stale], check=True)
    subprocess.run(["cp", str(backup), str(live)], check=True)
    assert_serves(sqlite_url(live), before, ids, tmp_path)


def test_a_postgresql_dump_taken_during_a_load_restores_the_state_before_it(
    databases: Databases, request: pytest.FixtureRequest, postgres: Cluster, tmp_path: Path
) -> None:
    database_url = databases.samples("postgresql", request)
    name = database_url.rsplit("/", 1)[1]
    before, ids = everything(database_url), oai_identifiers(database_url)
    dump = tmp_path / "oai-2026-12-06.dump"
    connection = ["-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres"]
    server = LiveServer(database_url, tmp_path, workers=1)
    try:
        with held_load(database_url, new_records(tmp_path / "new.jsonl", 1200)):
            # docs/backups.md: pg_dump -Fc -f /var/backups/oai/oai-$(date +%F).dump oai
            pg_dump = [str(postgres.bindir / "pg_dump"), *connection]
            subprocess.run([*pg_dump, "-Fc", "-f", str(dump), name], check=True, timeout=WAIT)
            assert requests.get(server.url, params={"verb": "Identify"}, timeout=30).ok
    finally:
        server.stop()
    assert oai_identifiers(database_url) > ids
    restored = f"{name}_restored"
    try:
        # docs/backups.md: createdb oai_restored; pg_restore --no-owner --single-transaction -d …
        subprocess.run([str(postgres.bindir / "createdb"), *connection, restored], check=True)
        subprocess.run(
            [str(postgres.bindir / "pg_restore"), *connection,
             "--no-owner", "--single-transaction", "-d", restored, str(dump)],
            check=True, capture_output=True, timeout=WAIT,
        )  # fmt: skip
        assert_serves(postgres.url(restored), before, ids, tmp_path)
    finally:
        postgres.drop_database(restored)


def test_backup_refuses_postgresql_and_names_pg_dump(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["backup", str(tmp_path / "x")],
        env={"OAIPMH_DATABASE_URL": "postgresql+psycopg://oai@db.example.org/oai"},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "pg_dump -Fc" in result.output
    assert not (tmp_path / "x").exists()


def test_a_failed_backup_keeps_the_earlier_one(tmp_path: Path) -> None:
    runner = CliRunner()
    database = tmp_path / "oai.sqlite3"
    env = {"OAIPMH_DATABASE_URL": sqlite_url(database)}
    assert runner.invoke(main, ["migrate"], env=env).exit_code == 0
    earlier = tmp_path / "backup.sqlite3"
    assert runner.invoke(main, ["backup", str(earlier)], env=env).exit_code == 0
    kept = earlier.read_bytes()
    database.write_bytes(b"not a database" * 1000)
    for stale in (f"{database}-wal", f"{database}-shm"):
        Path(stale).unlink(missing_ok=True)
    result = runner.invoke(main, ["backup", str(earlier)], env=env)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot back up {database} to {earlier}")
    assert len(result.output.splitlines()) == 1
    assert earlier.read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.sqlite3", "oai.sqlite3"]


def test_backup_into_a_folder_that_does_not_exist_names_the_folder(tmp_path: Path) -> None:
    """`backup /var/backups/oaipmh-server/oaipmh-$(date +%F).sqlite3`, as docs/backups.md
    gives it, on a host where that folder is not made yet: the message names the folder to
    make, not the `.partial` file the copy is first written to."""
    env = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3")}
    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0
    destination = tmp_path / "backups" / "oai" / "oai.sqlite3"
    result = CliRunner().invoke(main, ["backup", str(destination)], env=env)
    assert (result.exit_code, result.output) == (
        1,
        f"Error: cannot back up {tmp_path / 'oai.sqlite3'} to {destination}: the folder "
        f"{destination.parent} does not exist (make it first, e.g. mkdir -p -m 0700)\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oai.sqlite3"]


def test_backup_to_a_name_too_long_for_the_file_system_is_one_line(tmp_path: Path) -> None:
    """Found by fuzzing the command line: a destination whose name is longer than the file
    system takes (ENAMETOOLONG) was a traceback from the checks before the copy."""
    env = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3")}
    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0
    destination = tmp_path / ("x" * 300)
    result = CliRunner().invoke(main, ["backup", str(destination)], env=env)
    assert (result.exit_code, result.output) == (
        1,
        f"Error: cannot back up {tmp_path / 'oai.sqlite3'} to {destination}: File name too long\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oai.sqlite3"]


def test_backup_to_a_link_that_leads_to_itself_replaces_the_link(tmp_path: Path) -> None:
    """Found by fuzzing the command line: a destination that is a symbolic link loop was
    a traceback (Python 3.11's Path.resolve raises RuntimeError for it). The backup is
    renamed over the link, as over any link given as the destination."""
    env = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3")}
    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0
    destination = tmp_path / "loop"
    destination.symlink_to(destination)
    result = CliRunner().invoke(main, ["backup", str(destination)], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Backed up {tmp_path / 'oai.sqlite3'} to {destination}: ")
    assert destination.is_file() and not destination.is_symlink()


def test_backup_over_a_pipe_or_device_is_refused(tmp_path: Path) -> None:
    """Found by fuzzing the command line: `backup /dev/null` renamed the copy over the
    device (run as root, /dev/null became a regular file), and a named pipe was replaced
    the same way. Only a file, or a name not taken, is a backup's destination."""
    env = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3")}
    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    result = CliRunner().invoke(main, ["backup", str(pipe)], env=env)
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {pipe} is not a file but a pipe, device or socket; give the backup's file name\n",
    )
    assert pipe.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oai.sqlite3", "pipe"]


def test_backup_of_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    env = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "none.sqlite3")}
    result = CliRunner().invoke(main, ["backup", str(tmp_path / "b.sqlite3")], env=env)
    assert (result.exit_code, result.output) == (
        1,
        f"Error: no SQLite database at {tmp_path / 'none.sqlite3'}\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_load_names_the_disk_and_its_free_space(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL, made here by a page limit the
    load runs into): the operator is told which disk, and how much room is left on it."""
    url = f"sqlite:///{tmp_path / 'full.sqlite3'}"
    env = {"OAIPMH_DATABASE_URL": url}
    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0
    records = tmp_path / "r.jsonl"
    value = "x" * 100_000
    records.write_text("".join(json.dumps({"id": f"1/{n}", "metadata": [
        {"field": "dc.title", "value": f"{value}{n}"},
        {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]}) + "\n"
        for n in range(50)))  # fmt: skip

    def small_disk(connection: Any, record: Any) -> None:
        connection.execute("PRAGMA max_page_count = 200")

    event.listen(Engine, "connect", small_disk)
    try:
        result = CliRunner().invoke(main, ["load", str(records)], env=env)
    finally:
        event.remove(Engine, "connect", small_disk)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"the disk holding {tmp_path} is full" in result.output, result.output
    assert re.search(r"\(\d[\d.,]* [KMGT]?B free\)", result.output), result.output
    assert "nothing was loaded" in result.output
