"""Each record's <header> rendered and stored with it, like its metadata fragments.

Revision ID: 0002
Revises: 0001

Rows from before have none (NULL): they are rendered on each request until the next load
renders and stores them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("header", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("header_version", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("header_version")
        batch.drop_column("header")
