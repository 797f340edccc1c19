"""Reading the settings and opening the store for a command, their failures as one line."""

from __future__ import annotations

from typing import Any

import click

from ..config import load_settings
from ..errors import ConfigError, StoreUnavailable


def _settings() -> Any:
    from ..formats import build_formats

    try:
        settings = load_settings()
        build_formats(settings)  # [formats] names formats the registry must have
        return settings
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _open_store(settings: Any) -> Any:
    from ..store import SqlStore

    try:
        return SqlStore(
            settings.database_url,
            token_secret=settings.token_secret,
            password=settings.database_password,
        )
    except StoreUnavailable as e:  # what could not be opened, and why (store.failures)
        raise click.ClickException(str(e)) from None
