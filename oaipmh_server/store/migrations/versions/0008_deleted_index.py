"""An index of the deleted records alone (`ix_records_deleted`, partial: `WHERE deleted`).

Revision ID: 0008
Revises: 0007

Every write counts the stored and the deleted records for /metrics, in the transaction
that commits it. The deleted ones were counted by reading every row of the records table:
41 s of each load at 8,000,000 records (benchmarks/RESULTS.md, "SQLite towards
10,000,000 records"), so a load's final phase grew with the store. Counted on this index
(a few in a hundred records are tombstones), it takes milliseconds. Creating it reads the
table once, at the migration.
"""

from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # As schema.DELETED_ROWS says it (written out: a revision does not change with the code).
    op.create_index(
        "ix_records_deleted", "records", ["local_id"],
        sqlite_where=text("deleted = 1"), postgresql_where=text("deleted"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_records_deleted", table_name="records")
