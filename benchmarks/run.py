"""Load N generated records, serve them as in production and harvest everything.

Prints ingest records/s (progress bar on, as an operator runs it) and peak RSS, then per
harvest (ListRecords light and parsing client, ListIdentifiers, one set, ListRecords with
gzip) records/s, page latencies and the deep/first page ratio, and the server workers'
peak RSS; then the ceiling and the reference server, harvested the same way, and the
ratios (ours and the other server harvested in turn, so drift of the machine's speed
cancels out): in records/s, as a harvester sees them, and in the servers' own CPU a
request (gunicorn's master and workers, the client's share of the machine left out; the
database's processes too, on PostgreSQL). Figures are printed, never asserted.

    python3 benchmarks/run.py 100000 [--workers 2] [--keep] [--hierarchical]
                                     [--backend sqlite|postgresql] [--no-reference]
                                     [--rounds 3]

`--backend postgresql` runs it all on a throw-away PostgreSQL cluster (postgres.py: initdb
in the temporary folder, durable settings, removed at the end, as the tests' is): the same
load, harvests, ceiling and reference, each reading that database.

`--no-reference` leaves the reference out: at 1,000,000 records its OFFSET pages take
45 minutes or more on PostgreSQL, while ours against the ceiling takes a few.

`--rounds`: how many times ours and the ceiling are harvested in turn for their ratios
(3, their medians compared; the reference, whose OFFSET pages are slow, once).

Everything runs on 127.0.0.1; every process started is stopped, also on error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import records, sets_file  # noqa: E402
from harvest import harvest  # noqa: E402
from postgres import Cluster, find_bindir  # noqa: E402

SET = "com_10722_1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def serve(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], int]:
    """`oaipmh-server serve` with `workers` on a free port of 127.0.0.1, once it accepts
    connections: the process and its port (stopped again if it does not start)."""
    written = math.floor(time.time())  # the second by which every load before this ended
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "oaipmh_server", "serve", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(port, server)
    except BaseException:
        stop(server)
        raise
    # A list ends a second before its responseDate, so that no change committed within
    # that second is lost: what the last load dated is listed once the clock is past the
    # second after it. A server that started sooner (0.7 CPU-s now) was asked before, and
    # the smoke runs of dspace.py and scale.py harvested a list without the last load's
    # records, once. Waiting for the clock is no race: the moment is known.
    time.sleep(max(0.0, written + 2 - time.time()))
    return server, port


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server at once. SIGINT is gunicorn's quick shutdown; SIGTERM, its graceful
    one, lets a gevent worker wait up to its graceful timeout (30 s) for the harvesters'
    idle keep-alive connections, which a benchmark has no reason to wait for."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_cpu_seconds(master: int) -> float:
    """The CPU time a gunicorn server has used so far: its master's and its workers' (the
    master's children), every thread of each, in nanoseconds as the scheduler counts it
    (/proc/PID/task/TID/schedstat; /proc/PID/stat's ticks of 10 ms are too coarse for the
    few pages of a small run)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    used = 0
    for pid in [str(master), *children]:
        for task in Path(f"/proc/{pid}/task").iterdir():
            used += int((task / "schedstat").read_text().split()[0])
    return used / 1e9


def worker_peak_rss_mb(master: int) -> list[float]:
    """VmHWM of each gunicorn worker (the master's children)."""
    peaks = []
    for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(round(int(line.split()[1]) / 1024, 1))
    return peaks


def database_url(backend: str, folder: Path) -> tuple[str, Cluster | None]:
    """The store's URL on `backend`, and the PostgreSQL cluster started for it (the
    caller stops it)."""
    if backend == "sqlite":
        return f"sqlite:///{folder}/bench.sqlite3", None
    bindir = find_bindir()
    if bindir is None:
        sys.exit("--backend postgresql: PostgreSQL is not installed (initdb not found)")
    cluster = Cluster(bindir, durable=True)
    try:
        return cluster.create_database("bench"), cluster
    except BaseException:
        cluster.stop()
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--hierarchical", action="store_true",
                        help="hierarchical set specs (com_10722_1:col_10722_10)")  # fmt: skip
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the store's database (postgresql: a throw-away cluster)")  # fmt: skip
    parser.add_argument("--no-reference", action="store_true",
                        help="harvest the ceiling only, not the reference server")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3,
                        help="ours and the ceiling harvested in turn, this many times")  # fmt: skip
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="oaipmh-bench-"))
    server = None
    others: list[subprocess.Popen[bytes]] = []
    cluster = None
    try:
        url, cluster = database_url(arguments.backend, folder)
        env = {**os.environ, "OAIPMH_DATABASE_URL": url, "OAIPMH_PAGE_SIZE": "100"}
        print(f"backend: {arguments.backend}")
        source = folder / "records.jsonl"
        sources = [str(source)]
        if not arguments.hierarchical:
            sets_file(folder / "sets.json")
            sources.insert(0, str(folder / "sets.json"))
        with source.open("w", encoding="utf-8") as out:
            for record in records(arguments.count, arguments.hierarchical):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        started = time.perf_counter()
        loaded = subprocess.run(
            [sys.executable, "-m", "oaipmh_server", "load", "--progress", *sources],
            env=env, capture_output=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        if loaded.returncode != 0:
            sys.exit(f"the load failed:\n{loaded.stderr.decode()[-2000:]}")
        # The largest of the load's processes (the loading one or a worker).
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"ingest: {arguments.count} records in {seconds:.1f} s = "
              f"{arguments.count / seconds:.0f} records/s, peak RSS {peak:.0f} MB "
              f"({loaded.stdout.decode().strip()})")  # fmt: skip

        server, port = serve(env, arguments.workers)
        url = f"http://127.0.0.1:{port}/oai"
        figures = {}
        for label, verb, set_spec, parse, gzip in (
            ("ListRecords (light client)", "ListRecords", None, False, False),
            ("ListRecords (lxml client)", "ListRecords", None, True, False),
            ("ListIdentifiers", "ListIdentifiers", None, False, False),
            (f"ListRecords set={SET}", "ListRecords", SET, False, False),
            ("ListRecords gzip (light client)", "ListRecords", None, False, True),
        ):
            figures[label] = harvest(url, verb, set_spec, parse, gzip)
            print(f"{label}: {json.dumps(figures[label])}")
        print(f"server workers' peak RSS (MB): {worker_peak_rss_mb(server.pid)}")
        ours = figures["ListRecords (light client)"]["records_per_s"]
        zipped = figures["ListRecords gzip (light client)"]["records_per_s"]
        print(f"gzip / identity: {zipped / ours:.2f}")

        # The machine's speed drifts over minutes: each comparison harvests ours and the
        # other server in turn, both running, and compares medians of the same rounds.
        compared = [("ceiling", arguments.rounds)]
        if not arguments.no_reference:
            compared.append(("peer", 1))
        for name, rounds in compared:
            port = free_port()
            other = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--workers", str(arguments.workers),
                 "--bind", f"127.0.0.1:{port}", "--chdir", str(HERE), f"{name}:app"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            others.append(other)
            wait_for(port, other)
            mine, theirs = [], []
            my_cpu, their_cpu = [], []  # ms of the server's CPU a request
            for _ in range(rounds):
                before = server_cpu_seconds(server.pid)
                figures = harvest(url, "ListRecords", None, False)
                my_cpu.append(
                    (server_cpu_seconds(server.pid) - before) * 1000 / figures["requests"]
                )
                mine.append(figures["records_per_s"])
                # The reference's deep pages are OFFSET pages: not asked for again.
                before = server_cpu_seconds(other.pid)
                figures = harvest(
                    f"http://127.0.0.1:{port}/oai", "ListRecords", None, False,
                    paired=name != "peer",
                )  # fmt: skip
                their_cpu.append(
                    (server_cpu_seconds(other.pid) - before) * 1000 / figures["requests"]
                )
                theirs.append(figures["records_per_s"])
                print(f"{name} ListRecords (light client): {json.dumps(figures)}")
            ratio = statistics.median(mine) / statistics.median(theirs)
            print(f"ours / {name}: {ratio:.2f} (ours {mine}, {name} {theirs} records/s)")
            cpu = statistics.median(my_cpu), statistics.median(their_cpu)
            print(f"{name} / ours, server CPU a request: {cpu[1] / cpu[0]:.2f} (ours "
                  f"{cpu[0]:.3f} ms, {name} {cpu[1]:.3f} ms, medians of {rounds})")  # fmt: skip
            stop(other)
    finally:
        for process in [server, *others]:
            if process is not None:
                stop(process)
        if cluster is not None:
            cluster.stop()
        if arguments.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
