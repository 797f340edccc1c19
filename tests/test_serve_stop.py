"""How `oaipmh-server serve` stops on SIGTERM (systemd's stop; the old workers of a reload
get it too): a request in flight is answered whole, a connection idle between requests
gets a second for a next request and is then closed, and the server exits as soon as
nothing is in flight."""

from __future__ import annotations

import http.client
import signal
import socket
from pathlib import Path

import pytest

from .conftest import SAMPLES, free_port, load_into, sqlite_url
from .served import Served
from .xsd import validate

# Real server processes: a slow tier (-m "not live" leaves it out of a quick run).
pytestmark = pytest.mark.live

# The server's connection timeouts (keep-alive, idle) for these tests: longer than any of
# them runs, so that a connection closed during a test was closed by the stop.
TIMEOUTS = 600


def head(connection: socket.socket) -> bytes:
    """Bytes read up to the end of one response head (or EOF)."""
    read = b""
    while b"\r\n\r\n" not in read and (chunk := connection.recv(1)):
        read += chunk
    return read


def test_sigterm_closes_idle_connections_after_a_grace_and_answers_the_request_in_flight(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path / "oai.sqlite3")
    load_into(url, SAMPLES)
    port = free_port()
    server = Served(
        ["--port", str(port), "--workers", "1"], {"OAIPMH_DATABASE_URL": url},
        timeouts=TIMEOUTS,
    )  # fmt: skip
    try:
        # In flight: a POST whose head the worker has read (it says 100 Continue when it
        # takes the request) and whose body the app waits for.
        busy = socket.create_connection(("127.0.0.1", port), timeout=60)
        form = b"verb=Identify"
        busy.sendall(
            b"POST /oai HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % len(form)
        )
        assert head(busy).startswith(b"HTTP/1.1 100 Continue\r\n")
        # Idle: kept alive after its whole answer, waiting for a next request.
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        idle.request("GET", "/oai?verb=Identify")
        response = idle.getresponse()
        validate(response.read())
        assert not response.will_close
        assert idle.sock is not None

        server.process.send_signal(signal.SIGTERM)
        assert idle.sock.recv(1) == b""  # closed by the server, not by its keep-alive
        assert server.process.poll() is None  # still busy with the request in flight

        busy.sendall(form)
        answer = b""
        while chunk := busy.recv(65536):  # answered whole, then closed
            answer += chunk
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 200 ")
        validate(body)
        assert b"<Identify>" in body
        assert server.process.wait(timeout=60) == 0  # nothing in flight: it exits
        busy.close()
        idle.close()
    finally:
        lines = server.stop()
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines)


def refused(port: int) -> bool:
    """Whether nothing accepts connections at `port` any more (a stopping server's worker
    has closed its listening socket, and the master its own)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=60).close()
    except (ConnectionRefusedError, ConnectionResetError):  # reset: queued as it closed
        return True
    return False


def test_a_kept_alive_client_asking_again_as_the_stop_begins_is_answered(
    tmp_path: Path,
) -> None:
    """A harvester in the middle of a harvest sends its next request moments after the last
    answer, on the same connection: a stop (or a reload's) that begins in between answers
    it (and closes the connection after), instead of resetting it under the request."""
    url = sqlite_url(tmp_path / "oai.sqlite3")
    load_into(url, SAMPLES)
    port = free_port()
    server = Served(
        ["--port", str(port), "--workers", "1"], {"OAIPMH_DATABASE_URL": url},
        timeouts=TIMEOUTS, grace=TIMEOUTS,
    )  # fmt: skip
    try:
        harvester = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        harvester.request("GET", "/oai?verb=ListIdentifiers&metadataPrefix=oai_dc")
        first = harvester.getresponse()
        validate(first.read())
        assert not first.will_close

        server.process.send_signal(signal.SIGTERM)
        while not refused(port):  # the worker is stopping: it no longer accepts
            pass
        harvester.request("GET", "/oai?verb=Identify")
        again = harvester.getresponse()
        assert again.status == 200
        validate(again.read())
        assert again.will_close  # Connection: close, and closed
        assert server.process.wait(timeout=60) == 0
        harvester.close()
    finally:
        lines = server.stop()
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines)


def test_a_stopped_server_leaves_its_sqlite_store_closed(tmp_path: Path) -> None:
    """Each process of the server closes its connections to a SQLite store as it ends, as
    SQLite closes one: the last to close folds the write-ahead log into the database file
    and removes it and the shared-memory file, so a stopped server leaves the store's folder as it
    found it (the database whole in its file, to copy, move or back up as it is)."""
    import requests

    store = tmp_path / "store" / "oai.sqlite3"
    store.parent.mkdir()
    load_into(sqlite_url(store), SAMPLES)
    before = sorted(p.name for p in store.parent.iterdir())
    assert "oai.sqlite3-wal" not in before
    port = free_port()
    server = Served(["--port", str(port), "--workers", "2"],
                    {"OAIPMH_DATABASE_URL": sqlite_url(store)})  # fmt: skip
    try:
        for _ in range(4):  # both workers, most likely; one at least
            answer = requests.get(f"http://127.0.0.1:{port}/oai?verb=ListSets", timeout=30)
            assert answer.status_code == 200
        assert (store.parent / "oai.sqlite3-wal").exists()  # the store is open
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert sorted(p.name for p in store.parent.iterdir()) == before
