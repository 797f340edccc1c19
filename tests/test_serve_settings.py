"""Where `oaipmh-server serve` listens and with how many workers: [server] host, port,
workers, socket in the file, OAIPMH_HOST/PORT/WORKERS/SOCKET in the environment, the
command line winning; a live server on a Unix socket; what it prints when it starts; the
metrics folder it makes and removes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from oaipmh_server.cli import main
from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError
from oaipmh_server.web import serving

from .conftest import SAMPLES, free_port, load_into, sqlite_url
from .served import Served, UnixHTTPConnection
from .xsd import validate

# Real server processes: a slow tier (-m "not live" leaves it out of a quick run).
pytestmark = pytest.mark.live


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The gunicorn options `serve` would run with, instead of running gunicorn. The
    metrics are imported first, as in one process: imported while `serve` has set
    PROMETHEUS_MULTIPROC_DIR, they would keep writing in the folder it then removes."""
    import oaipmh_server.web.metrics  # noqa: F401

    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(serving, "run", lambda options, load, check: runs.append(options))
    return runs


def serve(tmp_path: Path, *args: str, file: str = "", **env: str) -> Any:
    environ = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3"), **env}
    if file:
        (tmp_path / "oaipmh.toml").write_text(file)
        environ["OAIPMH_CONFIG"] = str(tmp_path / "oaipmh.toml")
    return CliRunner().invoke(main, ["serve", *args], env=environ)


FILE = '[server]\nhost = "0.0.0.0"\nport = 8081\nworkers = 3\n'
ENV = {"OAIPMH_HOST": "127.0.0.2", "OAIPMH_PORT": "8082", "OAIPMH_WORKERS": "4"}


@pytest.mark.parametrize(
    ("file", "env", "args", "bind", "workers"),
    [
        pytest.param("", {}, [], "127.0.0.1:5000", 2, id="defaults"),
        pytest.param(FILE, {}, [], "0.0.0.0:8081", 3, id="file"),
        pytest.param(FILE, ENV, [], "127.0.0.2:8082", 4, id="environment-over-file"),
        pytest.param(FILE, {"OAIPMH_PORT": "8082"}, [], "0.0.0.0:8082", 3, id="one-variable"),
        pytest.param(
            FILE,
            ENV,
            ["--port", "8083", "--workers", "5"],
            "127.0.0.2:8083",
            5,
            id="command-line-over-both",
        ),
        pytest.param(FILE, ENV, ["--host", "::1"], "[::1]:8082", 4, id="ipv6"),
        pytest.param(
            FILE + 'socket = "/run/oai/file.sock"\n',
            {},
            [],
            "unix:/run/oai/file.sock",
            3,
            id="socket-in-file",
        ),
        pytest.param(
            FILE,
            {"OAIPMH_SOCKET": "/run/oai/env.sock"},
            [],
            "unix:/run/oai/env.sock",
            3,
            id="socket-from-environment",
        ),
        pytest.param(
            FILE,
            {"OAIPMH_SOCKET": "/run/oai/env.sock"},
            ["--socket", "/tmp/cli.sock"],
            "unix:/tmp/cli.sock",
            3,
            id="socket-from-command-line",
        ),
        pytest.param(
            FILE,
            {"OAIPMH_SOCKET": "/run/oai/env.sock"},
            ["--port", "8084"],
            "0.0.0.0:8084",
            3,
            id="port-on-command-line-listens-on-tcp",
        ),
    ],
)
def test_where_serve_listens(
    tmp_path: Path,
    started: list[dict[str, Any]],
    file: str,
    env: dict[str, str],
    args: list[str],
    bind: str,
    workers: int,
) -> None:
    result = serve(tmp_path, *args, file=file, **env)
    assert result.exit_code == 0, result.output
    assert started[0]["bind"] == bind
    assert started[0]["workers"] == workers


@pytest.mark.parametrize(
    ("file", "env", "message"),
    [
        ('[server]\nport = "80"\n', {}, "oaipmh.toml: server.port: expected an integer, got '80'"),
        ("[server]\nport = 70000\n", {}, ": server.port: must be between 1 and 65535, got 70000"),
        ("[server]\nworkers = 0\n", {}, ": server.workers: must be between 1 and 64, got 0"),
        (
            "",
            {"OAIPMH_PORT": "http"},
            "environment variable OAIPMH_PORT: server.port: expected a whole",
        ),
        (
            "",
            {"OAIPMH_WORKERS": "+2"},
            "environment variable OAIPMH_WORKERS: server.workers: expected",
        ),
        (
            "",
            {"OAIPMH_HOST": " "},
            "environment variable OAIPMH_HOST: server.host: expected an address",
        ),
        (
            '[server]\nmetrics_allow = ["everyone"]\n',
            {},
            "server.metrics_allow: 'everyone' is not an IP",
        ),
        ('[server]\nsocket = "' + "s" * 200 + '"\n', {}, "socket: "),
        # Found by fuzzing: a folder there was gunicorn's traceback.
        ('[server]\nsocket = "/"\n', {}, "oaipmh.toml: server.socket: / is there and is not a"),
        (
            "",
            {"OAIPMH_SOCKET": "/tmp"},
            "environment variable OAIPMH_SOCKET: server.socket: /tmp is there and is not a",
        ),
        (
            '[server]\nsockets = "/x"\n',
            {},
            "unknown key server.sockets (did you mean server.socket",
        ),
    ],
)
def test_bad_serve_settings_stop_it_naming_key_and_source(
    tmp_path: Path, started: list[dict[str, Any]], file: str, env: dict[str, str], message: str
) -> None:
    result = serve(tmp_path, file=file, **env)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert started == []


def test_serve_settings_defaults() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port, settings.workers, settings.socket) == (
        "127.0.0.1", 5000, 2, None,
    )  # fmt: skip
    assert settings.metrics_allow == ("127.0.0.1", "::1")
    with pytest.raises(
        ConfigError, match=r"OAIPMH_PORT: server\.port: must be between 1 and 65535"
    ):
        load_settings(environ={"OAIPMH_PORT": "0"})


@pytest.fixture
def sample_store(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path / "oai.sqlite3")
    load_into(url, SAMPLES)
    return url


def test_serve_on_a_unix_socket(sample_store: str, tmp_path: Path) -> None:
    """[server] socket: Identify answered over the socket, which only the server's user
    and group may connect to; the socket file and the metrics folder gone at the end."""
    path = tmp_path / "oai.sock"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = Served(["--workers", "1"], {"OAIPMH_DATABASE_URL": sample_store,
                    "OAIPMH_SOCKET": str(path), "TMPDIR": str(temporary)})  # fmt: skip
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        connection = UnixHTTPConnection(str(path), timeout=30)
        connection.request("GET", "/oai?verb=Identify", headers={"Host": "oai.example.org"})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == 200
        validate(body)
        assert b"<baseURL>http://oai.example.org/oai</baseURL>" in body
        assert next(p.name for p in temporary.iterdir()).startswith("oaipmh-metrics-")
    finally:
        lines = server.stop()
    assert server.process.returncode == 0
    assert f"listening at unix:{path}" in lines[0]
    assert not path.exists()
    assert list(temporary.iterdir()) == []  # the metrics folder removed


def test_a_metrics_folder_removed_under_the_server_is_made_again(
    sample_store: str, tmp_path: Path
) -> None:
    """The workers' counts live in a folder `serve` makes in the temporary folder, which a
    clean-up of old temporary files may remove under a long-running server (systemd's
    tmpfiles ages /tmp, PrivateTmp's included, on Fedora and RHEL). A worker started after
    that (a reload, a worker replaced) failed every request with a 500, its first count
    having no folder to go to; /metrics failed on every worker. Made again, as at the
    start: counts begin again, as after a restart, and every request is answered."""
    import shutil

    import requests

    port = free_port()
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = Served(["--port", str(port), "--workers", "1"],
                    {"OAIPMH_DATABASE_URL": sample_store, "TMPDIR": str(temporary)})  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        assert requests.get(f"{base}/oai?verb=Identify", timeout=30).status_code == 200
        (folder,) = temporary.iterdir()
        shutil.rmtree(folder)
        assert requests.get(f"{base}/metrics", timeout=30).status_code == 200
        shutil.rmtree(folder)  # again: the new worker finds none
        server.hang_up()
        server.expect(r"^oaipmh-server: configuration reloaded")
        answers = [requests.get(f"{base}/oai?verb=Identify", timeout=30) for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        metrics = requests.get(f"{base}/metrics", timeout=30)
        assert metrics.status_code == 200 and 'oaipmh_requests_total{verb="Identify"}' in (
            metrics.text
        )
        assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        lines = server.stop()
    assert not any("Traceback" in line for line in lines), "\n".join(lines)


@pytest.mark.parametrize("verbose", [False, True])
def test_start_up_says_where_it_listens_and_nothing_else(
    sample_store: str, tmp_path: Path, verbose: bool
) -> None:
    """By default: one line of its own, then the access lines; gunicorn's information
    lines ("Booting worker", once per worker) only with --verbose. (Alembic, loaded only
    to create or migrate a schema, says nothing on this store, which is up to date.)"""
    import requests

    port = free_port()
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    args = ["--port", str(port), "--workers", "2"] + (["--verbose"] if verbose else [])
    server = Served(args, {"OAIPMH_DATABASE_URL": sample_store, "TMPDIR": str(temporary)})
    try:
        for _ in range(4):  # both workers have started, most likely; one at least
            response = requests.get(f"http://127.0.0.1:{port}/oai?verb=Identify", timeout=30)
            assert response.status_code == 200
            server.expect('"verb": "Identify"')
    finally:
        lines = server.stop()
    ours = [line for line in lines if line.startswith("oaipmh-server: ")]
    assert len(ours) == 1
    assert ours[0].startswith(f"oaipmh-server: listening at http://127.0.0.1:{port} (2 workers")
    chatter = [line for line in lines if "Booting worker" in line]
    assert not [line for line in lines if "Context impl" in line]
    if verbose:
        assert chatter
    else:
        assert lines[0] == ours[0]
        others = [line for line in lines[1:] if not line.startswith("{")]
        assert others == []
        assert [json.loads(line)["verb"] for line in lines[1:]] == ["Identify"] * 4
    assert list(temporary.iterdir()) == []


def test_metrics_folder_removed_when_serve_fails_to_start(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "oaipmh_server", "serve"],
        env={**os.environ, "TMPDIR": str(temporary), "OAIPMH_PAGE_SIZE": "0",
             "OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oai.sqlite3")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert list(temporary.iterdir()) == []


def test_ctrl_c_stops_it_without_a_traceback(sample_store: str, tmp_path: Path) -> None:
    """Ctrl-C reaches the master and the worker at once (the worker also gets the
    master's SIGQUIT): it stops, status 0, and prints no traceback."""
    import requests

    port = free_port()
    server = Served(
        ["--port", str(port), "--workers", "1", "--verbose"],
        {"OAIPMH_DATABASE_URL": sample_store},
    )
    try:
        # An answered request: the worker has set its signals and built its app.
        answered = requests.get(f"http://127.0.0.1:{port}/oai?verb=Identify", timeout=30)
        assert answered.status_code == 200
        server.interrupt()
        assert server.process.wait(timeout=30) == 0
    finally:
        lines = server.stop()
    assert not [line for line in lines if "Traceback" in line or "SystemExit" in line]


def test_ready_is_told_to_systemd_after_the_listening_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`Type=notify` (and the tests' LiveServer) take READY=1 as "the server has started":
    by then its start-up line is written. gunicorn sends READY=1 before `when_ready` runs,
    so `serve` holds $NOTIFY_SOCKET back from gunicorn and says READY itself, after the
    line; a log read from READY on never sees the line arrive late."""
    import socket

    from gunicorn import systemd

    address = f"oaipmh-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + address)
        notify.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + address)

        class Arbiter:  # what the hooks read of gunicorn's arbiter
            LISTENERS = ("http://127.0.0.1:5000",)
            num_workers = 2
            pid = 1234
            log = None

        arbiter = Arbiter()
        options = serving.gunicorn_options(load_settings(environ={}))
        options["on_starting"](arbiter)
        systemd.sd_notify("READY=1\nSTATUS=Gunicorn arbiter booted", None)  # as gunicorn does
        with pytest.raises(BlockingIOError):
            notify.recv(4096)
        assert "NOTIFY_SOCKET" not in os.environ  # nor do the workers inherit it

        options["when_ready"](arbiter)
        said = capsys.readouterr().err
        assert said.startswith("oaipmh-server: listening at http://127.0.0.1:5000 (2 workers")
        assert notify.recv(4096).split(b"\n")[0] == b"READY=1"
