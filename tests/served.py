"""`oaipmh-server serve` in a process of its own, its stderr read line by line as it comes,
for tests that wait on what the server says (a reload done, an error logged) and on where
it listens (a port or a Unix socket). Ready when gunicorn says so to $NOTIFY_SOCKET, as
conftest.LiveServer is."""

from __future__ import annotations

import http.client
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

START_SECONDS = 60

# `oaipmh-server serve` with its connection timeouts (serving.REQUEST_HEAD_SECONDS, the
# keep-alive, and IDLE_SECONDS) set to argv's first argument and its stop's grace for idle
# connections (serving.STOP_GRACE_SECONDS) to the second, for a test that must tell a
# connection the server closed from one whose timeout ran out.
WITH_TIMEOUTS = (
    "import sys; from oaipmh_server.web import serving; "
    "serving.REQUEST_HEAD_SECONDS = serving.IDLE_SECONDS = int(sys.argv.pop(1)); "
    "serving.STOP_GRACE_SECONDS = float(sys.argv.pop(1) or serving.STOP_GRACE_SECONDS); "
    "from oaipmh_server.cli import main; main(prog_name='oaipmh-server')"
)


class Served:
    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        timeouts: int | None = None,
        grace: float | None = None,
    ) -> None:
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = f"oaipmh-served-{os.getpid()}-{id(self)}"
        notify.bind("\0" + address)  # abstract: nothing to clean up
        environment = {**os.environ, **env, "NOTIFY_SOCKET": "@" + address}
        command = ["-m", "oaipmh_server"]
        if timeouts is not None:
            command = ["-c", WITH_TIMEOUTS, str(timeouts), str(grace or "")]
        self.process = subprocess.Popen(
            [sys.executable, *command, "serve", *args],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # a process group of its own, as in a terminal
        )  # fmt: skip
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        exited = os.pidfd_open(self.process.pid)
        try:
            ready, _, _ = select.select([notify, exited], [], [], START_SECONDS)
            if notify in ready and b"READY=1" in notify.recv(4096).split(b"\n"):
                return
        finally:
            os.close(exited)
            notify.close()
        self.stop()
        raise RuntimeError("serve did not start:\n" + "\n".join(self.lines))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line.rstrip("\n"))
        self._new.put(None)  # the server ended

    def expect(self, pattern: str, within: float = 60) -> str:
        """The next line of stderr matching `pattern` (a regular expression), waiting for
        it as it is written; AssertionError if the server ends or `within` passes first."""
        deadline = time.monotonic() + within
        while True:
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                lines = "\n".join(self.lines)
                raise AssertionError(f"no line matching {pattern!r}:\n{lines}") from None
            if line is None:
                raise AssertionError(f"server ended before {pattern!r}:\n" + "\n".join(self.lines))
            if re.search(pattern, line):
                return line

    def hang_up(self) -> None:
        """What `systemctl reload` sends to the master."""
        self.process.send_signal(signal.SIGHUP)

    def interrupt(self) -> None:
        """Ctrl-C in its terminal: SIGINT to the master and every worker at once."""
        os.killpg(self.process.pid, signal.SIGINT)

    def stop(self) -> list[str]:
        """SIGTERM, as systemd stops it; every line it wrote."""
        end(self.process)
        self._reader.join(timeout=30)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.lines


def end(process: subprocess.Popen[Any], how: int = signal.SIGTERM, within: float = 30) -> None:
    """Stop a process the tests started and reap it: `how` (SIGTERM, as systemd stops a
    service; SIGQUIT, gunicorn's quick shutdown) unless it has ended already, then SIGKILL
    if it has not ended within `within` seconds, so no test leaves a process behind."""
    if process.poll() is None:
        process.send_signal(how)
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (what nginx's `proxy_pass http://unix:PATH:` does)."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout if isinstance(self.timeout, float | int) else 30)
        self.sock.connect(self.socket_path)
