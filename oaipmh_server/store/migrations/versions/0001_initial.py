"""The first schema: records, memberships, fragments, sets, meta.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from oaipmh_server.store.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("local_id", sa.String(255), primary_key=True),
        sa.Column("datestamp", UTCDateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("set_specs", sa.Text(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("accessioned", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_records_datestamp_id", "records", ["datestamp", "local_id"])
    op.create_table(
        "memberships",
        sa.Column("set_spec", sa.String(255), primary_key=True),
        sa.Column(
            "local_id",
            sa.String(255),
            sa.ForeignKey("records.local_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("datestamp", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_memberships_set_datestamp_id", "memberships", ["set_spec", "datestamp", "local_id"]
    )
    op.create_index("ix_memberships_local_id", "memberships", ["local_id"])
    op.create_table(
        "fragments",
        sa.Column(
            "local_id",
            sa.String(255),
            sa.ForeignKey("records.local_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("prefix", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "sets",
        sa.Column("spec", sa.String(255), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in ("meta", "sets", "fragments", "memberships", "records"):
        op.drop_table(table)
