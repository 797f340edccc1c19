"""The benchmark scripts still run end to end (a few hundred records; figures unchecked)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import ROOT

# A slow tier (-m "not benchmarks" leaves it out of a quick run; .ci/run runs it).
pytestmark = pytest.mark.benchmarks


def test_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "300"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "records/s" in done.stdout and "ListIdentifiers" in done.stdout
    assert "ours / ceiling" in done.stdout and "ours / peer" in done.stdout


def test_poll_during_load_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "poll_during_load.py"), "300"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"changes_lost": 0' in done.stdout


def test_pages_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pages.py"), "300", "--rounds", "5"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "record page" in done.stdout and "last/first" in done.stdout


def test_dspace_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dspace.py"), "200", "--rounds", "1"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SAF load: 200 records" in done.stdout and "added 200" in done.stdout
    assert "CSV merge: 200 records" in done.stdout and "updated 200" in done.stdout
    assert "set=col_10722_10 / whole list" in done.stdout


def test_sync_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sync.py"), "300", "--rounds", "1"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "withdrawn 3," in done.stdout and "sync / plain:" in done.stdout


def _wsgi_get(app: Any, query: str) -> bytes:
    answer: list[str] = []
    body = b"".join(app({"QUERY_STRING": query}, lambda status, headers: answer.append(status)))
    assert answer == ["200 OK"]
    return body


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_ceiling_and_the_reference_read_either_backend(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run.py --backend postgresql` serves both from the store it loaded (a whole run takes
    half a minute, so here: each server, in process, over the sample store)."""
    monkeypatch.setenv("OAIPMH_DATABASE_URL", database_url)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.delitem(sys.modules, "driver", raising=False)  # it reads the URL on import
    ceiling = runpy.run_path(str(ROOT / "benchmarks" / "ceiling.py"))
    peer = runpy.run_path(str(ROOT / "benchmarks" / "peer.py"))
    try:
        connection = ceiling["connection"]
        live = connection.execute("SELECT count(*) FROM records WHERE NOT deleted").fetchone()[0]
        every = connection.execute("SELECT count(*) FROM records").fetchone()[0]
        assert _wsgi_get(ceiling["app"], "").count(b"<record>") == live > 1
        # Its token, "datestamp|id", continues after that record (a datetime's text).
        first = connection.execute(
            "SELECT datestamp, local_id FROM records WHERE NOT deleted"
            " ORDER BY datestamp, local_id LIMIT 1"
        ).fetchone()
        after = urlencode({"resumptionToken": f"{first[0]}|{first[1]}"})
        assert _wsgi_get(ceiling["app"], after).count(b"<record>") == live - 1
        listed = _wsgi_get(peer["app"], "verb=ListRecords&metadataPrefix=oai_dc")
        assert listed.count(b"<record>") == every
    finally:
        for server in (ceiling, peer):
            getattr(server["connection"], "connection", server["connection"]).close()
