"""`kill -HUP` (what `systemctl reload` sends) while harvesters harvest: a good configuration
is applied without one failed request; a bad one is refused in one logged line, the old
workers serving on with the old configuration and the master alive."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from .conftest import Databases, free_port
from .served import Served

# Real server processes: a slow tier (-m "not live" leaves it out of a quick run).
pytestmark = pytest.mark.live

IDENTIFIER = re.compile(r"<identifier>([^<]+)</identifier>")
TOKEN = re.compile(r"<resumptionToken[^>]*>([^<]*)</resumptionToken>")
NAME = re.compile(r"<repositoryName>([^<]+)</repositoryName>")


def configuration(name: str, page_size: str) -> str:
    return f'[repository]\nname = "{name}"\n\n[harvest]\npage_size = {page_size}\n'


@dataclass
class Harvester:
    """Harvests without pause in a thread of its own, each request on a new connection
    (as a harvester does between pages, and as a proxy's pool does when a worker has
    closed one): Identify, then every page of ListIdentifiers, again and again. Notes
    the repository name and page sizes it sees, and every request that fails."""

    url: str
    failures: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    page_sizes: list[int] = field(default_factory=list)
    harvests: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    seen: threading.Condition = field(default_factory=threading.Condition)

    def get(self, **params: str) -> str | None:
        try:
            response = requests.get(self.url, params=params, timeout=30)
        except requests.RequestException as e:
            self.failures.append(f"{params}: {e}")
            return None
        if response.status_code != 200 or "<error" in response.text:
            self.failures.append(f"{params}: {response.status_code} {response.text[:200]}")
            return None
        return response.text

    def run(self) -> None:
        while not self.stop.is_set():
            identify = self.get(verb="Identify")
            if identify is None:
                continue
            found = NAME.search(identify)
            sizes = []
            params = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"}
            while (page := self.get(**params)) is not None:
                sizes.append(len(IDENTIFIER.findall(page)))
                token = TOKEN.search(page)
                if token is None or not token.group(1):
                    break
                params = {"verb": "ListIdentifiers", "resumptionToken": token.group(1)}
            with self.seen:
                self.names.append(found.group(1) if found else "")
                self.page_sizes.append(sizes[0] if sizes else 0)
                self.harvests += 1
                self.seen.notify_all()

    def wait_for(self, condition: str, test: object, within: float = 120) -> None:
        with self.seen:
            assert self.seen.wait_for(test, timeout=within), (condition, self.failures)  # type: ignore[arg-type]


def workers(server: Served) -> list[int]:
    """The master's children: its workers."""
    pid = server.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def sample_sqlite(databases: Databases, request: pytest.FixtureRequest) -> str:
    return databases.samples("sqlite", request)


@pytest.fixture
def harvested(sample_sqlite: str, tmp_path: Path) -> Iterator[tuple[Served, Harvester, Path]]:
    config = tmp_path / "oaipmh.toml"
    config.write_text(configuration("Before", "5"))
    port = free_port()
    server = Served(
        # One worker: a reload hands over from the old one to the new one with no other
        # to take the listen queue meanwhile. --verbose: the "Booting worker" lines.
        ["--port", str(port), "--workers", "1", "--verbose"],
        {"OAIPMH_DATABASE_URL": sample_sqlite, "OAIPMH_CONFIG": str(config)},
    )
    harvester = Harvester(f"http://127.0.0.1:{port}/oai")
    thread = threading.Thread(target=harvester.run, daemon=True)
    thread.start()
    try:
        yield server, harvester, config
    finally:
        harvester.stop.set()
        thread.join(timeout=60)
        server.stop()


def test_reload_applies_a_good_configuration_and_refuses_a_bad_one(
    harvested: tuple[Served, Harvester, Path],
) -> None:
    server, harvester, config = harvested
    harvester.wait_for("harvests before", lambda: harvester.harvests >= 2)
    assert harvester.names[-1] == "Before"
    assert harvester.page_sizes[-1] == 5

    # A good file: new workers with it, the old ones finishing their requests.
    config.write_text(configuration("After", "3"))
    server.hang_up()
    server.expect(r"^oaipmh-server: configuration reloaded")
    harvester.wait_for("the new name served", lambda: harvester.names[-1:] == ["After"])
    done = harvester.harvests
    harvester.wait_for("a whole harvest after", lambda: harvester.harvests >= done + 1)
    assert harvester.page_sizes[-1] == 3

    # A bad file (the mistake of issue 21): refused, in one line naming the key.
    config.write_text(configuration("Bad", '"100"'))
    server.hang_up()
    refused = server.expect(r"^oaipmh-server: configuration not reloaded")  # as the manual shows it
    assert "harvest.page_size: expected an integer" in refused
    assert "expected an integer, got '100'" in refused
    done = harvester.harvests
    harvester.wait_for("harvests after the refusal", lambda: harvester.harvests >= done + 3)
    assert harvester.names[done:] == ["After"] * (harvester.harvests - done)
    assert set(harvester.page_sizes[done:]) == {3}
    assert server.process.poll() is None  # the master lives on

    # A worker that ends (here stopped; a crash, a timeout) is replaced by one with the
    # configuration the master checked last, not with the file as it now is.
    os.kill(workers(server)[0], signal.SIGTERM)
    server.expect(r"Booting worker with pid")
    done = harvester.harvests
    harvester.wait_for("harvests after the new worker", lambda: harvester.harvests >= done + 4)
    assert harvester.names[done:] == ["After"] * (harvester.harvests - done)
    assert server.process.poll() is None

    # Once the file is mended, a HUP applies it.
    config.write_text(configuration("Mended", "4"))
    server.hang_up()
    server.expect(r"^oaipmh-server: configuration reloaded")
    harvester.wait_for("the mended name served", lambda: harvester.names[-1:] == ["Mended"])

    assert harvester.failures == []
    assert sum("not reloaded" in line for line in server.lines) == 1
    assert not any("Traceback" in line for line in server.lines)
