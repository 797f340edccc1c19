"""Alembic's environment for the store's schema (env.py); store/revisions.py runs it."""
