"""The store schema's Alembic revisions, one a file, each naming the one before it."""
