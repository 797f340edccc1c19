"""A throw-away PostgreSQL cluster for the tests and the benchmarks: initdb in a temporary
folder, a loopback port, trust authentication, stopped and deleted at the end.

The tests import it as tests/postgres.py; `run.py --backend postgresql` as a script beside
it. The tests' cluster trades durability for speed (fsync off; initdb and pg_basebackup
--no-sync, which spares each start 1.5-3 s of waiting for the disk); a benchmark's is
`durable`, as a production server is configured, so a load's figures are not flattered.

Found through `pg_config --bindir` or /usr/lib/postgresql/*/bin. As root (CI), the cluster
runs as the `postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def find_bindir() -> Path | None:
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


class Cluster:
    """A cluster of its own (initdb), or, given `primary`, a hot standby streaming from it
    (pg_basebackup -R: a copy of the primary that replays its WAL as it comes)."""

    def __init__(self, bindir: Path, durable: bool = False, primary: Cluster | None = None) -> None:
        self.bindir = bindir
        self.durable = durable
        self.folder = Path(tempfile.mkdtemp(prefix="oaipmh-pg-"))
        self.data = self.folder / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.user: str | None = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.folder, self.user)
        nosync = [] if durable else ["--no-sync"]
        if primary is None:
            self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres",
                      "-E", "UTF8", "--locale=C.UTF-8", *nosync)  # fmt: skip
        else:
            self._run("pg_basebackup", "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
                      "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                      *nosync)  # fmt: skip
        self.start()

    def start(self) -> None:
        """Start PostgreSQL (again, after `halt`) on the cluster's port; return once it
        accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        options += " -c max_connections=400"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
                  "start", "-o", options)  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database, copied from `template` if given. The tests' cluster copies the
        template's files (STRATEGY FILE_COPY, PostgreSQL 15+) rather than write each of its
        pages to the WAL (WAL_LOG, 15's default): FILE_COPY's checkpoints cost little
        without fsync, and a copy of the sample store cost PostgreSQL 0.04 CPU-s instead
        of 0.055 (the suite makes a few hundred)."""
        suffix = f" TEMPLATE {template}" if template else ""
        if template and not self.durable and int(self._version()) >= 15:
            suffix += " STRATEGY FILE_COPY"
        self.execute(f"CREATE DATABASE {name}{suffix}")
        return self.url(name)

    def _version(self) -> str:
        """The cluster's major version, as its data folder says."""
        return (self.data / "PG_VERSION").read_text().strip()

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def halt(self) -> None:
        """Stop PostgreSQL, keeping the cluster: nothing listens on its port until `start`."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """`pg_ctl restart -m fast`, as an operator restarts PostgreSQL: every session is
        ended, and the server accepts connections again before this returns. (-l: the
        server's output goes to its log, not to pipes this process would wait on.)"""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-m", "fast",
                  "-w", "restart")  # fmt: skip

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
