"""What clients that never read can make a worker hold: N connections ask for one large
record page (about 4 MB of HTML) and read nothing; each worker's resident memory is
sampled while they wait, with serving.SendBudget as shipped and with it out of the way
(`--unbounded`, the server before issue 24). Figures are printed, never asserted.

    python3 benchmarks/slow_readers.py [--connections 300] [--workers 2] [--unbounded]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VALUE = 990_000  # characters of each large value, under [limits] max_value_length
PATH = "/records/bench/1"


def record() -> dict[str, object]:
    words = ("lorem ipsum dolor sit amet " * (VALUE // 27 + 1))[:VALUE]
    return {
        "id": "bench/1",
        "metadata": [
            {"field": "dc.title", "value": "A record with a large page"},
            {"field": "dc.date.accessioned", "value": "2020-01-01T00:00:00Z"},
            *({"field": "dc.description.abstract", "value": words} for _ in range(2)),
        ],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(env: dict[str, str], port: int, workers: int, unbounded: bool) -> subprocess.Popen[str]:
    code = (
        "import sys; from oaipmh_server import cli\nfrom oaipmh_server.web import serving\n"
        + ("serving.SEND_BUDGET = 1 << 60\n" if unbounded else "")
        + "sys.argv = ['oaipmh-server', 'serve', '--host', '127.0.0.1', '--port', "
        + f"'{port}', '--workers', '{workers}']\ncli.main()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    ready, _, _ = select.select([process.stderr], [], [], 60)
    line = process.stderr.readline() if ready else ""
    if "listening" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line}")
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to sample")
    parser.add_argument("--unbounded", action="store_true", help="without SendBudget")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="oaipmh-slow-readers-"))
    env = {**os.environ, "OAIPMH_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}"}
    records = folder / "records.jsonl"
    records.write_text(json.dumps(record()) + "\n", "utf-8")
    subprocess.run(
        [sys.executable, "-m", "oaipmh_server", "load", str(records)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    server = serve(env, port, args.workers, args.unbounded)
    sockets: list[socket.socket] = []
    try:
        while len(workers := children(server.pid)) < args.workers:
            time.sleep(0.1)  # gunicorn says it listens before its workers are forked
        with socket.create_connection(("127.0.0.1", port)) as probe:
            probe.sendall(f"GET {PATH} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            page = b""
            while chunk := probe.recv(1 << 20):
                page += chunk
        print(f"page: {len(page) / 1e6:.1f} MB; {args.connections} connections that do not read")
        before = {pid: rss_mb(pid) for pid in workers}
        request = f"GET {PATH} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        for _ in range(args.connections):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(("127.0.0.1", port))
            client.sendall(request)
            sockets.append(client)
        peak = dict(before)
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            for pid in workers:
                peak[pid] = max(peak[pid], rss_mb(pid))
            time.sleep(0.2)
        mode = "unbounded (before)" if args.unbounded else "SendBudget (after)"
        for pid in workers:
            print(f"{mode}: worker {pid}: {before[pid]:.0f} MB idle, {peak[pid]:.0f} MB at peak")
        answered = {"200": 0, "503": 0, "none": 0}
        for client in sockets:
            client.settimeout(0.5)
            try:
                head = client.recv(16)
            except OSError:
                head = b""
            status = head[9:12].decode() if head.startswith(b"HTTP/1.1 ") else "none"
            answered[status if status in answered else "none"] += 1
        print(f"first bytes: {answered}")
    finally:
        for client in sockets:
            client.close()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
