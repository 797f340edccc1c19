"""Reading the settings and opening the store for a command, their failures as one line."""

from __future__ import annotations

from typing import Any

import click

from ..config import load_settings
from ..errors import ConfigError, StoreUnavailable


def read_settings() -> Any:
    """The settings a command runs with, its formats built once to find a [formats] mistake
    before anything is opened; a mistake is one line, not a traceback."""
    from ..formats import build_formats

    try:
        settings = load_settings()
        build_formats(settings)  # [formats] names formats the registry must have
        return settings
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def open_store(settings: Any) -> Any:
    """The store `settings` name, migrated; what could not be opened is one line."""
    from ..store import SqlStore

    try:
        return SqlStore(
            settings.database_url,
            token_secret=settings.token_secret,
            password=settings.database_password,
        )
    except StoreUnavailable as e:  # what could not be opened, and why (store.failures)
        raise click.ClickException(str(e)) from None
