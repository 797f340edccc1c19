"""gunicorn as `oaipmh-server serve` runs it: gevent workers with bounded request reading.

A sync worker is held by one connection from its first byte to its last, so two clients
sending their request headers a byte a second took the two default workers for gunicorn's
whole 120 s timeout, again and again. In a gevent worker a connection waiting for bytes
costs a greenlet and a file descriptor, not a worker: thousands of slow or idle clients
wait side by side while every other request is answered. SQLite calls are short and run
as they are; psycopg 3 waits for PostgreSQL cooperatively (`cooperative_psycopg`).

What a client may take is bounded: the request head (request line and headers) must
arrive within REQUEST_HEAD_SECONDS (gunicorn's gevent worker reads each head under a
`keepalive`-long timeout), and once it has, a connection that neither sends nor reads a
byte for IDLE_SECONDS is closed. The request line and headers are limited where the
manual (docs/serving.md) says, so a query string the app may answer is never refused
by gunicorn first.

A graceful stop (SIGTERM: systemd's stop, the old workers of a reload) stops accepting,
closes at once the kept-alive connections waiting between requests, answers the requests
in flight (closing each connection after its answer) and exits as soon as none is left.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any

from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import systemd
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

# Seconds a client has to send a whole request head; also how long an idle kept-alive
# connection is kept. An honest client sends its head in one packet.
REQUEST_HEAD_SECONDS = 5
# Seconds a stopping worker still waits for the next request on a kept-alive connection
# before it closes the connection (see Worker.run).
STOP_GRACE_SECONDS = 1.0
# Seconds without a byte either way, once the head is read (a body sent or a page read).
IDLE_SECONDS = 30
# Connections one worker serves at once; more wait in the listen queue.
CONNECTIONS_PER_WORKER = 1000
# gunicorn's largest request line: room for the app's own 414 at MAX_QUERY_STRING.
LIMIT_REQUEST_LINE = 8190
LIMIT_REQUEST_FIELDS = 100
LIMIT_REQUEST_FIELD_SIZE = 8190
# Bytes of answers one worker may hold while its clients read them (a 4 MB record page
# held for a client that never reads, 300 times over, grew a worker to 700 MB for the
# IDLE_SECONDS it waited). Answers up to SMALL_ANSWER bytes always go: at most
# CONNECTIONS_PER_WORKER of them, 64 MB; a larger one past the budget is a 503.
SEND_BUDGET = 64 * 1024 * 1024
SMALL_ANSWER = 64 * 1024
# The signals that stop a worker (gunicorn: TERM graceful, INT and QUIT at once).
_STOPPING = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


class Worker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker, with a per-connection idle timeout on its sockets and a
    graceful stop that closes idle connections at once and ends with the last answer."""

    def init_process(self) -> None:
        # Until init_signals, a new worker still has the master's handlers, which only
        # queue a signal for the master's loop: a SIGTERM sent while the worker starts
        # (a stop or reload just after a start; gevent's patching alone takes a while)
        # would be lost and the worker would serve on until the master gave up on it
        # (graceful_timeout, 30 s). Held back until the worker's own handlers are set.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        from .metrics import keep_shared_folder  # the environment `serve` set is read now

        keep_shared_folder()
        super().init_process()

    def init_signals(self) -> None:
        self.between_requests = set()
        self.stopping = Event()  # set by SIGTERM, which may come before `run`
        super().init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)

    def handle_quit(self, sig: Any, frame: Any) -> None:
        """Quit once. On Ctrl-C a worker gets SIGINT from the terminal and SIGQUIT from the
        master, and gunicorn's gevent worker quits in a new greenlet for each: the second
        one ran while the process was exiting and printed its SystemExit as a traceback."""
        if not self.quitting:
            self.quitting = True
            super().handle_quit(sig, frame)

    quitting = False

    def patch(self) -> None:
        with _entry_points_read_once():
            super().patch()
        cooperative_psycopg()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        client.settimeout(IDLE_SECONDS)  # GeventWorker would make it block for ever
        try:
            AsyncWorker.handle(self, listener, client, addr)
        finally:
            self.between_requests.discard(client)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        """One request, its connection counted as busy meanwhile (see `run`); once a
        stopping worker's grace is over, the connection ends with the answer instead of
        waiting for another request. (Within the grace it waits like the others: an answer
        begun before the stop said keep-alive, and its client may be sending its next
        request already.)"""
        self.between_requests.discard(sock)
        try:
            kept = super().handle_request(listener_name, req, sock, addr)
        finally:
            self.between_requests.add(sock)
        if self.grace_over:
            raise StopIteration  # AsyncWorker.handle closes the connection
        return kept

    # The worker's kept-alive connections waiting for their next request. A new connection
    # is not among them: its client has connected to send a request, which may not have
    # arrived yet, and is answered (a reload's old workers stop at any time).
    between_requests: set[Any]
    stopping: Event
    grace_over = False

    def handle_exit(self, sig: Any, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self.stopping.set()  # wakes `run` at once

    def run(self) -> None:
        """gunicorn's GeventWorker.run (the servers are the same), stopping as nginx does.
        gunicorn's graceful stop polled once a second and waited for each idle kept-alive
        connection until its keep-alive ran out (REQUEST_HEAD_SECONDS): a stop or reload
        took 1 to 6 s with nothing to do. Here a kept-alive connection between requests
        gets STOP_GRACE_SECONDS for a next request (answered, then closed), then has its
        reading side shut (what its client already sent is still read and answered, then
        it ends); the requests in flight are answered, and the worker exits as soon as its
        connections have ended (or after graceful_timeout)."""
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            server = StreamServer(
                listener, handle=partial(self.handle, _Named(listener)),
                spawn=Pool(self.worker_connections),
            )  # fmt: skip
            if self.cfg.workers > 1:
                server.max_accept = 1
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            self.stopping.wait(1.0)  # the heartbeat the master watches (notify)
        for server in servers:
            server.close()  # accept no more
        started = time.monotonic()
        # A harvester in the middle of a list sends its next request moments after an
        # answer: it is answered (Connection: close), not reset under it. Then whatever
        # is still idle between requests is closed.
        if not self._drained(servers, started + STOP_GRACE_SECONDS):
            self.grace_over = True
            for client in list(self.between_requests):
                _stop_reading(client)
        if self._drained(servers, started + self.cfg.graceful_timeout):
            return
        self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
        for server in servers:
            server.stop(timeout=1)

    def _drained(self, servers: list[Any], deadline: float) -> bool:
        """Whether every connection has ended before `deadline` (waiting for it, and telling
        the master meanwhile that this worker lives)."""
        while (left := deadline - time.monotonic()) > 0:
            if all(server.pool.join(timeout=min(left, 1.0)) for server in servers):
                return True
            self.notify()
        return all(server.pool.free_count() == server.pool.size for server in servers)


class _Named:
    """A listening socket as gunicorn's `handle` uses it: for its name. The stop closes the
    socket, and a connection accepted just before is handled after: asked then, the closed
    socket failed the request ("Bad file descriptor")."""

    def __init__(self, listener: Any) -> None:
        self.name = listener.getsockname()

    def getsockname(self) -> Any:
        return self.name


def _stop_reading(client: Any) -> None:
    """End a connection waiting for a request: reading returns what the client has already
    sent, then the end, and gunicorn closes the connection after answering it."""
    # Through a copy of the descriptor: gevent's own shutdown() would not let the waiting
    # read see the end but fail it ("File descriptor was closed in another greenlet"), and
    # gunicorn log that with a traceback. OSError: the client has gone already.
    with suppress(OSError), socket.fromfd(client.fileno(), client.family, client.type) as copy:
        copy.shutdown(socket.SHUT_RD)


class SendBudget:
    """WSGI middleware bounding the bytes of answers a worker holds until their clients have
    read them. A page is made whole before its first byte is sent, and a client that does
    not read keeps it in memory until serving.IDLE_SECONDS pass without a byte: without a
    bound, a few hundred such clients asking for a large page take a worker's memory.
    An answer larger than SMALL_ANSWER is counted from when it is made until the server
    has sent it (or given up on the client); one that would take the count past
    SEND_BUDGET is dropped at once and answered 503 with Retry-After. Streamed answers (the
    sitemaps: no Content-Length) are made piece by piece and not counted."""

    def __init__(self, app: Any, retry_after: int, budget: int | None = None) -> None:
        self.app = app
        self.retry_after = retry_after
        self.budget = SEND_BUDGET if budget is None else budget
        self.held = 0  # one worker process, one thread of greenlets: no lock needed

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started: list[Any] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers, exc_info]
            return lambda data: None  # write(): Flask never calls it

        body = self.app(environ, start)
        status, headers, exc_info = started
        length = next((v for k, v in headers if k.lower() == "content-length"), None)
        size = int(length) if length is not None and length.isdigit() else 0
        if size <= SMALL_ANSWER:
            start_response(status, headers, exc_info)
            return body
        if self.held + size > self.budget:
            if hasattr(body, "close"):
                body.close()
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8"),
                 ("Retry-After", str(self.retry_after))],
            )  # fmt: skip
            return [b"The server is busy sending other large pages; try again later.\n"]
        self.held += size
        start_response(status, headers, exc_info)
        return _Held(body, self, size)


class _Held:
    """An answer's body, its bytes given back to the budget once the server closes it
    (WSGI: always, sent or not)."""

    def __init__(self, body: Any, budget: SendBudget, size: int) -> None:
        self.body, self.budget, self.size = body, budget, size

    def __iter__(self) -> Any:
        return iter(self.body)

    def close(self) -> None:
        if self.size:
            self.budget.held -= self.size
            self.size = 0
        if hasattr(self.body, "close"):
            self.body.close()


@contextmanager
def _entry_points_read_once() -> Iterator[None]:
    """The installed packages' entry points read once while gevent patches the worker.

    gevent's patch_all tells plugins of each module it patches, looking them up in the
    entry points of every installed distribution each time (`importlib.metadata`
    reads each one's entry_points.txt): 25 times over, 0.12 of the 0.19 CPU-s a worker
    took to start, at every start (a reload starts them all again). Read once, the
    same lookups are answered from that reading; the plugins are found and called as
    before."""
    from importlib import metadata

    read = metadata.entry_points
    every = read()
    metadata.entry_points = lambda **selection: every.select(**selection)  # type: ignore[assignment]
    try:
        yield
    finally:
        metadata.entry_points = read


def cooperative_psycopg() -> None:
    """psycopg 3 waits cooperatively when gevent has patched `select` before psycopg is
    imported; `serve` imports it earlier, checking the database before it forks the
    workers, and psycopg then chose its C wait, which stalls the whole worker while
    PostgreSQL answers. Once patched, give it the wait it would have chosen (poll)."""
    waiting: Any = sys.modules.get("psycopg.waiting")
    if waiting is not None and waiting.wait is getattr(waiting, "wait_c", None):
        waiting.wait = waiting.wait_poll


def gunicorn_options(settings: Any, verbose: bool = False) -> dict[str, Any]:
    """The gunicorn settings of `serve` (the benchmarks and tests run the same), from the
    Settings' [server] host, port, socket, workers and trusted_proxies."""
    bind = f"unix:{settings.socket}" if settings.socket else f"{settings.host}:{settings.port}"
    if not settings.socket and ":" in settings.host:
        bind = f"[{settings.host.strip('[]')}]:{settings.port}"  # an IPv6 address
    return {
        "bind": bind,
        "workers": settings.workers,
        "worker_class": Worker,
        "worker_connections": CONNECTIONS_PER_WORKER,
        "keepalive": REQUEST_HEAD_SECONDS,
        "timeout": 120,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        # Whose X-Forwarded-Proto (and the like) gunicorn believes: [server]
        # trusted_proxies only, not gunicorn's default of 127.0.0.1 (any local process).
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
        # gunicorn 25.1+ opens a control socket at one path per user ($XDG_RUNTIME_DIR or
        # ~/.gunicorn): a second server on the host would take it over. Nothing uses it.
        "control_socket_disable": True,
        # A Unix socket is made 0660 (gunicorn's default umask 0 makes it 0777: any local
        # user could connect, and be believed as a proxy): the user and its group only.
        "umask": SOCKET_UMASK,
        # gunicorn's own information lines ("Starting gunicorn", "Booting worker …") only
        # with --verbose; its warnings and errors always.
        "loglevel": "info" if verbose else "warning",
        "on_starting": _hold_readiness,
        "when_ready": _say_listening,
        "worker_exit": _end_worker,
    }


SOCKET_UMASK = 0o117

# Settings older gunicorns (>= 23) do not have; without them they behave as wanted.
_NEWER_SETTINGS = frozenset({"control_socket_disable"})


def _hold_readiness(arbiter: Any) -> None:
    """Take $NOTIFY_SOCKET from gunicorn (and so from the workers): gunicorn says READY=1
    to systemd just before `when_ready`, so whoever waits for READY (systemd's
    `Type=notify`, a script, the tests) could read the log before the start-up line is in
    it. `_say_listening` says READY once the line is written."""
    arbiter.oaipmh_notify_socket = os.environ.pop("NOTIFY_SOCKET", None)


def _say_listening(arbiter: Any) -> None:
    """The one start-up line shown by default: where the server listens; then READY=1."""
    where = ", ".join(str(listener) for listener in arbiter.LISTENERS)
    say(
        f"oaipmh-server: listening at {where} ({arbiter.num_workers} workers, "
        f"master pid {arbiter.pid}; kill -HUP reloads the configuration)"
    )
    notify_socket = getattr(arbiter, "oaipmh_notify_socket", None)
    if notify_socket:
        os.environ["NOTIFY_SOCKET"] = notify_socket
        # unset_environment: the workers forked later do not inherit it either.
        systemd.sd_notify("READY=1\nSTATUS=oaipmh-server listening", arbiter.log, True)


def _end_worker(arbiter: Any, worker: Any) -> None:
    """A worker leaving (a stop, a reload's old workers, one that could not start) ends
    here, once gunicorn is done with it: its store closed (PostgreSQL sees its connections
    end, SQLite's last connection tidies its WAL), its lines flushed, then the process ends
    with the status gunicorn gave it (os._exit). Python's own finalization, every object
    of the few hundred modules a worker holds freed one by one for memory the process
    gives back anyway, was 0.2 CPU-s a worker, as much as its start.

    gunicorn calls this inside the `finally` its worker leaves through (the SystemExit
    holding the status is the exception being handled), and in the master for a worker
    found gone, which is left alone; so is any other way out than SystemExit."""
    if os.getpid() != worker.pid:
        return
    leaving = sys.exc_info()[1]
    if not isinstance(leaving, SystemExit) or not isinstance(leaving.code, int | None):
        return
    app = getattr(worker, "wsgi", None)
    if isinstance(app, SendBudget):
        app.app.extensions["oaipmh"].store.close()
    end_now(leaving.code)


def end_now(code: int | None) -> None:
    """The process ends with `code` once its lines are flushed, without Python's own
    finalization (a worker's, or the master's once gunicorn has stopped)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def say(line: str) -> None:
    """One line of the server's own on stderr, at once (stderr may be a pipe)."""
    print(line, file=sys.stderr, flush=True)


def run(options: dict[str, Any], load: Any, check: Any) -> None:
    """Run gunicorn with `options`; each worker calls `load()` for its WSGI app. Before a
    reload (SIGHUP, `systemctl reload`), `check()` does in the master what a new worker
    will do first, and a configuration it refuses is not applied."""

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings or key not in _NEWER_SETTINGS:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            app = load()
            return SendBudget(app, app.extensions["oaipmh"].settings.retry_after)

        def run(self) -> None:
            try:
                CheckedReloads(self, check).run()
            except RuntimeError as e:  # as BaseApplication.run: gunicorn's own failures
                say(f"Error: {e}")
                sys.exit(1)

    Application().run()


class CheckedReloads(Arbiter):  # type: ignore[misc]
    """gunicorn's master, refusing a reload whose configuration a worker would refuse.

    gunicorn reloads on SIGHUP by starting new workers and stopping the old ones; a new
    worker that cannot start (one mistake in the file: `page_size = "100"`) makes the
    master give up and exit, and every request then fails (502 behind a proxy). Checked
    first, a bad configuration leaves the old workers serving with the old one, and says
    why in one line; a good one is applied as gunicorn does, the listen queue holding
    new connections while the old workers finish theirs and the new ones start.
    """

    def __init__(self, app: Any, check: Any) -> None:
        self.check = check
        super().__init__(app)

    def reload(self) -> None:
        try:
            self.check()
        except Exception as e:  # whatever it is, the master must live on
            # The server's own line, as "configuration reloaded" is: not gunicorn's log
            # line ("[time] [pid] [ERROR] …"), so a watch for the line the manual shows
            # (docs/serving.md, Reloading) finds it.
            say(
                "oaipmh-server: configuration not reloaded, still serving with the previous "
                f"one: {e}"
            )
            return
        super().reload()
        say(f"oaipmh-server: configuration reloaded ({self.num_workers} new workers)")
