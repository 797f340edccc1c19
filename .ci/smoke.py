"""README command 1 as a newcomer runs it, in a fresh venv holding only what the server
declares (no test extras): every module imports, the sample records load, `serve` answers
Identify and ListRecords. Run by .ci/run with that venv's python, before the suite, so a
dependency the runtime imports but does not declare fails CI.

Standard library only: the test extras are not installed here.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Modules that are not imported as modules: the command's entry point, and Alembic's
# env.py, which runs a migration when imported.
NOT_IMPORTED = {"oaipmh_server.__main__", "oaipmh_server.store.migrations.env"}


def import_everything() -> None:
    import oaipmh_server

    for module in pkgutil.walk_packages(oaipmh_server.__path__, "oaipmh_server."):
        if module.name not in NOT_IMPORTED:
            importlib.import_module(module.name)
    importlib.import_module("gunicorn.workers.ggevent")  # what serve's workers import


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, (url, response.status)
        return bytes(response.read())


def main() -> None:
    import oaipmh_server

    if os.environ.get("SMOKE_NOT_EDITABLE"):  # the installed copy, not the checkout's
        where = Path(oaipmh_server.__file__).resolve()
        assert where.is_relative_to(Path(sys.prefix).resolve()), where
    import_everything()
    command = Path(sys.executable).parent / "oaipmh-server"
    with tempfile.TemporaryDirectory() as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OAIPMH_")}
        subprocess.run(
            [command, "load", "--no-progress", REPO / "sample_records"], cwd=work, env=env,
            check=True,
        )  # fmt: skip
        port = free_port()
        server = subprocess.Popen([command, "serve", "--port", str(port)], cwd=work, env=env)
        try:
            base = f"http://127.0.0.1:{port}/oai"
            deadline = time.monotonic() + 60
            while True:  # until the server listens (or has died, or a minute has passed)
                if server.poll() is not None:
                    sys.exit(f"smoke: serve exited with status {server.returncode}")
                try:
                    identify = get(f"{base}?verb=Identify")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert b"<Identify>" in identify, identify[:500]
            records = get(f"{base}?verb=ListRecords&metadataPrefix=oai_dc")
            assert b"<ListRecords>" in records and b"10722/212116" in records, records[:500]
        finally:
            server.terminate()
            server.wait(timeout=60)
    how = "not editable" if os.environ.get("SMOKE_NOT_EDITABLE") else "editable"
    print(f"smoke: a fresh venv ({how}): loaded the samples, served Identify and ListRecords")


if __name__ == "__main__":
    main()
