"""Each record's <header> rendered and stored with it, like its metadata fragments.

Revision ID: 0002
Revises: 0001

Rows from before have none (NULL): they are rendered on each request until the next load
renders and stores them.

The columns are added at the end of the table, in place (no rebuild: on SQLite a rebuild
drops the table, and the dropping would cascade to memberships and fragments). A store
created from the models has `fields` last instead, which SQLite reads faster (see
schema.py); an older SQLite store serves the same pages, a little slower.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("records", sa.Column("header_version", sa.String(64), nullable=True))
    op.add_column("records", sa.Column("header", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("records", "header")
    op.drop_column("records", "header_version")
