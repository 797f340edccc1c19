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

from lxml import etree

from ..config import Settings
from ..crosswalk import Crosswalk
from ..records import Field
from ..xml import XML_LANG, clean_text


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str
    version: str
    render: Callable[[Sequence[Field]], bytes]
    # Whether a record has anything to say in this format (ListMetadataFormats, GetRecord).
    disseminates: Callable[[Sequence[Field]], bool] = lambda fields: True


def crosswalked(
    prefix: str,
    schema: str,
    namespace: str,
    settings: Settings,
    render: Callable[[Sequence[Field], Crosswalk], bytes],
    *,
    keeps: Callable[[str], object] | None = None,
    table: object = None,
) -> MetadataFormat:
    """A format whose renderer works through the configured crosswalk (which also knows the
    private fields). `keeps(name)` says whether the format has a place for a field: a
    record with no public field it keeps cannot be disseminated in it (None: any record
    can). `table` is the format's own mapping, part of its version."""
    crosswalk = Crosswalk.from_settings(settings)

    def render_fields(fields: Sequence[Field]) -> bytes:
        return render(fields, crosswalk)

    def disseminates(fields: Sequence[Field]) -> bool:
        return keeps is None or any(crosswalk.is_public(f.name) and keeps(f.name) for f in fields)

    digest = hashlib.sha256(repr((prefix, crosswalk.version, table)).encode()).hexdigest()[:16]
    return MetadataFormat(prefix, schema, namespace, digest, render_fields, disseminates)


def value_element(parent: etree._Element, tag: str, value: Field) -> etree._Element:
    """A child holding one stored value, xml:lang set where the value has a language."""
    child = etree.SubElement(parent, tag)
    child.text = clean_text(value.value)
    if value.lang:
        child.set(XML_LANG, value.lang)
    return child


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
