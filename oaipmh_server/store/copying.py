"""A store copied into another database, whatever the backends: the way from SQLite, where
a repository starts, to PostgreSQL, where it grows (and back, or between two servers).

Loading the exports again into the new database would not do: it dates every record anew
(its dc.date.accessioned, or the load's time), so harvesters would see the whole repository
change or, worse, changes go back in time; and it has no tombstones, so a deletion a
harvester has not seen yet is never listed (Identify says deletedRecord `persistent`). A
copy keeps every row as it is: records with their datestamps and tombstones, their sets,
stored fragments and files, the sets, and the store's own figures (the counts each write
keeps, the list cut-off mark, the token secret), so a harvest begun on the old database
goes on with its token on the new one.

The rows are read in one transaction of the source (a snapshot: the state of its last
commit) and written in one transaction of the target, which must hold no records yet: a
copy that fails leaves the target as it was. The loads' registrations (`writers`) are the
source's own, and not copied. A write the source commits during the copy would be lost,
so the copy checks the source's last write after it, and fails whole if it moved. A list
a server still serving the source begins meanwhile raises the source's cut-off mark: the
copy keeps the later mark, so nothing written to the copy is dated before that list's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, insert, select, text

from ..errors import CopyRefused
from .bulk import insert_rows
from .columns import datetime_binder
from .engine import refresh_statistics
from .meta import LAST_WRITE_KEY
from .revisions import WRITTEN_BY_KEY
from .schema import (
    UTCDateTime,
    files_table,
    fragments_table,
    memberships_table,
    meta_table,
    records_table,
    sets_table,
)
from .sqlite_urls import database_file
from .writes import keep_mark_at_least, read_mark

# Records first: the others name them (foreign keys). The meta rows are copied apart.
TABLES = (records_table, sets_table, memberships_table, fragments_table, files_table)
BATCH = 2000  # rows read and written at a time


@dataclass(frozen=True)
class Copied:
    """What the copy wrote, table by table, counted as it went."""

    rows: Mapping[str, int]


def same_database(source: Engine, target: Engine) -> bool:
    """Whether `target` is `source`'s own database under another name. SQLite's is one
    file however its URL spells it (sqlite_urls.database_file). PostgreSQL's is asked of
    the servers: one database of one running server, whichever host, socket folder or
    user the URL goes through (`localhost`, `127.0.0.1`, `/run/postgresql`); a running
    server is told apart by its start time and port, which no two share on one host and
    which two hosts do not share by chance."""
    if source.url == target.url:
        return True
    if source.dialect.name != target.dialect.name:
        return False
    if source.dialect.name == "sqlite":
        file = database_file(source.url)
        return file is not None and database_file(target.url) == file
    if source.dialect.name != "postgresql":
        return False
    which = text("SELECT current_database(), pg_postmaster_start_time(), current_setting('port')")
    with source.connect() as reading, target.connect() as writing:
        return tuple(reading.execute(which).one()) == tuple(writing.execute(which).one())


def copy_store(source: Engine, target: Engine) -> Copied:
    """Every row of the store at `source` into the empty store at `target` (both at this
    version's schema: opened as stores first), or CopyRefused and nothing written."""
    with source.connect() as reading, _writing(target) as writing:
        if reading.dialect.name == "postgresql":
            reading = reading.execution_options(isolation_level="REPEATABLE READ")
        with reading.begin():
            held = writing.execute(select(func.count()).select_from(records_table)).scalar()
            if held:
                raise CopyRefused(
                    f"the target already holds {held} record(s): copy into a database "
                    "with no records (a new one)"
                )
            # Read first: it begins the source's snapshot (SQLite's read transaction starts
            # at its first read), so every row below is of the state it names.
            last_write = _last_write(reading)
            rows = {}
            for table in TABLES:
                rows[table.name] = _copy_rows(reading, writing, table)
            kept = [{"key": key, "value": value} for key, value in _meta(reading).items()]
            writing.execute(meta_table.delete().where(meta_table.c.key.in_(r["key"] for r in kept)))
            if kept:
                writing.execute(insert(meta_table), kept)
            rows[meta_table.name] = len(kept)
            refresh_statistics(writing)  # as after a load: pages stay on their indexes
        # Read again, past the snapshot: a server still serving the source may have
        # handed out a later cut-off meanwhile, and the copy must not date a write before it.
        keep_mark_at_least(writing, read_mark(reading))
        if _last_write(reading) != last_write:
            raise CopyRefused(
                "a load committed to the source during the copy, and the copy does not hold "
                "it: stop the loads (and what starts them), then copy again"
            )
    return Copied(rows)


def _writing(target: Engine) -> Any:
    """One transaction of the target, its write lock taken at once on SQLite (engine.py)."""
    return target.execution_options(immediate=True).begin()


def _copy_rows(reading: Connection, writing: Connection, table: Table) -> int:
    """The table's rows in its key's order, BATCH at a time, written as a load writes them
    (store/bulk.py: COPY on PostgreSQL, the driver's executemany on SQLite), each value as
    the target's driver takes it: datetimes through the column type's binder, and a
    record's fields written before revision 0003 (JSON text) as bytes where the target is
    PostgreSQL, whose column is bytea (SQLite's keeps the text as it was)."""
    names = [column.name for column in table.columns]
    binder = datetime_binder(writing.dialect)
    dated = [i for i, column in enumerate(table.columns) if isinstance(column.type, UTCDateTime)]
    bytea = table is records_table and writing.dialect.name == "postgresql"
    fields = names.index("fields") if bytea else None
    query = select(table).order_by(*table.primary_key.columns)
    copied = 0
    for partition in reading.execution_options(yield_per=BATCH).execute(query).partitions():
        rows = [list(row) for row in partition]
        for row in rows:
            for i in dated:
                if row[i] is not None:
                    row[i] = binder(row[i])
            if fields is not None and isinstance(row[fields], str):
                row[fields] = row[fields].encode()
        insert_rows(writing, table, names, map(tuple, rows))
        copied += len(rows)
    return copied


def _meta(reading: Connection) -> dict[str, str]:
    """The store's own figures and secrets, but not which program wrote its schema: the
    target's own migration said that."""
    kept = reading.execute(select(meta_table.c.key, meta_table.c.value)).all()
    return {key: value for key, value in kept if key != WRITTEN_BY_KEY}


def _last_write(conn: Connection) -> str | None:
    query = select(meta_table.c.value).where(meta_table.c.key == LAST_WRITE_KEY)
    return conn.execute(query).scalar()
