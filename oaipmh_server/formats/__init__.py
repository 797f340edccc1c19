"""The metadata formats this repository disseminates: prefix → MetadataFormat.

A format is a prefix, a schema, a namespace and a renderer from stored fields to a
fragment. Fragments are rendered once at ingest and stored; `version` says which crosswalk
made them, so a changed crosswalk is never served from stale fragments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..config import Settings
from ..crosswalk import Crosswalk
from ..records import Field
from . import oai_dc


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str
    version: str
    render: Callable[[Sequence[Field]], bytes]


def build_formats(settings: Settings) -> dict[str, MetadataFormat]:
    """The formats offered under these settings, in the order ListMetadataFormats lists them."""
    crosswalk = Crosswalk.from_settings(settings)
    return {
        oai_dc.PREFIX: MetadataFormat(
            prefix=oai_dc.PREFIX,
            schema=oai_dc.SCHEMA,
            namespace=oai_dc.NAMESPACE,
            version=crosswalk.version,
            render=lambda fields: oai_dc.render(fields, crosswalk),
        )
    }
