"""A record's files (DSpace bitstreams): `files`, one row per file.

Revision ID: 0006
Revises: 0005

Keyed (local_id, sequence), deleted with their record (ON DELETE CASCADE, and by the
loads' own deletes). Why a table and not a column of `records`: see store/schema.py files_table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column(
            "local_id",
            sa.String(255),
            sa.ForeignKey("records.local_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sequence", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("bundle", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("mime", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("access", sa.String(16), nullable=False),
        sa.Column("permissions", sa.Text(), nullable=True),
        sa.Column("uuid", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("files")
