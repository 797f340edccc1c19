"""The benchmark scripts still run end to end (a few hundred records; figures unchecked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_harvest_report_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "harvest_report.py"), "3000"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("lines/s") == 3


def test_resourcesync_index_benchmark_runs(tmp_path: Path) -> None:
    database = tmp_path / "rs.sqlite3"
    command = [sys.executable, str(ROOT / "benchmarks" / "rsindex.py"), "300", str(database),
               "--rounds", "2", "--list-rounds", "1"]  # fmt: skip
    for _ in range(2):  # loads, then reuses the store
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "store: " in done.stdout and "change list index" in done.stdout
    assert "loaded" not in done.stdout
