"""The benchmark scripts still run end to end (figures unchecked), each at a small size that
still takes every path it has at full size: more records than a page (100), so lists
go through resumption tokens, and a set of more than a set page (50) for pages.py; servers
with one gunicorn worker (a worker more shows nothing more here, and costs a start); one
round where a script repeats its measurement to take medians (a round more repeats the
same requests)."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import ROOT

# A slow tier (-m "not benchmarks" leaves it out of a quick run; .ci/run runs it).
pytestmark = pytest.mark.benchmarks


def bench(script: str, *arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    """benchmarks/`script` run to its end, which it must reach with status 0; `env`: more
    environment for it (and the commands it runs)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_benchmark_runs() -> None:
    """The whole run, the ceiling compared, the reference left out (`--no-reference`: the
    1,000,000-record figure without the reference's hour of OFFSET pages). The reference
    serves the same store in `test_the_ceiling_and_the_reference_read_either_backend`,
    and run.py compares it in the same loop as the ceiling."""
    done = bench("run.py", "150", "--workers", "1", "--no-reference", "--rounds", "1")
    assert "records/s" in done.stdout and "ListIdentifiers" in done.stdout
    assert "ours / ceiling" in done.stdout and "peer" not in done.stdout
    # The same rounds judged by the servers' own CPU a request (the client's left out).
    cpu = re.search(r"^ceiling / ours, server CPU a request: ([0-9.]+) \(ours ([0-9.]+) ms, "
                    r"ceiling ([0-9.]+) ms", done.stdout, re.MULTILINE)  # fmt: skip
    assert cpu is not None, done.stdout
    assert all(float(figure) > 0 for figure in cpu.groups())


def test_poll_during_load_benchmark_runs() -> None:
    done = bench("poll_during_load.py", "150", OAIPMH_WORKERS="1")  # its serve: one worker
    assert '"changes_lost": 0' in done.stdout


def test_pages_benchmark_runs() -> None:
    done = bench("pages.py", "300", "--rounds", "1", "--workers", "1")
    assert "record page" in done.stdout and "last/first" in done.stdout


def test_dspace_benchmark_runs() -> None:
    done = bench("dspace.py", "200", "--rounds", "1", "--workers", "1")
    assert "SAF load: 200 records" in done.stdout and "added 200" in done.stdout
    assert "CSV merge: 200 records" in done.stdout and "updated 200" in done.stdout
    assert "set=col_10722_10 / whole list" in done.stdout


def test_ab_load_benchmark_runs(tmp_path: Path) -> None:
    """A side named by its letter in --order loads the generated file into a new store it
    deletes after; the run's figures and the store's count come back. One run (the second
    side): each run is the same load and `stats`, and each costs the suite two processes."""
    bench("generate.py", "150", str(tmp_path / "records.jsonl"))
    server = str(Path(sys.executable).parent / "oaipmh-server")
    done = bench("ab_load.py", str(tmp_path / "records.jsonl"), str(tmp_path / "sets.json"),
                 "--side", "a=/nonexistent", "--side", f"b={server}", "--order", "B",
                 "--folder", str(tmp_path), "--log", str(tmp_path / "ab.jsonl"))  # fmt: skip
    runs = [json.loads(line) for line in (tmp_path / "ab.jsonl").read_text().splitlines()]
    assert [(r["side"], r["exit"]) for r in runs] == [("b", 0)]
    assert runs[0]["stats"] == "records: 150 (3 deleted)", done.stdout
    assert not list(tmp_path.glob("ab-*"))


def test_scale_benchmark_runs() -> None:
    """Three chunks into one growing store (the comparisons from the first and the second
    chunk both printed), then pages at each depth by rebuilt tokens, each checked to start
    with the record expected (the script asserts it)."""
    done = bench("scale.py", "450", "--chunk", "150", "--workers", "1", "--rounds", "1")
    chunks = [line for line in done.stdout.splitlines() if line.startswith("chunk ")]
    assert [line.split(" (")[0] for line in chunks[:3]] == ["chunk 1", "chunk 2", "chunk 3"]
    assert all("clamped 0" in line and "bytes a record" in line for line in chunks[:3])
    assert "chunk 3 / chunk 1, per record" in done.stdout
    assert "chunk 3 / chunk 2, per record" in done.stdout
    assert "store: 450 records, 441 live" in done.stdout
    assert "ListRecords deep/first:" in done.stdout and "ListIdentifiers deep/first:" in done.stdout


def test_sync_benchmark_runs() -> None:
    done = bench("sync.py", "300", "--rounds", "1")
    assert "withdrawn 3," in done.stdout and "sync / plain:" in done.stdout


def test_harvest_report_benchmark_runs() -> None:
    """The floor and the report read three ways (JSON, table, gzip-compressed), each a rate."""
    done = bench("harvest_report.py", "3000")
    lines = done.stdout.splitlines()
    assert sum(line.startswith("floor, json.loads of every line:") for line in lines) == 1
    harvests = [line for line in lines if line.startswith("harvests (")]
    assert [line.split(")")[0] for line in harvests] == [
        "harvests (json",
        "harvests (table",
        "harvests (json, gzip-compressed log",
    ]
    assert all("lines/s" in line for line in harvests)


def test_resourcesync_index_benchmark_runs(tmp_path: Path) -> None:
    database = tmp_path / "rs.sqlite3"
    for _ in range(2):  # loads, then reuses the store
        done = bench("rsindex.py", "300", str(database), "--rounds", "1", "--list-rounds", "1")
        assert "store: " in done.stdout and "change list index" in done.stdout
    assert "loaded" not in done.stdout


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
