"""The tree of sets: each set's parent (a DSpace community containing it).

Revision ID: 0005
Revises: 0004

DSpace serves flat set specs (com_<handle>, col_<handle>) and puts a record of a
collection in every community above it; the loader finds those communities here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sets", sa.Column("parent", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("sets", "parent")
