"""What both blueprints are given: the process's settings, store, formats and harvest limit,
and the sizes of the largest request they answer.

Apart from app.py so that views.py and pages.py import it and app.py imports them, all at
the top: the blueprints need these, not the factory that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..formats import MetadataFormat
from ..settings import Settings
from ..store import SqlStore
from .admission import HarvestLimit


@dataclass(frozen=True)
class Provider:
    """What the views need, kept on the app (`app.extensions["oaipmh"]`)."""

    settings: Settings
    store: SqlStore
    formats: dict[str, MetadataFormat]
    harvest_limit: HarvestLimit | None  # admission of list requests; None when unlimited


# Far above any honest OAI-PMH request (the longest is a resumptionToken of a few hundred
# characters) and far below what could hurt: larger requests get 413 or 414. The query
# string's limit leaves room in gunicorn's largest request line (web/serving.py, 8,190 bytes)
# for the method, the path and the HTTP version, so the app, not gunicorn, answers it.
MAX_QUERY_STRING = 8000
MAX_BODY = 64 * 1024
