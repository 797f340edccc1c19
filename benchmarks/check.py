"""`oaipmh-server check` over N generated seed-shaped records: records checked per second
and peak memory, for the store profile check (all rules, then OpenAIRE's).

    python3 benchmarks/check.py 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generate import records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="oaipmh-check-"))
    env = {**os.environ, "OAIPMH_DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3"}
    try:
        source = folder / "records.jsonl"
        with source.open("w", encoding="utf-8") as out:
            for record in records(arguments.count):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        loaded = subprocess.run(
            [sys.executable, "-m", "oaipmh_server", "load", str(source)],
            env=env, capture_output=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if loaded.returncode != 0:
            sys.exit(f"the load failed:\n{loaded.stderr.decode()[-2000:]}")
        for profile in ([], ["--profile", "openaire"]):
            started = time.perf_counter()
            with (folder / "report.txt").open("wb") as report:
                process = subprocess.Popen(
                    [sys.executable, "-m", "oaipmh_server", "check", *profile],
                    env=env, stdout=report, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                )  # fmt: skip
                _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            with (folder / "report.txt").open(encoding="utf-8") as report:
                head = report.readline().strip()
            live = int(head.split()[0])
            print(f"check {' '.join(profile) or '(all rules)'}: {live} records in {seconds:.1f} s"
                  f" = {live / seconds:.0f} records/s, exit {os.waitstatus_to_exitcode(status)},"
                  f" peak RSS {usage.ru_maxrss / 1024:.0f} MB")  # fmt: skip
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
