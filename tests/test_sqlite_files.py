"""The file an SQLite URL names, asked one way (store.sqlite_urls.database_file), checked against
the file sqlite3 actually opens through SQLAlchemy, and each thing kept beside the
database or said about it when its URL is an SQLite URI filename (`file:`, uri=true)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from oaipmh_server.cli import main
from oaipmh_server.errors import StoreUnavailable
from oaipmh_server.store import SqlStore, readonly
from oaipmh_server.store.failures import cannot_open, disk_full
from oaipmh_server.store.sqlite_urls import database_file
from oaipmh_server.web.admission import HarvestLimit

from .conftest import SAMPLES, load_into, sqlite_url

# One database, spelt as an SQLite URI filename: absolute, and relative to the working
# folder with SQLite's mode=rwc (what sqlite3 and SQLAlchemy accept and open as the file).
URI_SPELLINGS = [
    pytest.param("sqlite:///file:{path}?uri=true", id="absolute"),
    pytest.param("sqlite:///file:{relative}?mode=rwc&uri=true", id="relative"),
]


def spelt(url: str, path: Path) -> str:
    return url.format(path=path, relative=os.path.relpath(path))


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder: relative names are SQLite's relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files_under(folder: Path) -> set[Path]:
    return {Path(root, name) for root, _, names in os.walk(folder) for name in names}


def opened(url: str) -> set[Path]:
    """The files that appear when SQLAlchemy and sqlite3 open `url` and write to it."""
    folder = Path.cwd()
    before = files_under(folder)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x)"))
    finally:
        engine.dispose()
    return files_under(folder) - before


# (URL, the file under the working folder it names); {here} is the folder, absolute.
NAMED = [
    pytest.param("sqlite:///{here}/plain.sqlite3", "plain.sqlite3", id="absolute"),
    pytest.param("sqlite:///relative.sqlite3", "relative.sqlite3", id="relative"),
    pytest.param("sqlite:///gone/../dots.sqlite3", "dots.sqlite3", id="relative-dots"),
    pytest.param("sqlite:///with%20space.sqlite3", "with space.sqlite3", id="plain-escaped"),
    pytest.param("sqlite:///file:{here}/a.sqlite3?uri=true", "a.sqlite3", id="uri-absolute"),
    pytest.param("sqlite:///file:b.sqlite3?mode=rwc&uri=true", "b.sqlite3", id="uri-relative"),
    pytest.param("sqlite:///file://{here}/c.sqlite3?uri=true", "c.sqlite3", id="uri-empty-host"),
    pytest.param(
        "sqlite:///file://localhost{here}/d.sqlite3?uri=1", "d.sqlite3", id="uri-localhost"
    ),
    # SQLAlchemy decodes the URL's escapes once, SQLite the URI's once more.
    pytest.param("sqlite:///file:e%2520f.sqlite3?uri=true", "e f.sqlite3", id="uri-escaped"),
    pytest.param("sqlite:///file:q%253F.sqlite3?uri=true", "q?.sqlite3", id="uri-escaped-?"),
    pytest.param("sqlite:///file:g.sqlite3%23part?uri=true", "g.sqlite3", id="uri-fragment"),
    pytest.param(
        "sqlite:///file:h.sqlite3?cache=private&psow=1&timeout=5&uri=true",
        "h.sqlite3",
        id="uri-parameters",
    ),
    pytest.param("sqlite+pysqlite:///file:i.sqlite3?uri=on", "i.sqlite3", id="uri-driver"),
    # Without uri=true a `file:` name is a file's own name.
    pytest.param("sqlite:///file:j.sqlite3", "file:j.sqlite3", id="file-named-file:"),
    # With uri=true a name not starting `file:` is a file's, SQLite's parameters and all.
    pytest.param("sqlite:///k.sqlite3?mode=rwc&uri=true", "k.sqlite3?mode=rwc", id="not-a-uri"),
]


@pytest.mark.parametrize(("url", "name"), NAMED)
def test_the_file_named_is_the_file_sqlite_opens(here: Path, url: str, name: str) -> None:
    url = url.format(here=here)
    assert database_file(url) == here / name
    assert opened(url) == {here / name}


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:oai.sqlite3?mode=memory&uri=true",
        "sqlite:///file:oai.sqlite3?vfs=memdb&uri=true",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:%253Amemory%253A?uri=true",  # :memory:, escaped for SQLite
        "sqlite:///file:?uri=true",  # SQLite's nameless temporary file
    ],
)
def test_a_database_that_vanishes_names_no_file(here: Path, url: str) -> None:
    assert database_file(url) is None
    assert opened(url) == set()


def test_a_uri_with_another_host_names_no_file(here: Path) -> None:
    url = "sqlite:///file://elsewhere/oai.sqlite3?uri=true"
    assert database_file(url) is None
    with pytest.raises(OperationalError, match="invalid uri authority"):
        opened(url)
    with pytest.raises(StoreUnavailable) as refused:
        SqlStore(url)
    assert str(refused.value) == (
        "cannot open the SQLite database file://elsewhere/oai.sqlite3: "
        "invalid uri authority: elsewhere"
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://oai@db.example.org/oai",
        "not a URL",
        "sqlite:///oai.sqlite3?uri=perhaps",
        "sqlite+nodriver:///oai.sqlite3",
        "sqlite:///oai%00.sqlite3",
    ],
)
def test_other_urls_name_no_file(url: str) -> None:
    assert database_file(url) is None


@pytest.mark.parametrize("url", URI_SPELLINGS)
def test_backup_copies_a_database_named_by_a_uri(here: Path, url: str) -> None:
    """`backup` refused it: "copies a SQLite database file, not this URL's"."""
    path = here / "data" / "oai.sqlite3"
    path.parent.mkdir()
    load_into(sqlite_url(path), SAMPLES / "items.jsonl")
    url = spelt(url, path)
    result = CliRunner().invoke(main, ["backup", "copy.sqlite3"], env={"OAIPMH_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Backed up {path} to copy.sqlite3: ")
    assert records(sqlite_url(here / "copy.sqlite3")) == records(url) > 0


def records(url: str) -> int:
    store = SqlStore(url)
    try:
        return store.count_all()
    finally:
        store.close()


@pytest.mark.parametrize("url", URI_SPELLINGS)
def test_a_full_disk_names_the_folder_of_a_database_named_by_a_uri(here: Path, url: str) -> None:
    """It named a folder `file:…` under the working one."""
    path = here / "data" / "oai.sqlite3"
    path.parent.mkdir()
    said = disk_full(spelt(url, path), sqlite3.OperationalError("database or disk is full"))
    assert said is not None
    assert said.startswith(f"the disk holding {path.parent} is full ("), said


@pytest.mark.parametrize("url", URI_SPELLINGS)
def test_a_database_that_cannot_be_opened_is_named_by_its_file(here: Path, url: str) -> None:
    """It was named `<working folder>/file:…`, and its folder was never found."""
    path = here / "no" / "such" / "oai.sqlite3"
    with pytest.raises(StoreUnavailable) as refused:
        SqlStore(spelt(url, path))
    assert str(refused.value) == (
        f"cannot open the SQLite database {path}: the folder {path.parent} does not exist"
    )


def test_a_database_on_a_read_only_file_system_says_so(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk the kernel remounted read-only after an error (ext4's errors=remount-ro), or a
    read-only volume: access(W_OK) fails there for every user, and the operator was told
    "no permission to read and write it", to look for a permission that is fine. (The
    file system is read-only here by statvfs's flag and access's answer on one: a test
    cannot mount one.)"""
    database = here / "oai.sqlite3"
    load_into(sqlite_url(database), SAMPLES / "more.json")
    statvfs, access = os.statvfs, os.access

    def mounted_read_only(path: Any) -> Any:
        found = statvfs(path)
        if not str(path).startswith(str(here)):
            return found
        return SimpleNamespace(f_flag=found.f_flag | os.ST_RDONLY)

    monkeypatch.setattr(os, "statvfs", mounted_read_only)
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK and access(path, mode))
    refused = cannot_open(
        sqlite_url(database), sqlite3.OperationalError("unable to open database file")
    )
    assert refused == (
        f"cannot open the SQLite database {database}: the file system holding {here} is "
        "mounted read-only (SQLite writes its -wal and -shm files beside the database): "
        "mount it read-write, or serve it as it is with ?immutable=1 (docs/read-only.md)"
    )


def test_every_spelling_of_a_database_url_shares_the_places_beside_it(here: Path) -> None:
    """A `file:` URI (or a URL with a query) was keyed by its text, its places in the user's
    cache: two servers of one repository, its URL spelt two ways, would each admit
    max_concurrent_lists harvests, and a harvest resumed on the other could be turned away."""
    path = here / "data" / "oai.sqlite3"
    path.parent.mkdir()
    environ = {"XDG_CACHE_HOME": str(here / "cache")}
    urls = [
        sqlite_url(path),
        f"sqlite:///{os.path.relpath(path)}?timeout=5",
        *(spelt(url.values[0], path) for url in URI_SPELLINGS),
        f"sqlite:///file://localhost{path}?mode=ro&uri=true",
    ]
    folders = {url: HarvestLimit.for_database(2, url, environ=environ).folder for url in urls}
    assert folders == {url: Path(f"{path}-places") for url in urls}


@pytest.mark.parametrize("access", ["ro", "rw"])
def test_a_uri_that_opens_only_an_existing_database_creates_none(here: Path, access: str) -> None:
    """mode=ro and mode=rw tell SQLite not to create the file: nor does the store."""
    with pytest.raises(StoreUnavailable, match="unable to open database file"):
        SqlStore(f"sqlite:///file:oai.sqlite3?mode={access}&uri=true")
    assert list(here.iterdir()) == []


# Spellings whose `file:` prefix alone, cut off, is not the file's path.
ODD_SPELLINGS = [
    pytest.param("sqlite:///file://localhost{path}?uri=true", id="localhost"),
    pytest.param("sqlite:///file:{escaped}?uri=true", id="escaped"),
]


def odd(url: str, path: Path) -> str:
    return url.format(path=path, escaped=quote(quote(str(path))))


@pytest.mark.parametrize("url", ODD_SPELLINGS)
def test_a_writer_holds_one_lease_whatever_the_spelling(here: Path, url: str) -> None:
    """The lease beside the database says a writer lives; spelt `file://localhost/…` it
    was looked for in a folder that does not exist, and spelt with escapes beside another
    file: a live writer's row taken for a dead one's, and its changes cut off."""
    path = here / "a folder" / "oai.sqlite3"
    path.parent.mkdir()
    plain, spelt_oddly = SqlStore(sqlite_url(path)), SqlStore(odd(url, path))
    try:
        held, seen = plain._new_lease(), spelt_oddly._new_lease()
        with plain.engine.connect() as conn:
            assert held.acquire(conn, wait=False)
            try:
                assert seen.alive(conn)
                assert not seen.acquire(conn, wait=False)
            finally:
                held.release(conn)
    finally:
        plain.close()
        spelt_oddly.close()


@pytest.mark.parametrize("url", ODD_SPELLINGS)
def test_a_database_this_user_may_not_write_is_served_read_only_whatever_the_spelling(
    here: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = here / "a folder" / "oai.sqlite3"
    path.parent.mkdir()
    SqlStore(sqlite_url(path)).close()
    # As if this user may not write the database (root may write any): for the store's
    # read-only check alone, as tests/test_memory_database.py does.
    denied = SimpleNamespace(
        path=os.path, W_OK=os.W_OK, access=lambda name, _: os.path.abspath(name) != str(path)
    )
    monkeypatch.setattr(readonly, "os", denied)
    store = SqlStore(odd(url, path))
    try:
        assert store.read_only == f"this user may not write {path}"
    finally:
        store.close()
