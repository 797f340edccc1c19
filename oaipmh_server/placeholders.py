"""The shipped sample identity, recognised wherever it must not reach harvesters.

config/oaipmh.toml ships a working identity (`repository.example.org`, an address at
`example.org`, "Sample DSpace Repository") so that a first run needs no edits. Those names
are reserved for documentation (RFC 2606, RFC 6761): no harvester can write to the
address, and OAI identifiers under `repository.example.org` would be shared with every
other installation that kept them. Production mode refuses them (config.py) and
`oaipmh-server check URL` fails an endpoint whose Identify shows them (check/endpoint.py).
"""

from __future__ import annotations

from urllib.parse import urlsplit

# config/oaipmh.toml's [repository] name (a test holds the two together).
SAMPLE_REPOSITORY_NAME = "Sample DSpace Repository"
# Second-level names reserved for examples (RFC 2606 section 3, and example.edu, which
# EDUCAUSE keeps for the same use), and top-level ones reserved for examples and for
# names that can never resolve (RFC 2606 section 2, RFC 6761).
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org", "example.edu")
EXAMPLE_TOP_LEVEL = ("example", "invalid")


def is_example_domain(host: str) -> bool:
    """Whether `host` is an example domain or a name under one (repo.example.org)."""
    host = host.strip().rstrip(".").lower()
    if host.rsplit(".", 1)[-1] in EXAMPLE_TOP_LEVEL:
        return True
    return any(host == d or host.endswith("." + d) for d in EXAMPLE_DOMAINS)


def placeholder_identity(
    name: str, identifier: str | None, emails: tuple[str, ...], base_url: str | None
) -> list[tuple[str, str]]:
    """(setting, why) for every part of a repository's identity that is still the sample's
    or an example domain: empty when the identity is the repository's own."""
    found = []
    if name.strip() == SAMPLE_REPOSITORY_NAME:
        found.append(("repository_name", f"{name!r} is the sample repository's name"))
    if identifier and is_example_domain(identifier):
        found.append(("repository_identifier", f"{identifier!r} is an example domain"))
    examples = [e for e in emails if is_example_domain(e.rpartition("@")[2])]
    if examples:
        listed = ", ".join(repr(e) for e in examples)
        found.append(("admin_emails", f"{listed} at an example domain"))
    if base_url:
        try:
            host = urlsplit(base_url).hostname or ""
        except ValueError:
            host = ""
        if is_example_domain(host):
            found.append(("base_url", f"{base_url!r} is on an example domain"))
    return found
