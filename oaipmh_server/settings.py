"""The settings as plain data: what an operator can change, read and checked by config.py.

Every module that is given settings imports them from here; none of them reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .virtual_set_definitions import VirtualSet

# The fifteen elements of unqualified Dublin Core (oai_dc).
DC_ELEMENTS = frozenset(
    {
        "contributor", "coverage", "creator", "date", "description", "format", "identifier",
        "language", "publisher", "relation", "rights", "source", "subject", "title", "type",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Everything an operator can change. Values cross modules; nothing mutates them."""

    repository_name: str
    repository_identifier: str
    admin_emails: tuple[str, ...]
    base_url: str | None
    database_url: str
    database_password: str | None
    mode: Literal["development", "production"]
    max_concurrent_lists: int
    places_folder: str | None
    trusted_proxies: tuple[str, ...]
    retry_after: int
    page_size: int
    max_page_bytes: int
    token_secret: str | None
    keep_accessioned: bool
    missing_accessioned: Literal["reject", "ingest_time"]
    load_wait: bool
    hidden_fields: tuple[str, ...]
    oai_dc_map: tuple[tuple[str, str], ...]
    stored_formats: tuple[str, ...]
    # What one record may cost, checked at load (see [limits] in config/oaipmh.toml).
    max_value_length: int
    max_values: int
    max_record_bytes: int
    # What a .zip export may unpack to, in bytes and in files (zip bombs refused unread).
    max_archive_bytes: int
    max_archive_entries: int
    # The HTML pages (web/pages.py): the home page's description, the Highwire citation_* tags
    # (tag → DSpace-style source: "a | b" first present, "a, b" all) and dc.type → schema.org.
    repository_description: str = ""
    citation_map: tuple[tuple[str, str], ...] = ()
    schema_types: tuple[tuple[str, str], ...] = ()
    # oai_openaire: repository values (normalised) → COAR term labels, per vocabulary.
    openaire_resource_types: tuple[tuple[str, str], ...] = ()
    openaire_access_rights: tuple[tuple[str, str], ...] = ()
    openaire_versions: tuple[tuple[str, str], ...] = ()
    openaire_default_access_right: str = "metadata only access"
    set_style: Literal["dspace", "hierarchical"] = "dspace"
    paths: tuple[str, ...] = ("/oai", "/oai/request")
    # The link to a record's file (oaipmh_server/files.py), "" (the default) for none: the
    # files live in DSpace (or elsewhere), which only the operator knows.
    files_url: str = ""
    # Virtual sets (virtual_sets.py): every definition of [virtual_sets.define], checked,
    # and the specs of those served.
    virtual_set_definitions: tuple[VirtualSet, ...] = ()
    virtual_sets_served: tuple[str, ...] = ()
    # `serve` (web/serving.py): where it listens (a Unix socket path, when set, instead of
    # host:port), how many worker processes, and who may read /metrics.
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    socket: str | None = None
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    # The HTML pages ([pages]): served or not (an institution keeping DSpace's own landing
    # pages turns them off; /oai is unchanged), and what makes them the institution's:
    # the name they show ("": repository_name), a logo, a footer line, the accent colour,
    # a folder of templates overriding the built-in ones, the language of their text.
    pages_enabled: bool = True
    pages_name: str = ""
    pages_logo_url: str = ""
    pages_footer: str = ""
    pages_accent_color: str = ""
    pages_template_folder: str = ""
    pages_lang: str = "en"
    # Secrets that signed resumption tokens before token_secret: still accepted (rotation).
    previous_token_secrets: tuple[str, ...] = ()
    # `load --sync`: the most of the stored records (a percentage) it may withdraw unless
    # --sync-allow-deletes says how many are expected.
    sync_max_deleted: float = 10.0
