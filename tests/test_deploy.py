"""The deployment kit in deploy/, each file run as an operator would use it: the systemd
unit through `systemd-analyze` and its ExecStart with its environment and credentials, the
nginx site in front of a live server, the container's entrypoint against a PostgreSQL that
is not up yet; the Containerfile and the compose file, which cannot be run here, as data.

The tools come from Debian (`apt-get install nginx systemd`; `.ci/run` installs them).
Without them these tests are skipped with that reason, unless TEST_REQUIRE_DEPLOY=1 (set
by `.ci/run`), where they fail.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import queue
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import zlib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from lxml import etree
from requests.adapters import HTTPAdapter
from sickle import Sickle

from oaipmh_server.config import CREDENTIALS

from . import xsd
from .conftest import SAMPLES, LiveServer, load_into, postgres_bindir, sqlite_url
from .postgres import Cluster
from .served import end

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
# Real server processes: a slow tier (-m "not live" leaves it out of a quick run).
pytestmark = [pytest.mark.store_behaviour, pytest.mark.live]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "oaipmh-server.service"
SITE = DEPLOY / "nginx.conf"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
# Three loopback addresses, so that each party is told apart by its address alone: nginx
# listens on PROXY, the harvester connects from CLIENT, the server sees nginx come from
# 127.0.0.1 (the address deploy/nginx.conf and [server] trusted_proxies name).
PROXY = "127.0.0.2"
CLIENT = "127.0.0.3"


def tool(name: str, *folders: str) -> str:
    """The path of a program the kit is tested with, or a skip (a failure in CI)."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *folders]))
    if found is None:
        message = f"{name} is not installed (apt-get install nginx systemd)"
        if os.environ.get("TEST_REQUIRE_DEPLOY") == "1":
            pytest.fail(f"{message}, and TEST_REQUIRE_DEPLOY=1")
        pytest.skip(message)
    return found


def installed_script() -> Path:
    """The `oaipmh-server` script pip installed beside this Python (a venv's bin/)."""
    script = Path(sys.executable).parent / "oaipmh-server"
    assert script.exists(), f"{script}: install the project (pip install -e .) into this Python"
    return script


# -- the systemd unit ----------------------------------------------------------------------


def unit_settings(unit: Path = UNIT) -> dict[str, list[str]]:
    """The unit's `Key=value` lines, each key with its values in order."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text("utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def runnable_unit(folder: Path) -> Path:
    """The unit as shipped, but starting the `oaipmh-server` installed here: systemd-analyze
    verify checks that ExecStart's program exists, and /opt/oaipmh-server/venv does not."""
    text = UNIT.read_text("utf-8")
    shipped = "ExecStart=/opt/oaipmh-server/venv/bin/oaipmh-server serve\n"
    assert text.count(shipped) == 1
    unit = folder / UNIT.name
    unit.write_text(text.replace(shipped, f"ExecStart={installed_script()} serve\n"), "utf-8")
    return unit


def test_systemd_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    result = subprocess.run([analyze, "verify", runnable_unit(tmp_path)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_unit_is_sandboxed(tmp_path: Path) -> None:
    """systemd's own rating of the sandbox: "OK" (exposure 2.0 or less out of 10)."""
    analyze = tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", runnable_unit(tmp_path)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(
        r"Overall exposure level for oaipmh-server\.service: [0-9.]+ OK", result.stdout
    )


def test_systemd_unit_runs_serve_in_production_with_its_state_and_secrets() -> None:
    unit = unit_settings()
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key, value in [("DynamicUser", "yes"), ("ProtectSystem", "strict"),
                       ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes"), ("SystemCallFilter", "@system-service")]:  # fmt: skip
        assert unit[key] == [value], key
    environment = dict(line.partition("=")[::2] for line in unit["Environment"])
    assert environment["OAIPMH_MODE"] == "production"
    assert environment["OAIPMH_CONFIG"] == "/etc/oaipmh-server/oaipmh.toml"
    state = "/var/lib/" + unit["StateDirectory"][0] + "/"
    assert environment["OAIPMH_DATABASE_URL"] == f"sqlite:///{state}oaipmh.sqlite3"
    # The credentials are named as the server reads them from $CREDENTIALS_DIRECTORY:
    # the token secret loaded, the others ready to uncomment.
    assert [c.partition(":")[0] for c in unit["LoadCredential"]] == ["token_secret"]
    commented = re.findall(r"^#LoadCredential=(\w+):", UNIT.read_text("utf-8"), re.MULTILINE)
    assert ("token_secret", *commented) == CREDENTIALS


REFRESH = DEPLOY / "oaipmh-server-refresh.service"
TIMER = DEPLOY / "oaipmh-server-refresh.timer"


def test_the_daily_refresh_units_verify_without_a_warning(tmp_path: Path) -> None:
    """The timer and the one-shot service that runs `refresh-sets` daily, the write that
    re-dates records whose embargo ended (docs/commands.md), as shipped but for the
    program's place (systemd-analyze verify checks that ExecStart's program exists)."""
    analyze = tool("systemd-analyze")
    shipped = "ExecStart=/opt/oaipmh-server/venv/bin/oaipmh-server refresh-sets\n"
    text = REFRESH.read_text("utf-8")
    assert text.count(shipped) == 1
    (tmp_path / REFRESH.name).write_text(
        text.replace(shipped, f"ExecStart={installed_script()} refresh-sets\n"), "utf-8"
    )
    shutil.copy(TIMER, tmp_path / TIMER.name)
    result = subprocess.run(
        [analyze, "verify", tmp_path / TIMER.name, tmp_path / REFRESH.name],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_daily_refresh_writes_the_store_the_service_serves() -> None:
    """The same store and configuration, as the same (dynamic) user with the same state
    folder: a refresh of another store, or one its user cannot write, would do nothing
    for the served one."""
    served, refresh = unit_settings(), unit_settings(REFRESH)
    for key in ("DynamicUser", "User", "StateDirectory", "WorkingDirectory", "UMask"):
        assert refresh[key] == served[key], key
    environment = {k: v for k, _, v in (e.partition("=") for e in served["Environment"])}
    wanted = {k: environment[k] for k in ("OAIPMH_CONFIG", "OAIPMH_DATABASE_URL")}
    assert dict(e.partition("=")[::2] for e in refresh["Environment"]) == wanted
    assert unit_settings(TIMER)["Persistent"] == ["true"]


# -- nginx in front of a live server -------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Nginx:
    """Debian's nginx in the foreground, serving deploy/nginx.conf (its listen and upstream
    addresses changed, nothing else) from a main configuration of its own in `folder`.
    It is ready once its master says it started a worker: it listens from before that."""

    def __init__(self, folder: Path, upstream: str) -> None:
        nginx = tool("nginx", "/usr/sbin")
        self.port = free_port(PROXY)
        self.url = f"http://{PROXY}:{self.port}"
        site = SITE.read_text("utf-8")
        replaced = [
            ("    server 127.0.0.1:5000;\n", f"    server {upstream};\n"),
            ("    listen 80;\n", f"    listen {PROXY}:{self.port};\n"),
        ]
        for old, new in replaced:
            assert site.count(old) == 1, old
            site = site.replace(old, new)
        (folder / "site.conf").write_text(site, "utf-8")
        temp = " ".join(f"{kind}_temp_path {folder}/{kind};"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
        # As root, workers run as root too: the test's folders are root's alone.
        user = "user root;" if os.geteuid() == 0 else ""
        (folder / "nginx.conf").write_text(
            f"daemon off; {user} worker_processes 1; pid {folder}/nginx.pid;\n"
            "error_log stderr notice;\n"
            "events { worker_connections 128; }\n"
            f"http {{ access_log off; {temp}\n include {folder}/site.conf; }}\n",
            "utf-8",
        )
        self.process = subprocess.Popen(
            [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", "stderr"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() sees every line not yet read
        )  # fmt: skip
        self.errors: list[str] = []
        self._wait_for("start worker process ")

    def _wait_for(self, text: str) -> None:
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stderr], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = self.process.stderr.readline().decode("utf-8", "replace")
            if not line:  # nginx ended
                break
            self.errors.append(line)
            if text in line:
                return
        self.stop()
        raise RuntimeError("nginx did not start:\n" + "".join(self.errors))

    def stop(self) -> str:
        """Stop nginx; what it logged."""
        self.process.terminate()
        _, rest = self.process.communicate(timeout=30)
        return "".join(self.errors) + rest.decode("utf-8", "replace")


class SourceAddress(HTTPAdapter):
    """Connections from one local address: the harvester is 127.0.0.3, not nginx's 127.0.0.1."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and nginx
    session.mount("http://", SourceAddress(CLIENT))
    return session


class ClientSickle(Sickle):  # type: ignore[misc]
    """Sickle, harvesting from the client's address."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self.session = client_session()

    def _request(self, kwargs: dict[str, str]) -> requests.Response:
        if self.http_method == "GET":
            return self.session.get(self.endpoint, params=kwargs, **self.request_args)
        return self.session.post(self.endpoint, data=kwargs, **self.request_args)


# A record with many files, each with a long name: its Signposting `Link` header, one
# entry per file, would be some 40 KB, well past nginx's proxy_buffer_size.
MANY = "10722/900001"
FILE_NAMES = [
    f"chapter-{n:03d}-of-the-collected-field-notes-on-coastal-erosion-and-sediment-transport.pdf"
    for n in range(1, 201)
]
FILES_URL = "https://dspace.example.org/bitstream/handle/{handle}/{name}?sequence={sequence}"


@pytest.fixture(scope="module")
def harvested_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample records and one record with 200 files, on SQLite (the proxy does not
    care which store answers)."""
    folder = tmp_path_factory.mktemp("deploy-store")
    record = {
        "id": MANY,
        "sets": ["col_10722_5"],
        "metadata": [{"field": "dc.title", "value": "Collected field notes"},
                     {"field": "dc.date.accessioned", "value": "2020-01-02T03:04:05Z"}],
        "files": [{"name": name, "size": 1000 + n, "md5": f"{n:032x}"}
                  for n, name in enumerate(FILE_NAMES, start=1)],
    }  # fmt: skip
    (folder / "many.json").write_text(json.dumps(record), "utf-8")
    url = sqlite_url(folder / "oai.sqlite3")
    load_into(url, SAMPLES, folder / "many.json")
    return url


@pytest.fixture(scope="module")
def behind_nginx(
    harvested_store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Nginx]]:
    """The server behind nginx, started once for the module's tests, which only read
    through it (a server and nginx start cost seconds, a request milliseconds)."""
    tmp_path = tmp_path_factory.mktemp("behind-nginx")
    config = tmp_path / "oaipmh.toml"
    config.write_text(f'[server]\ntrusted_proxies = ["127.0.0.1"]\n[files]\nurl = "{FILES_URL}"\n')
    store = tmp_path / "oai.sqlite3"
    shutil.copy(harvested_store.removeprefix("sqlite:///"), store)
    server = LiveServer(sqlite_url(store), tmp_path, workers=1, OAIPMH_CONFIG=str(config),
                        OAIPMH_PAGE_SIZE="7")  # fmt: skip
    folder = tmp_path / "nginx"
    folder.mkdir()
    try:
        proxy = Nginx(folder, f"127.0.0.1:{server.port}")
    except BaseException:
        server.stop()
        raise
    yield server, proxy
    log = proxy.stop()
    server.stop()
    # Nothing went wrong between nginx and the server (a refused /metrics is not that).
    failures = [line for line in log.splitlines()
                if re.search(r"\[(emerg|alert|crit)\]", line) or ("[error]" in line and "upstream" in line)]  # fmt: skip
    assert not failures, log


def access_lines(server: LiveServer) -> list[dict[str, Any]]:
    """The server's JSON access lines so far (each written before its answer was sent)."""
    text = Path(server.log.name).read_text("utf-8", "replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"')]


def test_harvest_through_nginx(behind_nginx: tuple[LiveServer, Nginx]) -> None:
    """A harvester behind nginx is told nginx's baseURL and harvests every record, page by
    page, over GET and POST; the server logs the harvester's address, not nginx's."""
    server, proxy = behind_nginx
    endpoint = proxy.url + "/oai"
    identify = ClientSickle(endpoint).Identify()
    assert identify.baseURL == endpoint
    direct = {h.identifier for h in Sickle(server.url).ListIdentifiers(metadataPrefix="oai_dc")}
    assert len(direct) > 14  # two pages of 7 at least: resumption tokens go through nginx
    for method in ("GET", "POST"):
        records = ClientSickle(endpoint, http_method=method).ListRecords(metadataPrefix="oai_dc")
        assert {r.header.identifier for r in records} == direct
    lines = [line for line in access_lines(server) if line["verb"] == "ListRecords"]
    assert lines and all(line["client"] == CLIENT for line in lines), lines


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compression_is_the_servers_through_nginx(
    behind_nginx: tuple[LiveServer, Nginx], coding: str
) -> None:
    """nginx passes the server's own compression through: what Identify advertises."""
    _, proxy = behind_nginx
    response = client_session().get(
        proxy.url + "/oai", params={"verb": "ListRecords", "metadataPrefix": "oai_dc"},
        headers={"Accept-Encoding": coding}, stream=True,
    )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == coding
    raw = response.raw.read(decode_content=False)
    document = gzip.decompress(raw) if coding == "gzip" else zlib.decompress(raw)
    xsd.validate(document)
    identify = etree.fromstring(
        client_session().get(proxy.url + "/oai", params={"verb": "Identify"}).content
    )
    assert coding in [e.text for e in identify.iter(f"{OAI}compression")]


def test_record_page_with_many_files_through_nginx(behind_nginx: tuple[LiveServer, Nginx]) -> None:
    """Stock nginx answers 502 once a response head passes its 4 KB buffer; a record with
    200 files is answered, every file linked on the page."""
    _, proxy = behind_nginx
    response = client_session().get(f"{proxy.url}/records/{MANY}")
    assert response.status_code == 200, response.text[:500]
    assert 0 < len(response.headers["Link"]) < 8192
    page = response.text
    for n, name in enumerate(FILE_NAMES, start=1):
        assert f"{MANY}/{name}?sequence={n}" in page, name


def test_metrics_are_not_public_through_nginx(behind_nginx: tuple[LiveServer, Nginx]) -> None:
    """nginx answers /metrics only to the addresses it lists (403 to others); the server
    answers it (as [server] metrics_allow says) to the client nginx forwards, not to nginx."""
    _, proxy = behind_nginx
    assert client_session().get(proxy.url + "/metrics").status_code == 403
    monitoring = client_session()
    monitoring.mount("http://", SourceAddress("127.0.0.1"))
    response = monitoring.get(proxy.url + "/metrics")
    assert response.status_code == 200 and "oaipmh_" in response.text
    assert client_session().get(proxy.url + "/healthz").status_code == 200


# -- the container's entrypoint ------------------------------------------------------------


@pytest.fixture
def halted_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of its own with an empty database `oai`, stopped: nothing
    accepts connections on its port until the test starts it."""
    cluster = Cluster(postgres_bindir())
    try:
        cluster.create_database("oai")
        cluster.halt()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already halted
            cluster.stop()


class Entrypoint:
    """deploy/entrypoint.sh run as it is, as a container runs it (or another `command`),
    with this Python's `oaipmh-server` and `python3` first on PATH (as the image's venv
    is). Its output is read line by line as it comes; it is ready when gunicorn says
    READY=1 to $NOTIFY_SOCKET, as systemd hears it."""

    def __init__(self, tmp_path: Path, *, command: list[str] | None = None, **env: str) -> None:
        self.port = free_port("127.0.0.1")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = f"oaipmh-entrypoint-{os.getpid()}-{self.port}"
        self.notify.bind("\0" + address)
        environment = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "OAIPMH_PORT": str(self.port),
            "XDG_RUNTIME_DIR": str(tmp_path),  # flow control's lock files
            "NOTIFY_SOCKET": "@" + address,
            **env,
        }
        installed_script()
        self.process = subprocess.Popen(
            command or [str(DEPLOY / "entrypoint.sh")], env=environment, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.output: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.decode("utf-8", "replace"))
        self.lines.put(None)

    def wait_for(self, text: str) -> str:
        """The first line (from now) holding `text`; fails if the script ends first."""
        deadline = time.monotonic() + 60
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"the entrypoint ended before {text!r}:\n{self.said()}")
            self.output.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} from the entrypoint in 60 s:\n{self.said()}")

    def said(self) -> str:
        return "".join(self.output)

    def wait_ready(self) -> None:
        exited = os.pidfd_open(self.process.pid)
        try:
            ready, _, _ = select.select([self.notify, exited], [], [], 60)
            if self.notify in ready and b"READY=1" in self.notify.recv(4096).split(b"\n"):
                return
        finally:
            os.close(exited)
        raise AssertionError(f"the server did not say it was ready:\n{self.said()}")

    def wait_exit(self) -> int:
        code = self.process.wait(timeout=60)
        while (line := self.lines.get(timeout=10)) is not None:
            self.output.append(line)
        return code

    def stop(self) -> None:
        self.notify.close()
        end(self.process)
        self.reader.join(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()
        while not self.lines.empty():
            if (line := self.lines.get()) is not None:
                self.output.append(line)


# A configuration production mode accepts: an identity of its own, a baseURL.
PRODUCTION_CONFIG = (
    '[repository]\nname = "Test University Repository"\nidentifier = "oai.uni-test.de"\n'
    'admin_emails = ["oai@uni-test.de"]\nbase_url = "https://oai.uni-test.de/oai"\n'
    '[server]\ntrusted_proxies = ["127.0.0.1"]\n'
)


def test_systemd_unit_starts_serve_and_reloads(tmp_path: Path) -> None:
    """The unit's ExecStart with its Environment= and its credentials, as systemd runs it
    (less the sandbox, and with its paths in tmp_path): production mode starts on the
    token secret from $CREDENTIALS_DIRECTORY, says READY=1 (Type=notify), answers
    across ExecReload's HUP, and ends cleanly on SIGTERM (KillMode=mixed)."""
    unit = unit_settings()
    assert unit["Type"] == ["notify"] and unit["KillMode"] == ["mixed"]
    moved = {"/var/lib/oaipmh-server": str(tmp_path / "state"),
             "/etc/oaipmh-server/oaipmh.toml": str(tmp_path / "oaipmh.toml")}  # fmt: skip
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "oaipmh.toml").write_text(PRODUCTION_CONFIG)
    environment = {}
    for line in unit["Environment"]:
        name, _, value = line.partition("=")
        for old, new in moved.items():
            value = value.replace(old, new)
        environment[name] = value
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    for credential in unit["LoadCredential"]:
        name = credential.partition(":")[0]
        (credentials / name).write_text("a-token-secret-of-more-than-32-characters\n")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    program, *arguments = unit["ExecStart"][0].split()
    assert program == "/opt/oaipmh-server/venv/bin/oaipmh-server"
    service = Entrypoint(
        tmp_path, command=[str(installed_script()), *arguments], **environment,
        CREDENTIALS_DIRECTORY=str(credentials), RUNTIME_DIRECTORY=str(runtime),
        OAIPMH_WORKERS="1",  # how many is not the point: a worker less at start and reload
    )  # fmt: skip
    try:
        service.wait_ready()
        url = f"http://127.0.0.1:{service.port}/oai"
        reload = unit["ExecReload"][0].replace("$MAINPID", str(service.process.pid))
        for reloaded in (False, True):
            response = requests.get(url, params={"verb": "Identify"}, timeout=30)
            assert response.status_code == 200
            identify = xsd.validate(response.content)
            assert identify.findtext(f".//{OAI}baseURL") == "https://oai.uni-test.de/oai"
            if not reloaded:
                subprocess.run(reload.split(), check=True)
        service.process.terminate()
        assert service.wait_exit() == 0
    finally:
        service.stop()
    assert (tmp_path / "state" / "oaipmh.sqlite3").exists()
    assert "Traceback" not in service.said()


def compose_environment(tmp_path: Path, cluster: Cluster) -> dict[str, str]:
    """The server's environment in deploy/compose.yaml, here: its database the test's
    cluster, its secrets (compose's /run/secrets/…) and configuration files in tmp_path,
    and without OAIPMH_HOST and OAIPMH_PORT (compose's are for nginx beside it)."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    environment = {k: str(v) for k, v in compose["services"]["server"]["environment"].items()}
    del environment["OAIPMH_HOST"], environment["OAIPMH_PORT"]
    environment["OAIPMH_DATABASE_URL"] = cluster.url("oai")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "token_secret").write_text("a-token-secret-of-more-than-32-characters\n")
    (secrets / "database_password").write_text("unused: the test cluster trusts\n")
    for name, value in environment.items():
        if value.startswith("/run/secrets/"):
            environment[name] = str(secrets / value.removeprefix("/run/secrets/"))
    config = tmp_path / "oaipmh.toml"
    config.write_text(PRODUCTION_CONFIG)
    assert environment["OAIPMH_CONFIG"] == "/etc/oaipmh-server/oaipmh.toml"
    environment["OAIPMH_CONFIG"] = str(config)
    return environment


def test_entrypoint_waits_for_the_database_migrates_and_serves(
    halted_cluster: Cluster, tmp_path: Path
) -> None:
    """Started as compose starts it (production mode, secrets in files) before PostgreSQL
    accepts connections: it waits, says so, migrates the new database once PostgreSQL is
    up, and serves on every address (OAIPMH_HOST is 0.0.0.0 by default)."""
    environment = compose_environment(tmp_path, halted_cluster)
    entrypoint = Entrypoint(tmp_path, **environment, OAIPMH_WORKERS="1")  # one is enough here
    try:
        waiting = entrypoint.wait_for("entrypoint: waiting for the database")
        assert f"127.0.0.1:{halted_cluster.port}" in waiting
        halted_cluster.start()
        entrypoint.wait_ready()
        for host in ("127.0.0.1", "127.0.0.2"):
            response = requests.get(f"http://{host}:{entrypoint.port}/oai",
                                    params={"verb": "Identify"}, timeout=30)  # fmt: skip
            assert response.status_code == 200
            identify = xsd.validate(response.content)
            assert identify.findtext(f".//{OAI}baseURL") == "https://oai.uni-test.de/oai"
    finally:
        entrypoint.stop()
    said = entrypoint.said()
    assert re.search(r"^schema: none → \d+ ", said, re.MULTILINE), said
    assert "Traceback" not in said


def test_entrypoint_gives_up_on_a_database_that_never_comes(tmp_path: Path) -> None:
    """A PostgreSQL address where nothing listens, as a halted server's (no cluster of its
    own: one would only be started, and halted, for the refusal)."""
    port = free_port("127.0.0.1")
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{port}/oai"
    entrypoint = Entrypoint(tmp_path, OAIPMH_DATABASE_URL=nowhere, DATABASE_WAIT_SECONDS="1")
    try:
        assert entrypoint.wait_exit() == 1
    finally:
        entrypoint.stop()
    last = entrypoint.said().splitlines()[-1]
    assert last.startswith("entrypoint: gave up waiting for the database: ")
    assert f"127.0.0.1:{port}" in last
    assert "Traceback" not in entrypoint.said()


def test_entrypoint_stops_at_once_on_a_mistake_in_the_settings(tmp_path: Path) -> None:
    entrypoint = Entrypoint(tmp_path, OAIPMH_DATABASE_URL="postgresql+psycopg://oai@127.0.0.1:1/oai",
                            OAIPMH_PAGE_SIZE="many")  # fmt: skip
    try:
        assert entrypoint.wait_exit() == 1
    finally:
        entrypoint.stop()
    lines = entrypoint.said().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("entrypoint: ") and "OAIPMH_PAGE_SIZE" in lines[0]
    )


# -- the image and compose files -----------------------------------------------------------


def test_an_install_that_is_not_editable_holds_every_package() -> None:
    """The systemd unit and the image run a `pip install .` (not `-e`): setuptools installs
    only the packages pyproject.toml lists, so a package folder left out of the list is
    missing there while every editable install and the suite still find it. `oaipmh_server.cli`
    was: `/opt/oaipmh-server/venv/bin/oaipmh-server` ended in `ModuleNotFoundError`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    listed = set(project["tool"]["setuptools"]["packages"])
    source = ROOT / "oaipmh_server"
    folders = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in source.rglob("__init__.py")
    }
    assert folders - listed == set()
    assert listed - folders == set()
    # And every other file the server reads at run time is package data (Alembic's
    # template for writing a new revision is a developer's, not the server's).
    patterns = project["tool"]["setuptools"]["package-data"]
    for path in source.rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc") or path.name == "script.py.mako":
            continue
        package = path.parent
        while not (package / "__init__.py").exists():
            package = package.parent
        name = ".".join(package.relative_to(ROOT).parts)
        inside = path.relative_to(package).as_posix()
        assert any(fnmatch(inside, p) for p in patterns.get(name, [])), inside


def test_containerfile_copies_what_the_install_needs() -> None:
    """The image is not built here: check that what it copies exists and holds every
    package pyproject.toml installs, and that it starts with the entrypoint."""
    text = (DEPLOY / "Containerfile").read_text("utf-8")
    copied: list[str] = []
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            copied.append(source)
    assert "deploy/entrypoint.sh" in copied
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    folders = project["tool"]["setuptools"].get("package-dir", {})
    for package in project["tool"]["setuptools"]["packages"]:
        folder = folders.get(package, package.replace(".", "/"))
        assert any(folder == c or folder.startswith(c + "/") for c in copied), package
    assert project["project"]["readme"] in copied and "LICENSE" in copied
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/oaipmh-server-entrypoint"\]$', text, re.M)
    assert "COPY deploy/entrypoint.sh /usr/local/bin/oaipmh-server-entrypoint" in text


def test_compose_runs_postgresql_the_server_and_nginx() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    services = compose["services"]
    assert set(services) == {"db", "server", "nginx"}
    assert services["server"]["build"] == {"context": "..", "dockerfile": "deploy/Containerfile"}
    assert (DEPLOY / services["server"]["build"]["context"] / "deploy/Containerfile").exists()
    server = services["server"]["environment"]
    assert server["OAIPMH_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert server["OAIPMH_MODE"] == "production"
    # nginx reaches the server at 127.0.0.1:5000, as deploy/nginx.conf says, unchanged.
    assert services["nginx"]["network_mode"] == "service:server"
    assert (server["OAIPMH_HOST"], server["OAIPMH_PORT"]) == ("127.0.0.1", "5000")
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["nginx"]["volumes"]
    assert "server 127.0.0.1:5000;" in SITE.read_text("utf-8")
    for name in services["server"]["secrets"]:
        assert name in compose["secrets"]
    assert services["server"]["depends_on"]["db"]["condition"] == "service_healthy"
