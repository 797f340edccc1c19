"""A database URL naming an SQLite database in memory (`sqlite://` and its other forms):
the commands that write or serve refuse it with one line, `config check` names it as a
mistake, and the store itself still takes it (the tests' own stores are in memory)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner
from flask import Flask

from oaipmh_server.cli import main
from oaipmh_server.config import load_settings
from oaipmh_server.formats import build_formats
from oaipmh_server.ingest.load import load_paths
from oaipmh_server.store import SqlStore, readonly
from oaipmh_server.store.sqlite_urls import vanishes
from oaipmh_server.web import serving

from .cli import invoke
from .conftest import SAMPLES, SECRET, sqlite_url

IN_MEMORY = [
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite+pysqlite://",
    "sqlite:///file:oai?mode=memory&uri=true",
    "sqlite:///file:oai?mode=memory&cache=shared&uri=1",
    "sqlite:///file::memory:?uri=true",
    "sqlite:///file:oai?vfs=memdb&uri=true",
    "sqlite:///file:?uri=true",  # SQLite's nameless temporary file, gone on close
]
LASTING = [
    "sqlite:////var/lib/oai/oai.sqlite3",
    "sqlite:///oaipmh.sqlite3",
    "sqlite:///file:/var/lib/oai/oai.sqlite3?mode=ro&uri=true",
    "sqlite:///file:oai?mode=memory",  # without uri=true: a file named "file:oai"
    "postgresql+psycopg://oai@db.example.org/oai",
    "not a URL",
]
WHY = (
    "is an SQLite database in memory, gone when the command ends: what load, delete, "
    "refresh-sets and migrate write would be lost, and serve would serve an empty store; "
    "name a file (sqlite:////var/lib/oai/oai.sqlite3) or a PostgreSQL database"
)
VARIABLE = "environment variable OAIPMH_DATABASE_URL"


@pytest.mark.parametrize("url", IN_MEMORY)
def test_each_form_of_an_in_memory_database_vanishes(url: str) -> None:
    assert vanishes(url)


@pytest.mark.parametrize("url", LASTING)
def test_a_file_or_a_server_lasts(url: str) -> None:
    assert not vanishes(url)


@pytest.mark.parametrize(
    "command",
    [("load", str(SAMPLES / "sets.json")), ("delete", "10722/1"), ("refresh-sets",),
     ("migrate",)],
    ids=lambda command: command[0],
)  # fmt: skip
@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", IN_MEMORY[3]])
def test_a_command_that_writes_refuses_an_in_memory_database(
    command: tuple[str, ...], url: str
) -> None:
    ran = invoke(*command, env={"OAIPMH_DATABASE_URL": url})
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [f"Error: {VARIABLE}: store.database_url: {url!r} {WHY}"]
    assert ran.stdout == ""


def test_the_refusal_names_the_file_that_set_it(tmp_path: Path) -> None:
    config = tmp_path / "oaipmh.toml"
    config.write_text('[store]\ndatabase_url = "sqlite://"\n')
    ran = invoke("load", str(SAMPLES / "sets.json"), env={"OAIPMH_CONFIG": str(config)})
    assert ran.returncode == 1
    assert ran.stderr == f"Error: {config}: store.database_url: 'sqlite://' {WHY}\n"


def test_serve_refuses_an_in_memory_database_before_listening(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import oaipmh_server.web.metrics  # noqa: F401  (as tests/test_serve_settings.py `started`)

    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(serving, "run", lambda options, load, check: runs.append(options))
    monkeypatch.setattr(Flask, "run", lambda app, **options: runs.append(options))
    for arguments in (["serve"], ["serve", "--dev"]):
        result = CliRunner().invoke(main, arguments, env={"OAIPMH_DATABASE_URL": "sqlite://"})
        assert result.exit_code == 1
        assert result.stderr == f"Error: {VARIABLE}: store.database_url: 'sqlite://' {WHY}\n"
    assert runs == []


def test_a_reload_onto_an_in_memory_database_keeps_the_workers_it_had(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A HUP reads the configuration again in the master (`check`); one now naming an
    in-memory database is refused there, as `serve` refuses it, so no new worker starts."""
    import oaipmh_server.web.metrics  # noqa: F401

    checks: list[Any] = []
    monkeypatch.setattr(serving, "run", lambda options, load, check: checks.append(check))
    monkeypatch.setenv("OAIPMH_DATABASE_URL", sqlite_url(tmp_path / "oai.sqlite3"))
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("OAIPMH_DATABASE_URL", "sqlite://")
    with pytest.raises(click.ClickException) as refused:
        checks[0]()
    assert str(refused.value) == f"{VARIABLE}: store.database_url: 'sqlite://' {WHY}"


def test_config_check_names_an_in_memory_database_as_a_mistake() -> None:
    result = CliRunner().invoke(main, ["config", "check"], env={"OAIPMH_DATABASE_URL": "sqlite://"})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {VARIABLE}: store.database_url: 'sqlite://' {WHY}",
        "1 mistake(s); serve would refuse to start",
    ]


def test_a_command_that_only_reads_is_not_refused() -> None:
    """`stats` on an in-memory database shows an empty store: nothing is lost by it."""
    ran = invoke("stats", env={"OAIPMH_DATABASE_URL": "sqlite://"})
    assert ran.returncode == 0, ran.stderr


def test_the_store_itself_takes_an_in_memory_database() -> None:
    """The refusal is the command line's: a store on `sqlite://` opens and is empty."""
    store = SqlStore("sqlite://")
    try:
        assert store.count_all() == 0
    finally:
        store.close()


def load_open(url: str) -> SqlStore:
    """A store on `url` with the samples loaded into it, left open: a database that
    vanishes is gone once its store closes, so load_into (which closes its own) cannot."""
    store = SqlStore(url, token_secret=SECRET)
    settings = load_settings({"database_url": url}, environ={})
    load_paths([SAMPLES], store, settings, build_formats(settings), wait=True)
    return store


@pytest.mark.parametrize("url", IN_MEMORY)
def test_every_connection_to_an_in_memory_store_finds_its_records(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each form `vanishes` names is opened as `sqlite://` is: one connection the store's
    reads and writes share (StaticPool), and no writer lease file. Before, only
    `sqlite://` and `sqlite:///:memory:` were: a read while a connection was held (a
    transaction open) found another, empty database ("no such table") for
    `file::memory:`, `vfs=memdb` and the nameless temporary file, and a load left a
    lease file named after the URL (`oai-writer`, `:memory:-writer`, `-writer`) in the
    working folder."""
    monkeypatch.chdir(tmp_path)
    store = load_open(url)
    try:
        loaded = store.count_all()
        assert loaded > 0
        with store.engine.connect():
            assert store.count_all() == loaded
    finally:
        store.close()
    assert list(tmp_path.iterdir()) == []


def test_an_in_memory_store_is_never_taken_for_a_file_it_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`file:oai?mode=memory` names no file: a file `oai` this user may not write beside
    it does not make the store read-only (it was taken for that file, and the store
    refused to open: "this user may not write oai, so it cannot be migrated")."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "oai").write_bytes(b"")
    # As if this user may write no file (root may write any): for the store's read-only
    # check alone, not for what opening the store reads (alembic's scripts).
    denied = SimpleNamespace(path=os.path, W_OK=os.W_OK, access=lambda path, mode: False)
    monkeypatch.setattr(readonly, "os", denied)
    store = SqlStore(IN_MEMORY[3], token_secret=SECRET)
    try:
        assert store.read_only is None
    finally:
        store.close()
