"""What the server leaves on the host: files and folders no other local user can read or
take over (issue 13)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from oaipmh_server.cli import main
from oaipmh_server.errors import ConfigError
from oaipmh_server.store import SqlStore
from oaipmh_server.web.admission import HarvestLimit

from .conftest import free_port, make_app, sqlite_url

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems give a service: new files 0644, folders 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_new_sqlite_store_and_its_wal_are_readable_by_their_owner_only(
    tmp_path: Path, usual_umask: None
) -> None:
    path = tmp_path / "oai.sqlite3"
    store = SqlStore(sqlite_url(path))  # a token secret is generated and kept in it
    try:
        assert store.token_secret()
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        store.close()


@pytest.mark.parametrize(
    "url", ["sqlite:///file:{path}?uri=true", "sqlite:///file:data/oai.sqlite3?mode=rwc&uri=true"]
)
def test_a_new_sqlite_store_named_by_a_uri_is_its_owners_alone(
    tmp_path: Path, usual_umask: None, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """An SQLite URI filename names the same file (store.sqlite_urls): it was left to
    SQLite, which made it, token secret and all, as the umask said (0644)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "oai.sqlite3"
    path.parent.mkdir()
    store = SqlStore(url.format(path=path))
    try:
        assert store.token_secret()
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        store.close()


def test_an_existing_sqlite_store_keeps_its_mode(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "oai.sqlite3"
    SqlStore(sqlite_url(path)).close()
    path.chmod(0o640)  # the operator's choice (a group of readers, say)
    SqlStore(sqlite_url(path)).close()
    assert mode(path) == 0o640


def held_places(folder: Path, count: int) -> list[int]:
    """Lock files in `folder`, every one of them held, as a local attacker would."""
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    descriptors = []
    for number in range(count):
        fd = os.open(folder / f"place-{number}", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        descriptors.append(fd)
    return descriptors


def test_lock_files_in_the_old_tmp_folder_turn_no_harvest_away(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usual_umask: None
) -> None:
    """The attack: a local user holds every lock file in the folder of the predictable
    name in /tmp that flow control used; harvests must go on regardless."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    key = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    attacker = held_places(Path(tempfile.gettempdir()) / f"oaipmh-server-places-{key}", 4)
    try:
        app = make_app(database_url, max_concurrent_lists=4)
        places: HarvestLimit = app.extensions["oaipmh"].harvest_limit
        response = app.test_client().get("/oai?verb=ListRecords&metadataPrefix=oai_dc")
        assert response.status_code == 200
        if database_url.startswith("sqlite"):  # beside the database file
            assert places.folder == Path(database_url.removeprefix("sqlite:///") + "-places")
        else:  # in the user's runtime directory
            assert places.folder.parent == runtime / "oaipmh-server"
            assert mode(places.folder.parent) == 0o700
        assert mode(places.folder) == 0o700
        assert places.folder.stat().st_uid == os.geteuid()
    finally:
        for fd in attacker:
            os.close(fd)
        shutil.rmtree(Path(tempfile.gettempdir()) / f"oaipmh-server-places-{key}")


def test_configured_places_folder_is_created_private(tmp_path: Path, usual_umask: None) -> None:
    folder = tmp_path / "places"
    app = make_app(sqlite_url(tmp_path / "oai.sqlite3"), max_concurrent_lists=2,
                   places_folder=str(folder))  # fmt: skip
    assert app.extensions["oaipmh"].harvest_limit.folder == folder
    assert mode(folder) == 0o700


def writable_by_others(folder: Path) -> str:
    folder.mkdir()
    folder.chmod(0o777)
    return "may be written by others (mode 0777)"


def owned_by_another_user(folder: Path) -> str:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    folder.mkdir(mode=0o700)
    os.chown(folder, 12345, 12345)
    return "belongs to another user (uid 12345)"


def linked_elsewhere(folder: Path) -> str:
    target = folder.with_name("elsewhere")
    target.mkdir(mode=0o700)
    folder.symlink_to(target)
    return "is not a folder"


@pytest.mark.parametrize("prepare", [writable_by_others, owned_by_another_user, linked_elsewhere])
def test_serve_refuses_a_places_folder_others_control(
    tmp_path: Path, prepare: Any, usual_umask: None
) -> None:
    folder = tmp_path / "places"
    expected = prepare(folder)
    database = tmp_path / "oai.sqlite3"
    config = tmp_path / "oaipmh.toml"
    config.write_text(f'[server]\nmax_concurrent_lists = 2\nplaces_folder = "{folder}"\n')
    environ = {
        "OAIPMH_CONFIG": str(config),
        "OAIPMH_DATABASE_URL": sqlite_url(database),
        # set for the command alone (serve would set it in this process for good)
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        make_app(sqlite_url(database), max_concurrent_lists=2, places_folder=str(folder))
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port())], env=environ)
    assert result.exit_code == 1
    assert f"flow control's folder {folder}" in result.output
    assert expected in result.output


def test_places_of_a_database_server_go_to_a_folder_of_the_users_own(
    tmp_path: Path, usual_umask: None
) -> None:
    url = "postgresql+psycopg://oai@db.example.org/oai"
    service = tmp_path / "service"  # systemd's RuntimeDirectory=, 0755 by default
    service.mkdir(mode=0o755)
    environ = {"RUNTIME_DIRECTORY": str(service), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    places = HarvestLimit.for_database(2, url, environ=environ)
    assert places.folder.parent == service
    assert mode(places.folder) == 0o700
    places = HarvestLimit.for_database(2, url, environ={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert places.folder.parent == tmp_path / "cache" / "oaipmh-server"
    assert mode(places.folder.parent) == mode(places.folder) == 0o700
