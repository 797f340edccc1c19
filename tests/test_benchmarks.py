"""The benchmark scripts still run end to end (figures unchecked), each at a small size that
still takes every path it has at full size: more records than a page (100), so lists
go through resumption tokens, and a set of more than a set page (50) for pages.py; servers
with one gunicorn worker (a worker more shows nothing more here, and costs a start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

# A slow tier (-m "not benchmarks" leaves it out of a quick run; .ci/run runs it).
pytestmark = pytest.mark.benchmarks


def bench(script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """benchmarks/`script` run to its end, which it must reach with status 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_benchmark_runs() -> None:
    done = bench("run.py", "150", "--workers", "1")
    assert "records/s" in done.stdout and "ListIdentifiers" in done.stdout
    assert "ours / ceiling" in done.stdout and "ours / peer" in done.stdout


def test_poll_during_load_benchmark_runs() -> None:
    done = bench("poll_during_load.py", "150")
    assert '"changes_lost": 0' in done.stdout


def test_pages_benchmark_runs() -> None:
    done = bench("pages.py", "300", "--rounds", "5", "--workers", "1")
    assert "record page" in done.stdout and "last/first" in done.stdout


def test_dspace_benchmark_runs() -> None:
    done = bench("dspace.py", "200", "--rounds", "1", "--workers", "1")
    assert "SAF load: 200 records" in done.stdout and "added 200" in done.stdout
    assert "CSV merge: 200 records" in done.stdout and "updated 200" in done.stdout
    assert "set=col_10722_10 / whole list" in done.stdout


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
        done = bench("rsindex.py", "300", str(database), "--rounds", "2", "--list-rounds", "1")
        assert "store: " in done.stdout and "change list index" in done.stdout
    assert "loaded" not in done.stdout
