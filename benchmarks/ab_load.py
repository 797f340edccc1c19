"""Time one records file loaded by two (or more) installs of the server in turn: an A/B of the load.

Each run is `oaipmh-server load --no-progress SETS RECORDS` by that side's own executable
(its own venv: another commit's code), into a new SQLite store or a new database of one
throw-away PostgreSQL cluster (`postgres.py`, durable settings), deleted after the run.
Per run, whole-process figures: wall seconds, the CPU of the load and of its workers
(`os.wait4` on the load: its own and its reaped children's) and of the loading process
alone (read from /proc while it runs), the peak RSS of the largest
of those processes, records/s, the machine's load average before and after, on PostgreSQL
the cluster's CPU (its postgres processes', and the backends its postmaster reaped), and
the store's record count by that side's `oaipmh-server stats`. One JSON line a run, printed
and appended to `--log`.

    python3 benchmarks/ab_load.py RECORDS.jsonl SETS.json \\
        --side main=/venvs/main/bin/oaipmh-server --side old=/venvs/old/bin/oaipmh-server \\
        [--order ABAB] [--backend sqlite|postgresql] [--folder DIR] [--log FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postgres import Cluster, find_bindir


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def postgres_cpu(data: Path) -> float:
    """Seconds of CPU of the cluster's postgres processes alive (its postmaster, the one
    `data`/postmaster.pid names, and that one's children), plus what the postmaster reaped
    (the backends that ended): other clusters on the machine are not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = (data / "postmaster.pid").read_text().split()[0]
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if entry.name != postmaster and fields[1] != postmaster:
            continue
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        total += utime + stime + (cutime + cstime if entry.name == postmaster else 0)
    return total / tick


def own_cpu(pid: int) -> float | None:
    """The CPU seconds a live process has used itself (its children not counted)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    utime, stime = (int(f) for f in stat[stat.rindex(")") + 2 :].split()[11:13])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def run(
    executable: str, args: list[str], env: dict[str, str]
) -> tuple[float, os.struct_time, int, float]:
    """Wall seconds, the load's and its workers' usage, exit code, and the loading process's
    own CPU (read every half second while it runs: up to half a second short)."""
    started = time.perf_counter()
    process = subprocess.Popen([executable, *args], env=env, stdin=subprocess.DEVNULL)
    own = 0.0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        own = own_cpu(process.pid) or own
        time.sleep(0.5)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage, process.returncode, own  # type: ignore[return-value]


def count(executable: str, env: dict[str, str]) -> str:
    out = subprocess.run([executable, "stats"], env=env, capture_output=True, text=True)
    found = re.findall(r"^.*records.*$", out.stdout, re.MULTILINE)
    return " | ".join(line.strip() for line in found[:4]) or out.stdout[-300:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path)
    parser.add_argument("sets", type=Path)
    parser.add_argument(
        "--side", action="append", required=True, help="NAME=EXECUTABLE, one a side (A, B…)"
    )
    parser.add_argument("--order", default="ABAB")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--folder", type=Path, default=Path("."))
    parser.add_argument("--log", type=Path, default=Path("ab_load.jsonl"))
    arguments = parser.parse_args()
    sides = [tuple(side.split("=", 1)) for side in arguments.side]
    with arguments.records.open("rb") as records:
        lines = sum(1 for _ in records)
    cluster = None
    if arguments.backend == "postgresql":
        bindir = find_bindir()
        if bindir is None:
            sys.exit("PostgreSQL is not installed (initdb not found)")
        cluster = Cluster(bindir, durable=True)
    try:
        for n, letter in enumerate(arguments.order):
            name, executable = sides[ord(letter) - ord("A")]
            env = dict(os.environ)
            store = arguments.folder / f"ab-{n}.db"
            if cluster is not None:
                env["OAIPMH_DATABASE_URL"] = cluster.create_database(f"ab{n}")
            else:
                env["OAIPMH_DATABASE_URL"] = f"sqlite:///{store.resolve()}"
            before = loadavg()
            pg_before = postgres_cpu(cluster.data) if cluster is not None else 0.0
            wall, usage, code, own = run(executable, ["load", "--no-progress", str(arguments.sets),
                                                 str(arguments.records)], env)  # fmt: skip
            after = loadavg()
            pg_after = postgres_cpu(cluster.data) if cluster is not None else 0.0
            figures = {
                "run": n, "side": name, "backend": arguments.backend, "exit": code,
                "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
                "user_s": round(usage.ru_utime, 1), "sys_s": round(usage.ru_stime, 1),
                "loading_process_cpu_s": round(own, 1),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                "records_per_s": round(lines / wall), "loadavg_before": before,
                "loadavg_after": after, "stats": count(executable, env),
                "clock": time.strftime("%H:%M:%S", time.gmtime()),
            }  # fmt: skip
            if cluster is not None:
                figures["postgres_cpu_s"] = round(pg_after - pg_before, 1)
                cluster.drop_database(f"ab{n}")
            else:
                figures["store_bytes"] = store.stat().st_size if store.exists() else 0
                for suffix in ("", "-wal", "-shm", "-writer"):
                    Path(f"{store}{suffix}").unlink(missing_ok=True)
            print(json.dumps(figures), flush=True)
            with arguments.log.open("a") as log:
                log.write(json.dumps(figures) + "\n")
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
