"""Why a database could not be opened, as one sentence an operator can act on.

The driver's own words ("OperationalError", "unable to open database file") name neither
the database nor the cause. This turns the error raised while creating the engine or first
connecting into what could not be opened and why: the SQLite file and the folder that is
missing, the PostgreSQL host and port and what the server answered, the driver to install.
A password never appears: URLs are shown with it hidden, and it is masked in the driver's
message too.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from ..errors import StoreUnavailable
from ..setting_checks import NOT_A_DATABASE_URL
from .sqlite_urls import database_file

POSTGRESQL_DRIVER = "pip install -e '.[postgresql]' (psycopg 3) and use postgresql+psycopg://"
SUPPORTED = "sqlite, postgresql+psycopg"


def shown_url(url: URL) -> str:
    """The database URL for a message, its password hidden and its database named as the
    operator wrote it: SQLAlchemy's rendering escapes the name's `:`, so an SQLite URI
    filename (`sqlite:///file:/var/lib/oai/oai.sqlite3?mode=ro&uri=true`) read
    `sqlite:///file%3A/var/lib/…`, a URL nobody wrote."""
    if not url.database:
        return url.render_as_string(hide_password=True)
    nameless = URL.create(url.drivername, url.username, url.password, url.host, url.port,
                          query=url.query)  # fmt: skip
    before, mark, query = nameless.render_as_string(hide_password=True).partition("?")
    return f"{before}/{url.database}{mark}{query}"


@dataclass(frozen=True)
class Passwords:
    """Where the password of a PostgreSQL database comes from, as the advice after a
    refused or missing one says it: the configured store's from OAIPMH_DATABASE_PASSWORD
    (and its file, its credential); `copy`'s TARGET's from its own URL or libpq's own
    sources, since the configured password is the store's, not the target's."""

    refused: str
    missing: str


CONFIGURED = Passwords("OAIPMH_DATABASE_PASSWORD", "set OAIPMH_DATABASE_PASSWORD")


@contextmanager
def opening(
    url: str, password: str | None, engine: Engine, passwords: Passwords | None = None
) -> Iterator[None]:
    """Around a store's first use of its database: an error becomes StoreUnavailable
    saying what could not be opened and why, and the engine is let go."""
    try:
        yield
    except SQLAlchemyError as e:
        engine.dispose()
        raise StoreUnavailable(cannot_open(url, e, password, passwords)) from e
    except BaseException:  # a schema it refuses (revisions.py): no connection left open
        engine.dispose()
        raise


def cannot_open(
    url: str,
    error: BaseException,
    password: str | None = None,
    passwords: Passwords | None = None,
) -> str:
    """The sentence for `error`, raised while opening the database at `url`."""
    sentence = _sentence(url, error, password, passwords or CONFIGURED)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in sentence)


def _sentence(url: str, error: BaseException, password: str | None, passwords: Passwords) -> str:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return NOT_A_DATABASE_URL
    secrets = [s for s in (parsed.password, password) if s]
    where = shown_url(parsed)
    if isinstance(error, NoSuchModuleError):
        if "." in str(error).rsplit(":", 1)[-1]:
            return (
                f"cannot open {where}: unknown driver {parsed.get_driver_name()!r} for "
                f"{parsed.get_backend_name()} (supported: {SUPPORTED})"
            )
        return (
            f"cannot open {where}: unknown kind of database {parsed.get_backend_name()!r} "
            f"(supported: {SUPPORTED})"
        )
    if isinstance(error, ImportError):
        install = (
            POSTGRESQL_DRIVER if parsed.get_backend_name() == "postgresql" else "pip install it"
        )
        return (
            f"cannot open {where}: its Python driver {error.name or '?'} is not installed: "
            f"{install}"
        )
    if isinstance(error, ValueError):
        return f"the database URL {where} is not valid: {_masked(str(error), secrets)}"
    message = str(error.orig) if isinstance(error, DBAPIError) else str(error)
    message = _masked(" ".join(message.split()), secrets)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite(parsed, message)
    if parsed.get_backend_name() == "postgresql":
        return _postgresql(parsed, message, passwords)
    return f"cannot connect to {where}: {_shortened(message)}"


def _sqlite(url: URL, message: str) -> str:
    file = database_file(url)
    if file is None:  # in memory, or a URI SQLite refuses: its own words
        where = url.database or ":memory:"
        return f"cannot open the SQLite database {where}: {_shortened(message)}"
    path = str(file)
    folder = os.path.dirname(path)
    what = f"cannot open the SQLite database {path}"
    if "file is not a database" in message:
        return f"{what}: the file is not an SQLite database"
    if "locked" in message:
        return (
            f"{what}: another process holds its lock (a load; or a server still running on "
            "a file replaced under it, to be stopped first, as docs/backups.md restores); "
            "try again when it is done"
        )
    if "unable to open" in message or "readonly" in message:
        if not os.path.exists(folder):
            return f"{what}: the folder {folder} does not exist"
        if not os.path.isdir(folder):
            return f"{what}: {folder} is not a folder"
        if os.path.isdir(path):
            return f"{what}: it is a folder, not a file"
        if _mounted_read_only(folder):  # where access(W_OK) fails for everyone (EROFS)
            return (
                f"{what}: the file system holding {folder} is mounted read-only (SQLite "
                "writes its -wal and -shm files beside the database): mount it read-write, "
                "or serve it as it is with ?immutable=1 (docs/read-only.md)"
            )
        if not os.path.exists(path) and not os.access(folder, os.W_OK | os.X_OK):
            return f"{what}: no permission to create it in {folder}"
        if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
            return f"{what}: no permission to read and write it"
        if not os.access(folder, os.W_OK | os.X_OK):
            return (
                f"{what}: no permission to write in {folder}, where SQLite keeps its "
                "-wal and -shm files"
            )
    return f"{what}: {_shortened(message)}"


def _mounted_read_only(folder: str) -> bool:
    """Whether `folder` is on a file system mounted read-only (a disk the kernel remounted
    so after an error, a read-only volume)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _postgresql(url: URL, message: str, passwords: Passwords) -> str:
    socket = url.query.get("host")
    place = f"{url.host or 'localhost'}:{url.port or 5432}" if not socket else f"socket {socket}"
    who = f"(database {url.database}, user {url.username})"
    what = f"cannot connect to PostgreSQL at {place} {who}"
    if "Connection refused" in message:
        return f"{what}: connection refused (is PostgreSQL running there, accepting TCP/IP?)"
    if "resolve host" in message or "translate host name" in message:
        return f"{what}: the host name {url.host} is unknown"
    if "password authentication failed" in message:
        return f"{what}: password authentication failed ({passwords.refused})"
    if "no password supplied" in message:
        return f"{what}: the server asks for a password ({passwords.missing})"
    missing = re.search(r'database "([^"]*)" does not exist', message)
    if missing:
        name = missing.group(1)
        return f'{what}: the database "{name}" does not exist (create it: createdb {name})'
    timeout = _timeout_setting(message)
    if timeout is not None:  # connected, then cut short: not "cannot connect"
        return f"cannot open the store on PostgreSQL at {place} {who}: {timeout}"
    if "timeout" in message or "timed out" in message:
        return f"{what}: no answer (timed out)"
    if "No such file or directory" in message:
        return f"{what}: no server listens on that socket"
    return f"{what}: {_shortened(message)}"


# PostgreSQL's SQLSTATE for a statement that waited for a lock longer than lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"

# PostgreSQL's words when one of its settings ends a statement or a session, and the
# setting: it may be set on the role or the database (ALTER ROLE … SET), unseen by the
# operator of a load, who heard only "the server did not answer" or "InternalError".
_TIMEOUTS = {
    "statement timeout": "statement_timeout",
    "idle-in-transaction timeout": "idle_in_transaction_session_timeout",
    "lock timeout": "lock_timeout",
}


def _timeout_setting(message: str) -> str | None:
    for words, setting in _TIMEOUTS.items():
        if f"due to {words}" in message:
            ended = "the session" if setting.startswith("idle") else "a statement"
            return (
                f"PostgreSQL's {setting} ended {ended} (SHOW {setting}; set on the role or "
                f"the database? ALTER ROLE … RESET {setting})"
            )
    if "due to user request" in message:
        # Another session's pg_cancel_backend; and PostgreSQL says the same when its
        # statement_timeout fires as a statement ends (seen with a short timeout on a busy
        # machine), so both are named.
        return (
            "PostgreSQL cancelled a statement (another session's pg_cancel_backend, or a "
            "statement_timeout set on the role or the database: SHOW statement_timeout)"
        )
    return None


def cut_short(url: str, error: BaseException | None) -> str | None:
    """Why a load failed, when its cause (`error`, a StoreUnavailable's) says: a full disk
    (disk_full), another session's or process's lock it waited for in vain, a server
    setting that ended its statement or session, or a PostgreSQL connection lost (a
    restart); None when the cause says nothing more."""
    full = disk_full(url, error)
    if full is not None:
        return full
    cause = getattr(error, "orig", None) or error
    if cause is None:
        return None
    text = " ".join(str(cause).split())
    if getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE or "due to lock timeout" in text:
        return (
            "another session holds a lock on the records (a LOCK TABLE, a VACUUM FULL, "
            "another program's migration? see pg_locks); load again once it is given up"
        )
    if "database is locked" in text:
        return (
            "another process holds the database's write lock (the sqlite3 shell, a backup "
            "tool?); load again once it is given up"
        )
    timeout = _timeout_setting(text)
    if timeout is not None:
        return timeout
    lost = getattr(error, "connection_invalidated", False) or getattr(cause, "sqlstate", None) in (
        "57P01",
        "57P02",
        "57P03",
    )  # admin_shutdown, crash_shutdown, cannot_connect_now
    if lost and make_url(url).get_backend_name() == "postgresql":
        return (
            "the connection to PostgreSQL was lost (the server restarted or stopped, or the "
            "session was ended); load again once it answers"
        )
    return None


def _masked(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _shortened(text: str, limit: int = 300) -> str:
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def disk_full(url: str, error: BaseException | None) -> str | None:
    """When `error` (the cause of a StoreUnavailable) says the disk is full, one sentence
    naming the disk and its free space, for the operator of a load (which otherwise hears
    only "OperationalError"); None for any other error. SQLite writes its database file
    and its journal beside it, and sorts in its temporary folder: both are named when they
    are on different file systems. PostgreSQL's disk is the server's: its own words."""
    cause = getattr(error, "orig", None) or error
    if cause is None:
        return None
    text = str(cause)
    if not (
        "database or disk is full" in text
        or "No space left on device" in text
        or getattr(cause, "sqlstate", None) == "53100"  # PostgreSQL's disk_full
    ):
        return None
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "the database's disk is full; free space on it and load again"
    file = database_file(parsed)
    if file is None:
        first = text.strip().splitlines()[0] if text.strip() else type(cause).__name__
        host = shown_url(parsed)
        return f"the disk of the database server of {host} is full ({first}); free space on it"
    folder = file.resolve().parent
    said = f"the disk holding {folder} is full ({_free(folder)} free)"
    temporary = Path(tempfile.gettempdir())
    try:
        if os.stat(temporary).st_dev != os.stat(folder).st_dev:
            said += f"; SQLite's temporary files go to {temporary} ({_free(temporary)} free)"
    except OSError:
        pass
    return said + ": a load needs room for its journal, about the size of what it writes"


def _free(folder: Path) -> str:
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if free < 1024 or unit == "GB":
            return f"{free:.0f} {unit}" if unit == "B" else f"{free:.1f} {unit}"
        free /= 1024
    return f"{free:.1f} TB"
