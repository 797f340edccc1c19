"""Admission of harvests: a bounded number of list requests at once on one host, with
places kept for harvests already under way.

Places are lock files in one folder, taken with non-blocking `flock`, so every worker
process of every server on the host shares them, and a place is freed by the kernel even
when its process dies. A request that carries a resumptionToken may take any place; a new
harvest only the ones not kept back. When none is free the web edge answers 503 with
Retry-After: harvesters retry later, and the harvests that are nearly done finish first.

Whoever can create or hold those lock files can turn every harvest away, so the folder is
the server user's own: created 0700, and refused when it belongs to someone else or others
may write in it (it used to have a predictable name in /tmp, mode 0755).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError
from ..store import database_file

log = logging.getLogger(__name__)


class HarvestLimit:
    """The list requests served at once on this host: a number of places, a quarter of them
    (at least one, from two on) kept for harvests already under way."""

    def __init__(self, count: int, folder: Path) -> None:
        self.count = count
        self.reserved = max(1, count // 4) if count >= 2 else 0
        self.folder = folder
        private_folder(folder)

    @classmethod
    def for_database(
        cls,
        count: int,
        database_url: str,
        folder: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> HarvestLimit:
        """The places of every server of one repository on this host: in `folder` when
        one is configured, else beside an SQLite database file, else in a folder of the
        server user's own (systemd's RuntimeDirectory, $XDG_RUNTIME_DIR, ~/.cache)."""
        if folder:
            return cls(count, Path(folder))
        # Beside the file, not keyed by the URL's text: servers that spell one database's
        # URL differently (a `file:` URI, a relative path) share its places.
        database = database_file(database_url)
        if database is not None:
            return cls(count, Path(f"{database}-places"))
        environ = os.environ if environ is None else environ
        key = hashlib.sha256(database_url.encode()).hexdigest()[:16]
        if environ.get("RUNTIME_DIRECTORY"):  # systemd's, for this service alone
            base = Path(environ["RUNTIME_DIRECTORY"].split(":")[0])
        elif environ.get("XDG_RUNTIME_DIR"):
            base = Path(environ["XDG_RUNTIME_DIR"]) / "oaipmh-server"
        else:
            try:
                cache = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                cache.mkdir(parents=True, exist_ok=True)
            except (OSError, RuntimeError) as e:  # RuntimeError: no home folder
                raise ConfigError(
                    f"flow control: no folder of this user's for its lock files ({e}); "
                    "set [server] places_folder"
                ) from None
            base = cache / "oaipmh-server"
        private_folder(base)
        return cls(count, base / f"places-{key}")

    @contextmanager
    def take(self, resuming: bool) -> Iterator[bool]:
        """Yield True holding a place, or False if none is free for this kind of request,
        or if none can be taken (logged): a server out of file descriptors is a busy one,
        and a harvester told 503 with Retry-After comes back, where a 500 ends its harvest.
        The folder, gone while the server runs ($XDG_RUNTIME_DIR is removed when its
        user's last session ends), is made again, checked as at the start."""
        usable = self.count if resuming else self.count - self.reserved
        for number in range(usable):
            try:
                fd = self._open(number)
            except (OSError, ConfigError) as e:
                why = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) else str(e)
                log.warning("flow control: no place can be taken, list turned away: %s", why)
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        yield False

    def _open(self, number: int) -> int:
        """The lock file of place `number`, opened (made if need be, folder and all)."""
        place = self.folder / f"place-{number}"
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
        try:
            return os.open(place, flags, 0o600)
        except FileNotFoundError:
            private_folder(self.folder)
            return os.open(place, flags, 0o600)


def private_folder(folder: Path) -> None:
    """Create `folder` 0700, or check that the existing one is a folder of this user's
    that nobody else may write in; raise ConfigError (the server does not start) if not."""
    where = f"flow control's folder {folder}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise ConfigError(f"{where} cannot be created: {e.strerror}") from None
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{where} is not a folder (a symbolic link or a file)")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{where} belongs to another user (uid {info.st_uid}): anyone who can hold its "
            "lock files can turn every harvest away; use a folder of the server's own"
        )
    if info.st_mode & 0o022:
        raise ConfigError(
            f"{where} may be written by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"anyone who can hold its lock files can turn every harvest away; chmod 700 it"
        )
