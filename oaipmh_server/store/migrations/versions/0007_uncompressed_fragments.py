"""The stored fragments uncompressed on PostgreSQL: `fragments.body` SET STORAGE EXTERNAL.

Revision ID: 0007
Revises: 0006

A page sends a hundred stored fragments as they are; PostgreSQL stored each (3-4 kB)
pglz-compressed out of line, and decompressed all of them for every page: about a third
of a page's statement (2.46 against 1.58 ms, benchmarks/RESULTS.md), for about 45 % more
space. A load no longer compresses them either. EXTERNAL keeps them out of line (TOAST),
so the rows scanned to find a page stay small. The change is to the column's setting
only, not a rewrite: rows written from now on are stored uncompressed, the ones already
stored stay compressed until a load rewrites them (any change to a record writes its
fragments again). SQLite has no such setting: nothing to do there.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE fragments ALTER COLUMN body SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE fragments ALTER COLUMN body SET STORAGE EXTENDED")
