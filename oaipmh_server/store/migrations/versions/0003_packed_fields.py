"""Records' fields stored compressed (see store.pack_fields).

Revision ID: 0003
Revises: 0002

Rows already stored keep their uncompressed JSON, which is still read (unpack_fields);
rows written from now on are compressed. On PostgreSQL the column becomes bytea, its
text kept as UTF-8 bytes. On SQLite nothing changes: a column's declared type does not
bind what it holds, and changing it would mean rebuilding the table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.alter_column(
            "records",
            "fields",
            type_=sa.LargeBinary(),
            postgresql_using="convert_to(fields, 'UTF8')",
        )


def downgrade() -> None:
    """Back to text, which fails (and changes nothing) once rows were written compressed:
    older versions cannot read those."""
    if op.get_context().dialect.name == "postgresql":
        op.alter_column(
            "records", "fields", type_=sa.Text(), postgresql_using="convert_from(fields, 'UTF8')"
        )
