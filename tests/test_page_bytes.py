"""A list page is bounded in bytes as well as in records (`max_page_bytes`): a page of big
records holds fewer of them, never fewer than one, and the harvest still gets every record
exactly once. A 60 MB title once made a 272 MB page no harvester with default settings
could read; a page stays a size any XML parser takes with its default limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from lxml import etree

from .conftest import load_into, make_app
from .db import oai_identifiers
from .oai import NS, identifiers, token, tree

# What a page adds to its records: envelope, request echo, resumptionToken.
ENVELOPE = 4096


def big_record(number: int, size: int) -> dict[str, Any]:
    """A record whose oai_dc (and dim) holds `size` bytes of description, in values of at
    most 10,000 characters, as many abstracts would."""
    chunks = [f"{number} " + "x" * min(10_000, size - start) for start in range(0, size, 10_000)]
    return {
        "id": f"123456789/{number}",
        "sets": ["com_1:col_1"],
        "metadata": [
            {"field": "dc.title", "value": f"Record {number}", "lang": "en"},
            {"field": "dc.date.accessioned", "value": f"2015-07-{1 + number % 28:02d}T00:00:00Z"},
            *({"field": "dc.description.abstract", "value": chunk} for chunk in chunks),
        ],
    }


def store_of(url: str, tmp_path: Path, sizes: list[int]) -> str:
    path = tmp_path / "big.jsonl"
    lines = (json.dumps(big_record(n, size)) + "\n" for n, size in enumerate(sizes, 1))
    path.write_text("".join(lines), "utf-8")
    load_into(url, path)
    return url


def pages(client: FlaskClient, verb: str, prefix: str) -> list[tuple[bytes, etree._Element]]:
    """Every page of a harvest, raw and parsed (the client checks each against the XSD)."""
    found = []
    query = {"verb": verb, "metadataPrefix": prefix}
    while True:
        response = client.get("/oai", query_string=query)
        root = tree(response)
        assert root.find("oai:error", NS) is None, response.data[:500]
        found.append((response.data, root))
        element = token(root)
        if element is None or not element.text:
            return found
        query = {"verb": verb, "resumptionToken": element.text}


def check_harvest(found: list[tuple[bytes, etree._Element]], url: str) -> list[int]:
    """Every record exactly once, cursor and completeListSize right on every page, every
    page parsed by lxml's default parser; returns the records per page."""
    harvested = [i for _, root in found for i in identifiers(root)]
    assert len(harvested) == len(set(harvested))
    assert set(harvested) == oai_identifiers(url)
    counts = [len(identifiers(root)) for _, root in found]
    tokens = [token(root) for _, root in found]
    assert all(count >= 1 for count in counts)
    assert {int(t.get("completeListSize")) for t in tokens} == {len(harvested)}
    assert [int(t.get("cursor")) for t in tokens] == [sum(counts[:i]) for i in range(len(found))]
    assert all(t.text for t in tokens[:-1]) and tokens[-1].text is None
    for data, _ in found:
        etree.fromstring(data)  # the default parser, with its limits
    return counts


@pytest.mark.parametrize("prefix", ["oai_dc", "dim"])  # stored fragments; rendered per request
def test_pages_of_big_records_hold_fewer(
    empty_database_url: str, tmp_path: Path, prefix: str
) -> None:
    url = store_of(empty_database_url, tmp_path, [30_000] * 12)
    client = make_app(url, page_size=10, max_page_bytes=100_000).test_client()
    found = pages(client, "ListRecords", prefix)
    counts = check_harvest(found, url)
    assert counts == [3, 3, 3, 3]  # 10 a page by page_size; 3 of 30 kB in 100,000 bytes
    for data, _ in found:
        assert len(data) <= 100_000 + ENVELOPE


def test_a_record_bigger_than_the_budget_comes_alone(
    empty_database_url: str, tmp_path: Path
) -> None:
    url = store_of(empty_database_url, tmp_path, [1_000, 1_000, 120_000, 1_000, 130_000, 1_000])
    client = make_app(url, page_size=10, max_page_bytes=50_000).test_client()
    counts = check_harvest(pages(client, "ListRecords", "oai_dc"), url)
    assert counts == [2, 1, 1, 1, 1]


def test_list_identifiers_is_bounded_too(empty_database_url: str, tmp_path: Path) -> None:
    url = store_of(empty_database_url, tmp_path, [100] * 7)
    client = make_app(url, page_size=100, max_page_bytes=1024).test_client()
    counts = check_harvest(pages(client, "ListIdentifiers", "oai_dc"), url)
    assert len(counts) > 1 and max(counts) < 7


def test_default_budget_keeps_pages_of_megabyte_records_to_megabytes(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Twelve records of 1 MB each, the defaults everywhere: not one 12 MB page but pages of
    at most 8 MiB (max_page_bytes' default), and every record harvested once."""
    url = store_of(empty_database_url, tmp_path, [1_000_000] * 12)
    client = make_app(url).test_client()
    found = pages(client, "ListRecords", "oai_dc")
    counts = check_harvest(found, url)
    assert counts == [8, 4]
    assert all(len(data) <= 8 * 1024 * 1024 + ENVELOPE for data, _ in found)
