"""What the server leaves on the host: files and folders no other local user can read or
take over (issue 13)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from oaipmh_server.store import SqlStore

from .conftest import sqlite_url


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


def test_an_existing_sqlite_store_keeps_its_mode(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "oai.sqlite3"
    SqlStore(sqlite_url(path)).close()
    path.chmod(0o640)  # the operator's choice (a group of readers, say)
    SqlStore(sqlite_url(path)).close()
    assert mode(path) == 0o640
