"""The schemas `check URL` validates against, found without the network where possible.

Official schemas are shipped with the package (`schemas/`, SOURCES.md there) and found by
their canonical URLs. A schema the checked endpoint publishes itself (same scheme, host and
port) is fetched from it, as an aggregator would, since fetching it is part of what is
checked. Any other URL is unknown unless given (`--schema URL=FILE`): a record whose
schema needs one is "not checked", never failed for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

Fetch = Callable[[str], tuple[int, bytes]]  # URL → (HTTP status, body)

_FOLDER = Path(str(resources.files("oaipmh_server.check").joinpath("schemas")))
LOCATIONS = {
    "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd": "OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc.xsd": "oai_dc.xsd",
    "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd": "oai-identifier.xsd",
    "http://www.openarchives.org/OAI/2.0/friends.xsd": "friends.xsd",
    "http://www.openarchives.org/OAI/2.0/branding.xsd": "branding.xsd",
    "http://www.openarchives.org/OAI/2.0/provenance.xsd": "provenance.xsd",
    "http://www.openarchives.org/OAI/2.0/rights.xsd": "rights.xsd",
    "http://www.openarchives.org/OAI/2.0/rightsManifest.xsd": "rightsManifest.xsd",
    "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": "simpledc20021212.xsd",
    "http://www.w3.org/2001/03/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
    "http://www.w3.org/2009/01/xml.xsd": "xml.xsd",
    "https://www.openaire.eu/schema/repo-lit/4.0/openaire.xsd": "openaire-v4/openaire.xsd",
}
OAI = "http://www.openarchives.org/OAI/2.0/"
NOT_CHECKED = "not checked"
# The containers of a response envelope whose content is another schema's.
ENVELOPE_IMPORTS = {
    OAI: "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc/": "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
    "http://www.openarchives.org/OAI/2.0/oai-identifier": (
        "http://www.openarchives.org/OAI/2.0/oai-identifier.xsd"
    ),
    "http://www.openarchives.org/OAI/2.0/friends/": "http://www.openarchives.org/OAI/2.0/friends.xsd",
    "http://www.openarchives.org/OAI/2.0/branding/": (
        "http://www.openarchives.org/OAI/2.0/branding.xsd"
    ),
}


class UnknownSchema(Exception):
    """A schema (or one it imports) that is neither shipped, given, nor the endpoint's."""


class Catalogue:
    def __init__(self, endpoint: str, fetch: Fetch, given: Mapping[str, str] = {}) -> None:
        self.origin = _origin(endpoint)
        self.fetch = fetch
        self.given = {url: str(Path(path).resolve()) for url, path in given.items()}
        self._schemas: dict[tuple[str, str], etree.XMLSchema | str] = {}

    def schema(self, namespace: str, url: str) -> etree.XMLSchema | str:
        """The schema at `url` for `namespace`, or why it cannot be checked."""
        key = (namespace, url)
        if key not in self._schemas:
            self._schemas[key] = self._load({namespace: url})
        return self._schemas[key]

    @cached_property
    def envelope(self) -> etree.XMLSchema:
        schema = self._load(ENVELOPE_IMPORTS)
        assert isinstance(schema, etree.XMLSchema)
        return schema

    def _load(self, imports: Mapping[str, str]) -> etree.XMLSchema | str:
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        resolver = _Resolver(self)
        parser.resolvers.add(resolver)
        driver = "".join(
            f'<xs:import namespace="{ns}" schemaLocation="{url}"/>' for ns, url in imports.items()
        )
        driver = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{driver}</xs:schema>'
        try:
            return etree.XMLSchema(etree.fromstring(driver, parser, base_url=f"{_FOLDER}/"))
        except (UnknownSchema, etree.XMLSchemaParseError) as e:
            if resolver.unreachable:
                return f"schema {resolver.unreachable}"
            if resolver.unknown:
                return (
                    f"{NOT_CHECKED}: schema {resolver.unknown} is not known offline "
                    "(--schema URL=FILE)"
                )
            return f"schema at {', '.join(imports.values())} does not parse: {e}"


class _Resolver(etree.Resolver):
    def __init__(self, catalogue: Catalogue) -> None:
        super().__init__()
        self.catalogue = catalogue
        self.unknown: str | None = None
        self.unreachable: str | None = None

    def resolve(self, url: str, pubid: str, context: Any) -> Any:  # type: ignore[override]
        this: Any = self  # lxml-stubs lack the resolve_* helpers
        if url in LOCATIONS:
            return this.resolve_filename(str(_FOLDER / LOCATIONS[url]), context)
        if url in self.catalogue.given:
            return this.resolve_filename(self.catalogue.given[url], context)
        folders = [
            _FOLDER,
            *(Path(path).resolve().parent for path in self.catalogue.given.values()),
        ]
        if any(Path(url).is_relative_to(f) for f in folders) and Path(url).is_file():
            return None  # a local schema importing its neighbour by a relative path
        if url.startswith(("http://", "https://")) and _origin(url) == self.catalogue.origin:
            try:
                status, body = self.catalogue.fetch(url)
            except OSError as e:
                status, body = 0, str(e).encode()
            if status == 200:
                return this.resolve_string(body, context, base_url=url)
            self.unreachable = f"{url} answers HTTP {status or body.decode(errors='replace')}"
            raise UnknownSchema(url)
        self.unknown = url
        raise UnknownSchema(url)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
