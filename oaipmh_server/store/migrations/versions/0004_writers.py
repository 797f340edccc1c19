"""The writes in progress (`writers`), so that no list is cut off past an uncommitted change.

Revision ID: 0004
Revises: 0003

A load commits a row here before it writes, dated with the moment its changes will carry,
and deletes it in the transaction that commits its changes; see store/writes.py.
"""

import sqlalchemy as sa
from alembic import op

from oaipmh_server.store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("writers")
