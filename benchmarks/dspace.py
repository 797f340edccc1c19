"""Load N records as JSON Lines, as a DSpace SAF export and as a default metadata CSV merged
over them; then harvest sets with DSpace's flat specs.

Prints, each load end to end (`oaipmh-server load --no-progress`, a fresh process):
- the JSON load of N generated records (generate.py, with its sets file) into one store;
- the SAF load of a generated DSpace export of the same N items (dspace_export.py: a
  structure export, item folders with their bitstreams and `contents`) into another;
- the merge of the default `metadata-export` CSV of those items (no dc.date.accessioned:
  each row changes its columns of the stored record; two columns changed in every row)
  over the SAF store, and its rate over the JSON load's (issue 14's target: at least 0.5);
then serves the SAF store (`oaipmh-server serve`) and harvests ListRecords whole, one
collection (`set=col_…`) and one community (`set=com_…`, its collections' records through
their ancestor memberships), in turn for `--rounds` rounds, and prints the medians and
each set's rate over the whole list's. Figures are printed, never asserted.

    python3 benchmarks/dspace.py 100000 [--workers 2] [--rounds 2] [--keep]
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

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dspace_export import write_csv, write_saf  # noqa: E402
from generate import records, sets_file  # noqa: E402
from harvest import harvest  # noqa: E402
from run import serve, stop  # noqa: E402

COLLECTION, COMMUNITY = "col_10722_10", "com_10722_1"


def load(paths: list[Path], env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds, peak RSS (MB, the largest of the load's processes) and the summary line."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "oaipmh_server", "load", "--no-progress", *map(str, paths)],
            env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)  # this load's own peak, its workers'
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.exit(f"the load of {paths[-1].name} failed:\n{err.read().decode()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    arguments = parser.parse_args()
    count = arguments.count
    folder = Path(tempfile.mkdtemp(prefix="oaipmh-dspace-bench-"))
    base = {**os.environ, "OAIPMH_PAGE_SIZE": "100"}
    json_env = {**base, "OAIPMH_DATABASE_URL": f"sqlite:///{folder}/json.sqlite3"}
    env = {**base, "OAIPMH_DATABASE_URL": f"sqlite:///{folder}/dspace.sqlite3"}
    server = None
    try:
        (folder / "json").mkdir()
        sets_file(folder / "json" / "sets.json")
        with (folder / "json" / "records.jsonl").open("w", encoding="utf-8") as out:
            for record in records(count):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        started = time.perf_counter()
        write_saf(count, folder / "saf")
        write_csv(count, folder / "metadata-export.csv")
        print(f"generated the DSpace export of {count} items in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip

        figures: dict[str, float] = {}
        steps = (
            ("JSON load", [folder / "json" / "sets.json", folder / "json" / "records.jsonl"],
             json_env),
            ("SAF load", [folder / "saf"], env),
            ("CSV merge", [folder / "metadata-export.csv"], env),
        )  # fmt: skip
        for label, paths, step_env in steps:
            seconds, peak, line = load(paths, step_env)
            figures[label] = count / seconds
            print(f"{label}: {count} records in {seconds:.1f} s = {count / seconds:.0f} "
                  f"records/s, peak RSS {peak:.0f} MB ({line})")  # fmt: skip
        print(f"CSV merge / JSON load: {figures['CSV merge'] / figures['JSON load']:.2f}")
        print(f"SAF load / JSON load: {figures['SAF load'] / figures['JSON load']:.2f}")

        server, port = serve(env, arguments.workers)
        url = f"http://127.0.0.1:{port}/oai/request"
        for _ in range(2 * arguments.workers):  # each worker's first request opens the store
            requests.get(url, params={"verb": "ListRecords", "metadataPrefix": "oai_dc"},
                         timeout=120)  # fmt: skip
        rates: dict[str, list[float]] = {"whole list": [], COLLECTION: [], COMMUNITY: []}
        for _ in range(arguments.rounds):  # in turn: the machine's drift cancels out
            for label in rates:
                result = harvest(url, "ListRecords", None if label == "whole list" else label,
                                 False)  # fmt: skip
                rates[label].append(float(result["records_per_s"] or 0))
                print(f"ListRecords {label}: {json.dumps(result)}")
        whole = statistics.median(rates["whole list"])
        for label in (COLLECTION, COMMUNITY):
            rate = statistics.median(rates[label])
            print(f"set={label} / whole list: {rate / whole:.2f} "
                  f"({rate:.0f} against {whole:.0f} records/s, medians)")  # fmt: skip
    finally:
        if server is not None:
            stop(server)
        if arguments.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
