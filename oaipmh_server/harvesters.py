"""Known harvesters: which aggregator a user agent names, kept as data in this one table.

A repository manager reads "OpenAIRE" more readily than a Java client's version string. Each
service is matched on the token it names itself by in its `User-Agent` (case-insensitive
unless the token is a short word that would match too much, like CORE); the first match
wins. A user agent is a claim anyone can copy: the report shows the address beside it.
Add a service by adding a row.
"""

from __future__ import annotations

import re

# (name, pattern): where a service is known to send its own token, the pattern is that token
# (Google Scholar's crawler sends "Googlebot-IA", as Cloudflare Radar's bot directory lists);
# otherwise the service's name or its domain, which aggregators put in their user agent.
KNOWN: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("BASE", re.compile(r"base-search\.net|Bielefeld Academic|\bBASE[ _-]?(Harvester|OAI)", re.I)),
    ("OpenAIRE", re.compile(r"openaire", re.I)),
    ("CORE", re.compile(r"core\.ac\.uk|\bCORE\b")),
    ("Google Scholar", re.compile(r"Googlebot-IA|Google[ -]?Scholar", re.I)),
    ("Europe PMC", re.compile(r"europepmc|Europe ?PMC", re.I)),
    ("WorldCat (OCLC)", re.compile(r"\boclc\b|worldcat", re.I)),
    ("Semantic Scholar", re.compile(r"SemanticScholarBot|semanticscholar\.org", re.I)),
    ("OpenAlex", re.compile(r"openalex", re.I)),
    ("DataCite", re.compile(r"datacite", re.I)),
)  # fmt: skip


def known_name(agent: str | None) -> str | None:
    """The aggregator `agent` names itself as, or None."""
    if not agent:
        return None
    for name, pattern in KNOWN:
        if pattern.search(agent):
            return name
    return None
