"""`oaipmh-server serve` against hostile clients: slow ones against a live server on
127.0.0.1, and the development server's debugger, kept to loopback addresses."""

from __future__ import annotations

import re
import selectors
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import Flask

from oaipmh_server.cli import main
from oaipmh_server.cli import serving as serve_command
from oaipmh_server.web.serving import REQUEST_HEAD_SECONDS

from .conftest import ROOT, LiveServer, sqlite_url
from .postgres import Cluster
from .xsd import validate

# The store matters to how a worker waits for PostgreSQL (shown below); the tricklers'
# test runs on SQLite alone (they never reach the store). Real server processes: a slow tier (-m "not live" leaves it out of a quick run).
pytestmark = [pytest.mark.store_behaviour, pytest.mark.live]

TRICKLERS = 200
# How long a normal request may take while the tricklers hold their sockets: a loaded,
# shared test machine answers in milliseconds; two sync workers never answered at all.
PROMPT_SECONDS = 2.0


@contextmanager
def trickling(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections sending a request head a byte at a time, never finishing it.
    The byte rate is paced by a timer (pacing, not synchronisation)."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    head = b"GET /oai?verb=Identify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    stop = threading.Event()

    def send() -> None:
        for position in range(len(head)):
            for s in sockets:
                with suppress(OSError):  # dropped by the server: what it should do in the end
                    s.send(head[position : position + 1])
            if stop.wait(0.2):
                return

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield sockets
    finally:
        stop.set()
        sender.join(timeout=10)
        for s in sockets:
            s.close()


def still_open(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the server has neither answered nor closed."""
    selector = selectors.DefaultSelector()
    for s in sockets:
        selector.register(s, selectors.EVENT_READ)
    readable = len(selector.select(timeout=0))
    selector.close()
    return len(sockets) - readable


def closed_by_server(sockets: list[socket.socket], within: float) -> int:
    """How many of `sockets` the server closed (EOF or reset) before `within` seconds."""
    selector = selectors.DefaultSelector()
    for s in sockets:
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
    closed = 0
    deadline = time.monotonic() + within
    while closed < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(s)
                closed += 1
    selector.close()
    return closed


# SQLite alone: the tricklers never reach the app, so the store behind it changes nothing
# of what is shown (PostgreSQL's waits in a worker: the test after the next).
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_two_hundred_trickling_clients_do_not_stop_the_server(live_server: LiveServer) -> None:
    # The workers are up (the port is open as soon as gunicorn's master listens).
    for _ in range(4):
        assert requests.get(live_server.url, params={"verb": "Identify"}, timeout=60).ok
    with trickling(live_server.port, TRICKLERS) as sockets:
        for _ in range(3):
            for params in (
                {"verb": "Identify"},
                {"verb": "ListRecords", "metadataPrefix": "oai_dc"},
            ):
                asked = time.monotonic()
                response = requests.get(live_server.url, params=params, timeout=10)
                assert time.monotonic() - asked < PROMPT_SECONDS
                assert response.status_code == 200
                validate(response.content)
        assert still_open(sockets) == TRICKLERS  # all of it while every one of them trickled
        # A head that never ends is dropped: every trickling socket is closed by the server.
        assert closed_by_server(sockets, within=REQUEST_HEAD_SECONDS + 20) == TRICKLERS
    assert requests.get(live_server.url, params={"verb": "Identify"}, timeout=10).ok


@pytest.mark.parametrize(
    ("host", "debugger"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("oai.example.org", False),
    ],
)
def test_dev_server_debugger_only_on_loopback(
    host: str, debugger: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Werkzeug's debugger console runs Python for whoever reaches it (behind a PIN
    printed on stderr): `serve --dev` never turns it on where others can connect."""
    runs: list[dict[str, Any]] = []

    def run(app: Flask, **options: Any) -> None:  # instead of listening
        runs.append(options)
        app.extensions["oaipmh"].store.close()

    monkeypatch.setattr(Flask, "run", run)
    environ = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3")}
    result = CliRunner().invoke(main, ["serve", "--dev", "--host", host], env=environ)
    assert result.exit_code == 0, result.output
    assert runs[0]["use_debugger"] is debugger
    assert runs[0]["host"] == host
    assert ("debugger is off" in result.output) is not debugger


COOPERATION = """
import sys
import psycopg  # imported before gevent patches, as serve's checks import it

from oaipmh_server.web.serving import Worker

worker = Worker.__new__(Worker)  # only what patch() reads: no listening sockets
worker.sockets = []
worker.patch()  # what a worker does first: gevent's patches, then psycopg's wait
import gevent

dsn = sys.argv[1]
finished = []

def query(name, sql):
    with psycopg.connect(dsn) as conn:
        conn.execute(sql)
    finished.append(name)

slow = gevent.spawn(query, "slow", "SELECT pg_sleep(3)")
fast = gevent.spawn(query, "fast", "SELECT 1")
gevent.joinall([slow, fast])
print(" ".join(finished))
"""


def test_postgresql_waits_let_the_other_connections_of_a_worker_go_on(postgres: Cluster) -> None:
    """In a worker, a slow PostgreSQL query must not stall the worker's other requests:
    psycopg imported before gevent patched would wait in C, holding the whole process."""
    dsn = postgres.url("postgres").replace("postgresql+psycopg://", "postgresql://")
    result = subprocess.run(
        [sys.executable, "-c", COOPERATION, dsn], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["fast", "slow"]


def test_entry_points_read_once_while_gevent_patches_answer_as_a_fresh_reading() -> None:
    """A worker reads the installed entry points once while gevent patches it (gevent
    looks its plugins up for every module it patches): each lookup finds what a reading
    of its own finds, and the lookups read afresh again afterwards."""
    from importlib import metadata

    from oaipmh_server.web.serving import _entry_points_read_once

    read = metadata.entry_points
    groups = ["gevent.plugins.monkey.will_patch_all", "console_scripts", "pytest11"]
    fresh = {group: sorted(read(group=group)) for group in groups}
    assert fresh["console_scripts"] and fresh["pytest11"]  # the lookups find something
    with _entry_points_read_once():
        assert metadata.entry_points is not read
        assert {group: sorted(metadata.entry_points(group=group)) for group in groups} == fresh
    assert metadata.entry_points is read


@pytest.mark.parametrize(
    ("host", "base_url", "warned"),
    [
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("192.0.2.1", None, True),
        ("0.0.0.0", "https://oai.example.org/oai", False),
        ("127.0.0.1", None, False),
        ("localhost", None, False),
    ],
)
@pytest.mark.parametrize("dev", [False, True], ids=["gunicorn", "dev"])
def test_serve_beyond_loopback_without_base_url_warns_of_the_host_header(
    host: str,
    base_url: str | None,
    warned: bool,
    dev: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In development mode with no base_url, every advertised URL (baseURL, page links,
    Signposting, sitemaps) is made from the Host header each client sends: said once at
    start when others can connect."""
    started: list[str] = []

    def run(app: Flask, **options: Any) -> None:  # instead of listening
        started.append("werkzeug")
        app.extensions["oaipmh"].store.close()

    monkeypatch.setattr(Flask, "run", run)
    monkeypatch.setattr(serve_command, "_run_gunicorn", lambda *a, **k: started.append("gunicorn"))
    environ = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3")}
    if base_url:
        environ["OAIPMH_BASE_URL"] = base_url
    arguments = ["serve", "--host", host, *(["--dev"] if dev else [])]
    result = CliRunner().invoke(main, arguments, env=environ)
    assert result.exit_code == 0, result.output
    assert started == ["werkzeug" if dev else "gunicorn"]
    said = "the Host header each client sends decides every URL the server advertises"
    assert (said in result.output) is warned, result.output


def test_the_host_header_warning_names_the_key_that_silences_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warning tells the operator which key to set: one config/oaipmh.toml has, in the
    table it is in (it named `[server] base_url`, a key no file can set)."""
    monkeypatch.setattr(serve_command, "_run_gunicorn", lambda *a, **k: None)
    environ = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3")}
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"], env=environ)
    assert result.exit_code == 0, result.output
    named = re.search(r"without \[(\w+)\] (\w+)", result.output)
    assert named, result.output
    table, key = named.groups()
    shipped = tomllib.loads((ROOT / "config" / "oaipmh.toml").read_text("utf-8"))
    assert key in shipped.get(table, {}), f"[{table}] {key}"
