"""Reading a store directly, whatever its backend, to check what a load wrote."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, func, select, type_coerce
from sqlalchemy.pool import NullPool
from sqlalchemy.types import NullType

from oaipmh_server.datestamps import format_datestamp
from oaipmh_server.store import plain_fields, unpack_fields
from oaipmh_server.store.meta import kept_set_counts
from oaipmh_server.store.schema import (
    files_table,
    fragments_table,
    memberships_table,
    meta_table,
    records_table,
    sets_table,
)

REPO = "oai:repository.example.org:"


def fetch(url: str, query: Any) -> list[Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(query))
    finally:
        engine.dispose()


def everything(url: str) -> list[tuple[Any, ...]]:
    """Every row of every table, to compare a store before and after a load."""
    rows: list[tuple[Any, ...]] = []
    for table in (records_table, memberships_table, fragments_table, files_table, sets_table):
        columns = list(table.columns)
        rows += [tuple(r) for r in fetch(url, select(*columns).order_by(*columns[:2]))]
    return rows


def set_sizes(url: str) -> dict[str, int]:
    """Each set's records (deleted ones included), counted on the memberships."""
    query = select(memberships_table.c.set_spec, func.count()).group_by(
        memberships_table.c.set_spec
    )
    return {spec: int(n) for spec, n in fetch(url, query)}


def assert_set_sizes_kept(url: str) -> None:
    """The sizes of the sets the last write kept are the sets' sizes (and it kept them)."""
    kept = kept_set_counts(dict(fetch(url, select(meta_table.c.key, meta_table.c.value))))
    assert kept == set_sizes(url)


def datestamps(url: str) -> dict[str, str]:
    return {
        lid: format_datestamp(ds)
        for lid, ds in fetch(url, select(records_table.c.local_id, records_table.c.datestamp))
    }


def oai_identifiers(url: str, deleted: bool | None = None) -> set[str]:
    query = select(records_table.c.local_id)
    if deleted is not None:
        query = query.where(records_table.c.deleted.is_(deleted))
    return {REPO + lid for (lid,) in fetch(url, query)}


def stored_fields(url: str, *local_ids: str) -> dict[str, Any]:
    """The fields as stored, unpacked, as lists [name, value, lang], with [authority,
    confidence] after them where a value has either."""
    query = select(records_table.c.local_id, type_coerce(records_table.c.fields, NullType())).where(
        records_table.c.local_id.in_(local_ids)
    )
    return {
        lid: [list(f) for f in plain_fields(unpack_fields(stored))]
        for lid, stored in fetch(url, query)
    }
