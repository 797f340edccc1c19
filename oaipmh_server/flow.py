"""Flow control: a bounded number of list requests at once on one host, with places kept
for harvests already under way.

Places are lock files in one folder, taken with non-blocking `flock`, so every worker
process of every server on the host shares them, and a place is freed by the kernel even
when its process dies. A request that carries a resumptionToken may take any place; a new
harvest only the ones not kept back. When none is free the web edge answers 503 with
Retry-After: harvesters retry later, and the harvests that are nearly done finish first.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Places:
    def __init__(self, count: int, folder: Path) -> None:
        self.count = count
        self.reserved = max(1, count // 4) if count >= 2 else 0
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_database(cls, count: int, database_url: str) -> Places:
        """The places of every server of one repository on this host."""
        key = hashlib.sha256(database_url.encode()).hexdigest()[:16]
        return cls(count, Path(tempfile.gettempdir()) / f"oaipmh-server-places-{key}")

    @contextmanager
    def take(self, resuming: bool) -> Iterator[bool]:
        """Yield True holding a place, or False if none is free for this kind of request."""
        usable = self.count if resuming else self.count - self.reserved
        for number in range(usable):
            fd = os.open(self.folder / f"place-{number}", os.O_RDWR | os.O_CREAT, 0o600)
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
