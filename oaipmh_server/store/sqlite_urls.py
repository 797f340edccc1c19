"""What an SQLite URL names: the file on disk that sqlite3 opens through it, or a database
that vanishes with its connection. Read as SQLAlchemy hands the name to pysqlite and as
SQLite reads it, so every part of the server that keeps something beside the database or
speaks of it means the file the store opens."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote_to_bytes

from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.util import asbool


def vanishes(url: str | URL) -> bool:
    """Whether `url` names an SQLite database that lives only as long as the process
    holding it: in memory (`sqlite://`, `sqlite:///:memory:`, an SQLite URI with
    `mode=memory`, `vfs=memdb` or the name `:memory:`) or SQLite's nameless temporary
    file (`file:` with no path). What is written to it is gone when the command ends, so
    the commands that write or serve refuse it (cli/opening.py); the tests' own stores use
    it, and the store takes it. Read as pysqlite reads the URL: its `file:` name is a URI
    only with `uri=true`, else the name of a file on disk."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return False  # no command can open it: config check says so
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    if database in ("", ":memory:"):
        return True
    try:
        uri = asbool(parsed.query.get("uri", False))
    except ValueError:
        return False  # pysqlite refuses it
    if not uri or not database.startswith("file:"):
        return False
    path = _uri_path(database)
    modes = parsed.query.get("mode", ())
    vfs = parsed.query.get("vfs", ())
    return (
        path in ("", ":memory:")
        or "memory" in ((modes,) if isinstance(modes, str) else modes)
        or "memdb" in ((vfs,) if isinstance(vfs, str) else vfs)
    )


def database_file(url: str | URL) -> Path | None:
    """The file on disk that the SQLite database at `url` is, as an absolute path; None
    when `url` names none: a database that vanishes, one not SQLite's, or a URL that
    cannot be opened. The one answer for what is kept beside the database or said about
    it (the backup's source, a new file made private, the writer's lease, the places of
    flow control, the folder of a full disk), so every spelling of one database's URL
    (`sqlite:////var/lib/oai/oai.sqlite3`, `sqlite:///file:/var/lib/oai/oai.sqlite3?uri=true`,
    `sqlite:///file:oai.sqlite3?mode=rwc&uri=true` in /var/lib/oai) names the same file.

    The name is taken as pysqlite is handed it (SQLAlchemy's own reading of the URL), then
    read as SQLite reads it (https://www.sqlite.org/uri.html): with `uri=true`, a name
    starting `file:` is a URI, its path ending at `?` or `#`, after an authority that is
    empty or `localhost`, its %-escapes decoded, relative to the working folder unless it
    starts with `/`; any other name is the file's own."""
    if vanishes(url):
        return None
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return None
        uri = asbool(parsed.query.get("uri", False))
        # Without uri=true the query is no part of the name (SQLAlchemy warns it ignores it).
        connect = parsed if uri else parsed.set(query={})
        (name, *_), _options = parsed.get_dialect()().create_connect_args(connect)
    except (ArgumentError, NoSuchModuleError, ValueError, TypeError):
        return None
    if not isinstance(name, str) or "\0" in name:
        return None  # nothing the sqlite3 module opens
    if uri and name.startswith("file:"):
        path = _uri_path(name)
        if path is None:
            return None
        name = path
    return Path(os.path.abspath(name))


def _uri_path(uri: str) -> str | None:
    """The path of an SQLite URI filename (`file:…`) as SQLite reads it: up to `?` or `#`,
    after an authority that must be empty or `localhost` (None: SQLite refuses another,
    "invalid uri authority"), its %-escapes decoded into the file system's bytes, `%00`
    ending it. "" is SQLite's nameless temporary file, ":memory:" its memory."""
    path = re.split("[?#]", uri.removeprefix("file:"), maxsplit=1)[0]
    if path.startswith("//"):
        authority, slash, path = path[2:].partition("/")
        if authority not in ("", "localhost"):
            return None
        path = slash + path
    return os.fsdecode(unquote_to_bytes(path).partition(b"\0")[0])


def file_to_create(url: str | URL) -> Path | None:
    """The file SQLite creates when it opens `url` and finds none there: database_file's,
    unless the URL is a `file:` URI whose `mode` (ro, rw) lets SQLite open only an
    existing one; creating it first would open an empty store where SQLite refuses."""
    file = database_file(url)
    if file is None:
        return None
    parsed = make_url(url)  # database_file read it: it parses, its uri is a boolean
    uri = asbool(parsed.query.get("uri", False)) and (parsed.database or "").startswith("file:")
    return file if not uri or parsed.query.get("mode", "rwc") == "rwc" else None
