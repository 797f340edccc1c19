"""Exports made by someone hostile (or careless): each test is the attack, asserting the safe
outcome and the exact message; a refused load leaves the store exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oaipmh_server.errors import LoadError, LoadFailed, excerpt, quoted

from .conftest import load_into
from .db import everything


def record(local_id: str, **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": local_id,
        "metadata": [
            {"field": "dc.title", "value": f"Title of {local_id}", "lang": "en"},
            {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"},
        ],
    }
    value.update(extra)
    return value


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    return path


def refused(url: str, *paths: Path, **overrides: Any) -> list[str]:
    """Load `paths` into a store that already holds a record; the load must fail and leave
    the store as it was. The problems, as the CLI prints them."""
    seed = paths[0].parent / "seed" / "seed.jsonl"
    if not seed.exists():
        seed.parent.mkdir()
        write_jsonl(seed, [record("seed")])
        load_into(url, seed)
    before = everything(url)
    with pytest.raises(LoadFailed) as failure:
        load_into(url, *paths, **overrides)
    assert everything(url) == before
    return [str(p) for p in failure.value.problems]


# --- messages: ids and values as the export wrote them, escaped and shortened ---------------


def test_an_id_with_terminal_escapes_cannot_drive_the_terminal(
    empty_database_url: str, tmp_path: Path
) -> None:
    clear_screen = "\x1b[2J\x1b[H"
    path = write_jsonl(tmp_path / "r.jsonl", [record(f"{clear_screen}hidden\u202eevil")])
    assert refused(empty_database_url, path) == [
        f"{path}:1: record \\x1b[2J\\x1b[Hhidden\\u202eevil: id '\\x1b[2J\\x1b[Hhidden\\u202eevil'"
        " has characters an OAI identifier cannot carry (or is too long)"
    ]


def test_a_million_character_id_makes_a_short_message(
    empty_database_url: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [record("x" * 1_000_000)])
    (message,) = refused(empty_database_url, path)
    assert message == (
        f"{path}:1: record {'x' * 80}…: id '{'x' * 80}…'"
        " has characters an OAI identifier cannot carry (or is too long)"
    )


def test_values_quoted_in_messages_are_escaped_and_short(
    empty_database_url: str, tmp_path: Path
) -> None:
    bad = record("1")
    bad["metadata"][0]["lang"] = "\x1b]0;owned\x07" + "e" * 5000
    bad["sets"] = ["\x1b[31m"]
    other = record("2")
    other["metadata"][0]["value"] = [[["deep"] * 10_000]]
    path = write_jsonl(tmp_path / "r.jsonl", [bad, other])
    assert refused(empty_database_url, path) == [
        f"{path}:1: record 1: set spec '\\x1b[31m' is not valid (letters, digits, -_.!~*'() and ':')",
        f"{path}:2: record 2: metadata entry 1 (dc.title): value must be a string, "
        "not [[['deep', 'deep', 'deep', 'deep', 'deep', 'deep', ...]]]",
    ]


def test_every_part_of_a_message_is_escaped() -> None:
    error = LoadError("export/\x1b[2Jitem", 3, "a\nb", "reason " + "\x07" * 2000)
    text = str(error)
    assert text.startswith("export/\\x1b[2Jitem:3: record a\\nb: reason \\x07\\x07")
    assert text.isprintable() and len(text) < 4 * 1000 + 100
    assert excerpt("é" * 100) == "é" * 80 + "…"
    assert quoted(10**5000) == "<int>"
