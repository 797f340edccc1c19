"""`load --sync` against the same load without it: a full export in which 1 % of the items
are gone (withdrawn in DSpace), reloaded over the store of the whole export.

Loads N generated records (generate.py, with its sets file) into a store; writes the
export again without every hundredth record; then, for `--rounds` rounds, in turn (the
machine's drift cancels out), reloads it into a fresh copy of that store with and without
`--sync` (`oaipmh-server load --no-progress`, a fresh process each). Prints each load's
time and summary, the medians and their ratio (issue 22's target: --sync at most 1.1 times
the plain load), and of their CPU time (the load's process and its workers: on a shared
machine wall times vary far more than the work done). Figures are printed, never asserted.

    python3 benchmarks/sync.py 100000 [--rounds 2] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import records, sets_file  # noqa: E402

GONE_EVERY = 100  # one item in a hundred is no longer in the export


def load(arguments: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the load and its worker processes) and the summary line."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "oaipmh_server", "load", "--no-progress", *arguments],
            env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.exit(f"the load failed:\n{err.read().decode()[-2000:]}")
        return seconds, usage.ru_utime + usage.ru_stime, out.read().decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    arguments = parser.parse_args()
    count = arguments.count
    folder = Path(tempfile.mkdtemp(prefix="oaipmh-sync-bench-"))
    store = folder / "store.sqlite3"
    try:
        for name in ("whole", "nightly"):
            (folder / name).mkdir()
            sets_file(folder / name / "sets.json")
        gone = 0
        with (
            (folder / "whole" / "records.jsonl").open("w", encoding="utf-8") as whole,
            (folder / "nightly" / "records.jsonl").open("w", encoding="utf-8") as nightly,
        ):
            for i, record in enumerate(records(count)):
                line = json.dumps(record, ensure_ascii=False) + "\n"
                whole.write(line)
                if i % GONE_EVERY == GONE_EVERY - 1 and not record.get("deleted"):
                    gone += 1
                else:
                    nightly.write(line)
        env = {**os.environ, "OAIPMH_DATABASE_URL": f"sqlite:///{store}"}
        seconds, _, line = load([str(folder / "whole")], env)
        print(f"first load: {count} records in {seconds:.1f} s ({line}); {gone} then gone")
        times: dict[str, list[float]] = {"plain": [], "sync": []}
        cpu: dict[str, list[float]] = {"plain": [], "sync": []}
        for _ in range(arguments.rounds):
            for label in times:
                copy = folder / f"{label}.sqlite3"
                shutil.copy(store, copy)
                options = ["--sync", "--sync-allow-deletes", str(gone)] if label == "sync" else []
                copy_env = {**env, "OAIPMH_DATABASE_URL": f"sqlite:///{copy}"}
                seconds, used, line = load([*options, str(folder / "nightly")], copy_env)
                times[label].append(seconds)
                cpu[label].append(used)
                print(f"{label} reload: {seconds:.1f} s, CPU {used:.1f} s ({line})")
                copy.unlink()
        plain, synced = statistics.median(times["plain"]), statistics.median(times["sync"])
        print(f"sync / plain: {synced / plain:.2f} ({synced:.1f} s against {plain:.1f} s, "
              "medians)")  # fmt: skip
        plain, synced = statistics.median(cpu["plain"]), statistics.median(cpu["sync"])
        print(f"CPU sync / plain: {synced / plain:.2f} ({synced:.1f} s against {plain:.1f} s, "
              "medians)")  # fmt: skip
    finally:
        if arguments.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"({time.perf_counter() - started:.0f} s in all)")
