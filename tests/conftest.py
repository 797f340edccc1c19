"""Fixtures: a store loaded with sample_records (loaded once, copied per test), the app and
a client that XSD-validates every XML response it receives, and a live server process."""

from __future__ import annotations

import compileall
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings

from oaipmh_server import datestamps
from oaipmh_server.config import load_settings
from oaipmh_server.errors import LoadFailed
from oaipmh_server.formats import build_formats
from oaipmh_server.ingest.load import load_paths
from oaipmh_server.store import SqlStore
from oaipmh_server.web.app import create_app

from . import xsd
from .db import everything
from .postgres import Cluster, find_bindir
from .served import end

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_records"
# A fixed "now" for tests that compare whole documents.
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SECRET = "test-secret"
# "The time of the load" of the sample store: tombstones are dated by it.
LOADED = datetime(2025, 6, 1, 0, 0, 0, tzinfo=UTC)

# The property-based tests (Hypothesis) draw the same examples on every run, so a run's
# verdict (CI's too) does not depend on the draw, and keep no example database.
# `pytest --hypothesis-profile=explore` draws afresh each run and keeps a failing example
# in .hypothesis/ to try first next time: how new cases are looked for.
settings.register_profile("suite", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile("suite")


# Where the suite's files go when the machine has room in memory for them (see
# pytest_configure); the tests' stores, PostgreSQL clusters and generated files are a few
# hundred MB at most at any time, so 4 GiB free is a wide margin.
MEMORY_FOLDER = Path("/dev/shm")
MEMORY_FOLDER_FREE = 4 * 2**30


def pytest_configure(config: pytest.Config) -> None:
    """The suite's temporary files in memory (tmpfs) where there is room, unless TMPDIR
    says where they go.

    On this project's machines (a virtual disk mounted with `discard`) writing files costs
    the kernel twenty times what it costs in tmpfs: copying a new PostgreSQL cluster's 39 MB
    took 1.06 CPU-s on the disk and 0.05 in /dev/shm, and every test database made on
    PostgreSQL (CREATE DATABASE … TEMPLATE, 7.5 MB) 0.1-0.3 CPU-s. A fifth of the suite's CPU
    was the kernel's. Nothing a test asserts depends on the medium (files, SQLite's locks
    and memory-mapped WAL index, PostgreSQL's fsync are the same to them in tmpfs). The
    controlling process decides; pytest-xdist's workers, and every process the tests start,
    inherit TMPDIR and pytest's folder for them (`--basetemp`) under it."""
    # Whatever PYTHONDONTWRITEBYTECODE says, this process (each xdist worker too) keeps
    # the test modules it compiles (pytest's assertion rewriting writes its own `.pyc`
    # beside them, read again by the next run): see pytest_sessionstart.
    sys.dont_write_bytecode = False
    if hasattr(config, "workerinput") or "TMPDIR" in os.environ:
        return
    try:
        free = os.statvfs(MEMORY_FOLDER)
        mounted = Path("/proc/mounts").read_text().split("\n")
    except OSError:
        return
    in_memory = any(line.split()[1:3] == [str(MEMORY_FOLDER), "tmpfs"] for line in mounted if line)
    if not in_memory or free.f_bavail * free.f_frsize < MEMORY_FOLDER_FREE:
        return
    folder = MEMORY_FOLDER / f"oaipmh-tests-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o1777)  # as /tmp: PostgreSQL's own user makes its cluster's files inside
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # read TMPDIR again


def pytest_sessionstart(session: pytest.Session) -> None:
    """The server's modules, and the benchmarks' the benchmark scripts import, compiled to
    bytecode once, before any test starts a process.

    The suite starts a few hundred Python processes (servers, loads, commands), and each
    imports the whole package. Where PYTHONDONTWRITEBYTECODE is set (as in some CI and
    agent shells) no process writes its `.pyc`, so every one compiled all of
    oaipmh_server from source again: 0.1-0.15 CPU-s a process, a tenth of the suite's CPU.
    compileall writes them whatever that variable says, and reading them is always allowed.
    Only the controlling process does it (pytest-xdist workers have `workerinput`).

    The tests' own modules are kept by pytest itself once compiled (pytest_configure lets
    it write them): under that variable each pytest-xdist worker compiled all of tests/
    again, with pytest's assertions rewritten, at every run: 5.8 of a collection's 8.9 CPU-s,
    three times a run."""
    if not hasattr(session.config, "workerinput"):
        compileall.compile_dir(ROOT / "oaipmh_server", quiet=1)
        compileall.compile_dir(ROOT / "benchmarks", quiet=1)


class ValidatingClient(FlaskClient):
    """Every XML response any test receives is checked against the official schemas."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        if response.mimetype == "text/xml" and response.status_code == 200 and response.data:
            xsd.validate(decoded(response))
        return response


def decoded(response: Any) -> bytes:
    """The body as the client reads it, after its Content-Encoding."""
    import gzip
    import zlib

    coding = response.headers.get("Content-Encoding")
    if coding == "gzip":
        return gzip.decompress(response.data)
    if coding == "deflate":
        return zlib.decompress(response.data)
    return bytes(response.data)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no OAIPMH_* variables of the machine they run on (nor its systemd
    credentials, another source of secrets)."""
    for name in list(os.environ):
        if name.startswith("OAIPMH_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def load_into(
    url: str,
    *paths: Path | str,
    clock: Any = None,
    workers: int | None = None,
    before_commit: Any = None,
    wait: bool = True,
    on_wait: Any = None,
    sync: Any = None,
    changes: Any = None,
    **overrides: Any,
) -> Any:
    """Load files as `oaipmh-server load` does; `clock` fixes "the time of the load",
    `workers` the processes that read JSON Lines (None: as the CLI decides),
    `before_commit` holds the load just before it commits, `wait` as [load] wait, `sync`
    as --sync (a load.Sync), `changes` as --changes (told of each record changed)."""
    settings = load_settings({"database_url": url, **overrides}, environ={})
    store = SqlStore(url, token_secret=SECRET)
    formats = build_formats(settings)
    try:
        options: dict[str, Any] = {"workers": workers, "before_commit": before_commit,
                                   "sync": sync, "changes": changes}  # fmt: skip
        if clock is not None:
            options["clock"] = clock
        return load_paths(paths, store, settings, formats, wait=wait, on_wait=on_wait, **options)
    finally:
        store.close()


def refusal(url: str, *paths: Path | str, **options: Any) -> LoadFailed:
    """Load as `load_into` does, a load that must be refused: the test fails, as under
    `pytest.raises`, if it succeeds or raises anything but LoadFailed. The failure, whose
    `problems` and `total` a test reads."""
    with pytest.raises(LoadFailed) as failure:
        load_into(url, *paths, **options)
    return failure.value


def refused_problems(url: str, *paths: Path | str, **options: Any) -> list[str]:
    """The problems of a load that must be refused (as `refusal`), as the CLI prints them."""
    return [str(p) for p in refusal(url, *paths, **options).problems]


def refused_unchanged(url: str, *paths: Path | str, **options: Any) -> list[str]:
    """The problems of a load that must be refused and leave the store, which exists
    already, as it was: every row of every table (`everything`)."""
    before = everything(url)
    problems = refused_problems(url, *paths, **options)
    assert everything(url) == before
    return problems


def refused_load(
    url: str, seed: dict[str, Any], folder: Path, *paths: Path | str, **overrides: Any
) -> list[str]:
    """Load `paths` into a store that already holds a record (`seed`, loaded once from
    `folder`/seed/); the load must fail and leave the store as it was. The problems, as
    the CLI prints them."""
    seeded = folder / "seed" / "seed.jsonl"
    if not seeded.exists():
        seeded.parent.mkdir()
        seeded.write_text(json.dumps(seed) + "\n", "utf-8")
        load_into(url, seeded)
    return refused_unchanged(url, *paths, **overrides)


@pytest.fixture
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the load unpacks archives: it must be empty again after every load."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


BACKENDS = ["sqlite", "postgresql"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test that takes `backend` runs on SQLite; those marked `store_behaviour` on
    PostgreSQL too, except those also marked `same_on_every_store` (a store_behaviour
    module's test of parsing, rendering or argument errors, which no store can change).
    A test that names its backends itself (parametrize) keeps them."""
    if "backend" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    everywhere = os.environ.get("TEST_ALL_BACKENDS") == "1"
    marked = metafunc.definition.get_closest_marker("store_behaviour") is not None
    marked &= metafunc.definition.get_closest_marker("same_on_every_store") is None
    metafunc.parametrize("backend", BACKENDS if marked or everywhere else ["sqlite"], indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A throw-away PostgreSQL cluster, started when the first PostgreSQL test needs it.
    Without PostgreSQL installed those tests are skipped, unless TEST_REQUIRE_POSTGRESQL=1
    (as in CI), where its absence is a failure."""
    cluster = Cluster(postgres_bindir())
    yield cluster
    cluster.stop()


def postgres_bindir() -> Path:
    """PostgreSQL's programs, for a test that starts a cluster; without PostgreSQL the test
    is skipped, or fails where TEST_REQUIRE_POSTGRESQL=1."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("TEST_REQUIRE_POSTGRESQL") == "1":
            pytest.fail("PostgreSQL is required (TEST_REQUIRE_POSTGRESQL=1) but not installed")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return bindir


# The files whose tests take longest (processes, live servers, held loads), slowest first,
# as `--durations` measured them (the sum of their tests' times): they run first, so that
# pytest-xdist hands them out at the start and the suite does not end waiting on one of
# them started last. Only the order depends on this list; a file missing from it runs
# after these, in the usual order.
SLOW_FILES = (
    "test_ingest.py", "test_changes.py", "test_check.py", "test_read_only.py", "test_deploy.py",
    "test_live.py", "test_benchmarks.py", "test_production.py", "test_versions.py",
    "test_browser.py", "test_backups.py", "test_hostile_exports.py", "test_virtual_sets.py",
    "test_secrets.py", "test_resourcesync.py", "test_harvest_report_live.py",
    "test_harvest_promises.py", "test_database_trouble.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes the `live_server` (or `reading_live_server`) fixture is in the
    `live` tier wherever it is. The SLOW_FILES first, each file's tests together and in
    their order (so a module-scoped fixture is still made once per worker)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "live_server" in names or "reading_live_server" in names:
            item.add_marker(pytest.mark.live)
    rank = {name: n for n, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store's backend, as pytest_generate_tests chose it for the test."""
    return str(request.param)


class Databases:
    """Fresh databases per test on the chosen backend; the sample store is loaded once
    per backend and copied (a file copy, or CREATE DATABASE … TEMPLATE). A PostgreSQL
    database made for a test is dropped after it (`drop_made`): files written and removed
    within seconds mostly never reach the disk, and the cluster's folder stays small
    (removing hundreds of copies at the end of the session took minutes)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp = tmp_path_factory
        self.templates: dict[str, str] = {}
        self.count = 0
        self.made: list[tuple[Cluster, str]] = []

    def empty(self, backend: str, request: pytest.FixtureRequest) -> str:
        """A store with the current schema and no record, copied from one made once per
        backend: making the schema (the tables, then Alembic's stamp) took 20 ms of CPU on
        SQLite and more on PostgreSQL, for each of about 500 tests. A test of a database
        the server makes itself takes `bare`."""
        return self._copy("empty", backend, request, lambda url: SqlStore(url).close())

    def samples(self, backend: str, request: pytest.FixtureRequest) -> str:
        return self._copy(
            "samples", backend, request, lambda url: load_into(url, SAMPLES, clock=lambda: LOADED)
        )

    def bare(self, backend: str, request: pytest.FixtureRequest) -> str:
        return self._new(backend, request)

    def _copy(
        self, kind: str, backend: str, request: pytest.FixtureRequest, fill: Callable[[str], Any]
    ) -> str:
        """A new database copied from the template of `kind`, made by `fill` the first time."""
        key = f"{kind} {backend}"
        if key not in self.templates:
            self.count += 1
            if backend == "sqlite":
                url = sqlite_url(self.tmp.mktemp("db") / "oai.sqlite3")
            else:
                cluster: Cluster = request.getfixturevalue("postgres")
                url = cluster.create_database(f"template_{self.count}")
            fill(url)
            self.templates[key] = url
        return self._new(backend, request, template=self.templates[key])

    def _new(
        self, backend: str, request: pytest.FixtureRequest, template: str | None = None
    ) -> str:
        self.count += 1
        if backend == "sqlite":
            path = self.tmp.mktemp("db") / "oai.sqlite3"
            if template is not None:
                shutil.copy(template.removeprefix("sqlite:///"), path)
            return sqlite_url(path)
        cluster: Cluster = request.getfixturevalue("postgres")
        name = f"test_{self.count}"
        source = template.rsplit("/", 1)[1] if template is not None else None
        url = cluster.create_database(name, template=source)
        if request.scope == "function":
            self.made.append((cluster, name))
        return url

    def drop_made(self) -> None:
        """Drop the PostgreSQL databases made for the test that just ended."""
        while self.made:
            cluster, name = self.made.pop()
            cluster.drop_database(name)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Databases:
    return Databases(tmp_path_factory)


@pytest.fixture
def database_url(databases: Databases, backend: str, request: pytest.FixtureRequest) -> str:
    """A store holding sample_records, on each backend in turn."""
    return databases.samples(backend, request)


@pytest.fixture
def empty_database_url(databases: Databases, backend: str, request: pytest.FixtureRequest) -> str:
    """A store with the current schema and no record yet."""
    return databases.empty(backend, request)


@pytest.fixture
def bare_database_url(databases: Databases, backend: str, request: pytest.FixtureRequest) -> str:
    """A database with nothing in it, not even the schema: for tests of making or
    migrating the schema (the server's first open, `migrate`, Alembic's revisions)."""
    return databases.bare(backend, request)


_APPS: list[Flask] = []


@pytest.fixture(autouse=True)
def close_apps(databases: Databases) -> Iterator[None]:
    """Close every app's store after its test, so no connection outlives it; then drop
    the PostgreSQL databases made for it."""
    yield
    while _APPS:
        _APPS.pop().extensions["oaipmh"].store.close()
    databases.drop_made()


def make_app(database_url: str, **overrides: Any) -> Flask:
    settings: dict[str, Any] = {"database_url": database_url, "token_secret": SECRET}
    settings.update(overrides)
    app = create_app(settings)
    app.test_client_class = ValidatingClient
    _APPS.append(app)
    return app


@pytest.fixture
def app(database_url: str) -> Flask:
    return make_app(database_url, page_size=10)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def reading_app(databases: Databases, request: pytest.FixtureRequest) -> Iterator[Flask]:
    """The `app` fixture's app (sample store on SQLite, page_size 10), made once per module
    for tests that only read: no writes, no change to the app, its settings or its store,
    nothing asserted about state a previous request may leave. A test that patches the
    app or its store takes `app`."""
    app = create_app(
        {"database_url": databases.samples("sqlite", request), "token_secret": SECRET,
         "page_size": 10}
    )  # fmt: skip
    app.test_client_class = ValidatingClient
    yield app
    app.extensions["oaipmh"].store.close()


@pytest.fixture(scope="module")
def reading_client(reading_app: Flask) -> FlaskClient:
    """A client of `reading_app`; every XML response it receives is validated."""
    return reading_app.test_client()


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Freeze the server's clock (responseDate and harvest cut-offs) at NOW."""
    monkeypatch.setattr(datestamps, "now", lambda: NOW)
    return NOW


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`oaipmh-server serve` in a process of its own. It is ready when gunicorn says so:
    its arbiter sends `READY=1` to $NOTIFY_SOCKET (systemd's sd_notify) once it listens,
    and a request sent from then on waits in the socket's queue for a worker. `workers`:
    gunicorn's worker processes (serve's default, 2); 1 where a test is not about several
    (each one started costs ≈0.6 CPU-s)."""

    def __init__(self, database_url: str, tmp_path: Path, workers: int = 2, **env: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/oai"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = f"oaipmh-test-{os.getpid()}-{self.port}-{id(self)}"
        notify.bind("\0" + address)  # an abstract socket: no path, nothing to clean up
        environment = {
            **os.environ,
            "OAIPMH_DATABASE_URL": database_url,
            **env,
            "NOTIFY_SOCKET": "@" + address,
        }
        self.log = (tmp_path / f"server-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "oaipmh_server", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers)],
            env=environment, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        exited = os.pidfd_open(self.process.pid)  # readable once the server has ended
        try:
            ready, _, _ = select.select([notify, exited], [], [], 60)
            if notify in ready and b"READY=1" in notify.recv(4096).split(b"\n"):
                return
        finally:
            os.close(exited)
            notify.close()
        code = self.process.poll()
        self.stop()
        if code is not None:
            raise RuntimeError(f"server exited with status {code} (see {self.log.name})")
        raise RuntimeError(f"server did not say it was ready in 60 s (see {self.log.name})")

    def stop(self) -> None:
        """Gunicorn's quick shutdown (SIGQUIT): workers end at once instead of finishing
        their requests for up to graceful_timeout; the tests that show the graceful stop
        (SIGTERM, as systemd sends it) run their own server (tests/served.py)."""
        end(self.process, signal.SIGQUIT, within=10)
        self.log.close()


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(database_url, tmp_path, OAIPMH_PAGE_SIZE="7")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reading_live_server(
    databases: Databases, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`live_server` (sample store on SQLite, page size 7) started once per module, for
    tests that only read through it, as `reading_app` is to `app`: a server start costs
    seconds, a request milliseconds. One worker: a test about several starts its own."""
    url = databases.samples("sqlite", request)
    server = LiveServer(url, tmp_path_factory.mktemp("live"), workers=1, OAIPMH_PAGE_SIZE="7")
    yield server
    server.stop()
