"""The metadata formats this repository disseminates: prefix → MetadataFormat.

A format is one module of this package defining `metadata_format(settings)`: its prefix,
schema, namespace and crosswalk. The registry finds the modules itself, so adding a format
is adding a module and nothing else. Fragments are rendered once at ingest and stored;
`version` says which crosswalk made them, so a changed crosswalk is never served from
stale fragments.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..config import Settings
from ..records import Field


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str
    version: str
    render: Callable[[Sequence[Field]], bytes]
    # Whether a record has anything to say in this format (ListMetadataFormats, GetRecord).
    disseminates: Callable[[Sequence[Field]], bool] = lambda fields: True


def crosswalk_version(*parts: object) -> str:
    """A short digest of everything that shapes a format's fragments."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def build_formats(settings: Settings) -> dict[str, MetadataFormat]:
    """Every format module's format, oai_dc first (the one every repository must offer),
    the others by prefix."""
    formats = [_module(name).metadata_format(settings) for name in _module_names()]
    formats.sort(key=lambda f: (f.prefix != "oai_dc", f.prefix))
    return {f.prefix: f for f in formats}


def _module_names() -> Iterable[str]:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            yield info.name


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"{__name__}.{name}")
