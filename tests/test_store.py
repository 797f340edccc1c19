"""The store: its migrations build the schema the models describe, and page queries stay
on their indexes (a page deep in a harvest costs what the first one costs)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from oaipmh_server.records import Selection
from oaipmh_server.store import SqlStore, _page_query, _shape
from oaipmh_server.store.schema import Base

from .conftest import sqlite_url


def test_migrations_build_the_schema_of_the_models(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert differences == []


def test_a_migrated_database_opens_and_keeps_its_secret(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite3")
    first = SqlStore(url)
    secret = first.token_secret()
    first.close()
    second = SqlStore(url)
    assert second.token_secret() == secret
    second.close()


def plan(database_url: str, selection: Selection, kind: str = "records") -> str:
    store = SqlStore(database_url)
    query = _page_query(kind, _shape(selection), True)
    compiled = query.compile(store.engine)
    # The plan does not depend on the values bound, only on the query's shape.
    unbound = (None,) * len(compiled.positiontup or ())
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", unbound).all()
    store.close()
    return "\n".join(row[-1] for row in rows)


UNTIL = datetime(2030, 1, 1, tzinfo=UTC)
FROM = datetime(2016, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite"])  # EXPLAIN QUERY PLAN is SQLite's
@pytest.mark.parametrize("kind", ["records", "headers"])
@pytest.mark.parametrize("from_", [None, FROM])
def test_page_query_uses_the_datestamp_index(
    database_url: str, kind: str, from_: datetime | None
) -> None:
    text = plan(database_url, Selection(None, from_, UNTIL), kind)
    assert "ix_records_datestamp_id" in text
    assert "TEMP B-TREE" not in text


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("kind", ["records", "headers"])
@pytest.mark.parametrize("from_", [None, FROM])
def test_set_page_query_uses_the_membership_index(
    database_url: str, kind: str, from_: datetime | None
) -> None:
    text = plan(database_url, Selection("com_10722_1", from_, UNTIL), kind)
    assert "ix_memberships_set_datestamp_id" in text
    assert "TEMP B-TREE" not in text
