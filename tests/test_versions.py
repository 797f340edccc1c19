"""Versions and upgrades: the program says its version, `migrate` brings the schema up to
date saying from which revision to which, the store records which version migrated it, and
an older program on a newer schema stops with one line naming the version it needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy import create_engine, delete, insert, select
from sqlalchemy.pool import NullPool

import oaipmh_server
from oaipmh_server.cli import main
from oaipmh_server.store import SqlStore, revisions
from oaipmh_server.store.revisions import WRITTEN_BY_KEY
from oaipmh_server.store.schema import meta_table

from .cli import Ran, run_cli
from .conftest import ROOT, SAMPLES, free_port

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
HEAD = "0008"  # the newest revision in oaipmh_server/store/migrations/versions
FUTURE, FUTURE_VERSION = "0099", "9.9.0"


def run(database_url: str, *args: str) -> Ran | subprocess.CompletedProcess[str]:
    """`oaipmh-server ARGS` as an operator runs it: in process (tests/cli.py; the same exit
    status and output), `serve` in a process of its own."""
    return run_cli(*args, env={"OAIPMH_DATABASE_URL": database_url})


def installed_script() -> str:
    """The `oaipmh-server` script pip installed beside this Python (a venv), or on PATH."""
    beside = Path(sys.executable).parent / "oaipmh-server"
    found = str(beside) if beside.exists() else shutil.which("oaipmh-server")
    assert found, "oaipmh-server is not installed (pip install -e .)"
    return found


def test_version_option_prints_the_installed_package_version() -> None:
    result = subprocess.run([installed_script(), "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"oaipmh-server, version {VERSION}\n"
    assert oaipmh_server.__version__ == VERSION


def test_migrate_creates_the_schema_then_finds_it_up_to_date(bare_database_url: str) -> None:
    runner = CliRunner()
    env = {"OAIPMH_DATABASE_URL": bare_database_url}
    first = runner.invoke(main, ["migrate"], env=env)
    assert (first.exit_code, first.output) == (
        0,
        f"schema: none → {HEAD} (oaipmh-server {VERSION})\n",
    )
    again = runner.invoke(main, ["migrate"], env=env)
    assert again.exit_code == 0
    assert again.output == f"schema: {HEAD}, up to date (written by oaipmh-server {VERSION})\n"


def test_the_newest_migration_file_is_alembics_head() -> None:
    """A store is taken for up to date, without loading Alembic, when it is at the
    newest revision the migration files are named by: Alembic's own head."""
    assert revisions._newest() == revisions._head() == HEAD


def test_a_store_up_to_date_is_opened_without_loading_alembic(empty_database_url: str) -> None:
    """Loading Alembic is a tenth of a second of CPU that every command and server start
    paid for; it is loaded only to create or migrate a schema."""
    SqlStore(empty_database_url).close()  # creates the schema
    opened = subprocess.run(
        [sys.executable, "-c", OPEN_AND_SAY_WHETHER_ALEMBIC_IS_LOADED, empty_database_url],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (opened.returncode, opened.stdout) == (0, f"{HEAD} False\n"), opened.stderr


OPEN_AND_SAY_WHETHER_ALEMBIC_IS_LOADED = """
import sys
from oaipmh_server.store import SqlStore

store = SqlStore(sys.argv[1])
print(store.migration.after, "alembic" in sys.modules)
store.close()
"""


def test_migrate_upgrades_an_older_schema_and_records_who_did(empty_database_url: str) -> None:
    SqlStore(empty_database_url).close()
    engine = create_engine(empty_database_url, poolclass=NullPool)
    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    with engine.begin() as conn:  # a store as oaipmh-server before 1.0.0 left it
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
        conn.execute(delete(meta_table).where(meta_table.c.key == WRITTEN_BY_KEY))
    engine.dispose()
    runner = CliRunner()
    env = {"OAIPMH_DATABASE_URL": empty_database_url}
    result = runner.invoke(main, ["migrate"], env=env)
    assert result.exit_code == 0
    assert result.output == f"schema: 0005 → {HEAD} (oaipmh-server {VERSION})\n"
    stats = runner.invoke(main, ["stats"], env=env)
    assert stats.exit_code == 0
    assert stats.output.endswith(f"schema: {HEAD} (written by oaipmh-server {VERSION})\n")


def test_stats_says_when_the_schema_was_written_before_versions_were_recorded(
    database_url: str,
) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(delete(meta_table).where(meta_table.c.key == WRITTEN_BY_KEY))
    engine.dispose()
    result = CliRunner().invoke(main, ["stats"], env={"OAIPMH_DATABASE_URL": database_url})
    assert result.exit_code == 0
    assert result.output.endswith(f"schema: {HEAD} (written by oaipmh-server before 1.0.0)\n")


def stamp_future(database_url: str, written_by: str | None = FUTURE_VERSION) -> None:
    """The store as a newer oaipmh-server leaves it: a revision this one does not know."""
    SqlStore(database_url).close()
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{FUTURE}'")
        conn.execute(delete(meta_table).where(meta_table.c.key == WRITTEN_BY_KEY))
        if written_by is not None:
            conn.execute(insert(meta_table).values(key=WRITTEN_BY_KEY, value=written_by))
    engine.dispose()


@pytest.mark.parametrize(
    "args",
    [["migrate"], ["stats"], ["load", str(SAMPLES)], ["delete", "x"], ["refresh-sets"],
     ["check"]],
    ids=lambda args: args[0],
)  # fmt: skip
def test_an_older_program_on_a_newer_schema_stops_with_one_line(
    empty_database_url: str, args: list[str]
) -> None:
    stamp_future(empty_database_url)
    result = run(empty_database_url, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: the database ")
    assert f"is at schema revision {FUTURE}, written by oaipmh-server {FUTURE_VERSION}" in line
    assert f"this is oaipmh-server {VERSION}, which knows revisions up to {HEAD}" in line
    assert f"run oaipmh-server {FUTURE_VERSION} or later" in line


def test_serve_on_a_newer_schema_stops_before_it_listens(
    empty_database_url: str, tmp_path: Path
) -> None:
    stamp_future(empty_database_url)
    port = free_port()
    result = run(empty_database_url, "serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert f"written by oaipmh-server {FUTURE_VERSION}" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert "Listening" not in result.stdout + result.stderr


def test_a_newer_schema_without_a_recorded_version_still_stops_with_one_line(
    empty_database_url: str,
) -> None:
    stamp_future(empty_database_url, written_by=None)
    result = run(empty_database_url, "stats")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert f"is at schema revision {FUTURE}, written by a newer oaipmh-server" in line
    assert "run a newer one (or restore a backup taken before the upgrade)" in line


def test_the_store_is_left_as_it_was_by_a_refused_program(empty_database_url: str) -> None:
    """Refused before any lock or write: the newer program's schema and record stay."""
    stamp_future(empty_database_url)
    run(empty_database_url, "migrate")
    engine = create_engine(empty_database_url, poolclass=NullPool)
    with engine.connect() as conn:
        revisions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        written_by = conn.execute(
            select(meta_table.c.value).where(meta_table.c.key == WRITTEN_BY_KEY)
        )
        assert (revisions, written_by.all()) == ([(FUTURE,)], [(FUTURE_VERSION,)])
    engine.dispose()
