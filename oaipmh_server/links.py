"""The server's URLs from its settings: its root (from the configured baseURL), and the
links of records' files by the `[files] url` pattern (files.py's Linker)."""

from __future__ import annotations

from .files import Linker
from .settings import Settings


def schema_root(base_url: str) -> str:
    """The server's root URL: the baseURL up to its `/oai` path segment (the OAI endpoint is
    `/oai`, or `/oai/…`), or the baseURL's parent; "" for no baseURL."""
    scheme, _, rest = base_url.partition("://")
    if not rest:
        return ""
    host, slash, path = rest.partition("/")
    segments = path.split("/") if slash else []
    if "oai" in segments:
        segments = segments[: len(segments) - 1 - segments[::-1].index("oai")]
    else:
        segments = segments[:-1]
    return f"{scheme}://{'/'.join([host, *segments])}"


def linker_of(settings: Settings) -> Linker:
    """The configured links ([files] url, {base} from [repository] base_url)."""
    return Linker(settings.files_url, schema_root_of(settings))


def schema_root_of(settings: Settings) -> str:
    """What `{base}` stands for: the server's root, from the configured baseURL ("": none)."""
    return schema_root(settings.base_url or "")
