"""Simple Archive Format exports as DSpace writes them: bitstreams in sub-folders of their
item, macOS debris, items that lost their dublin_core.xml, and the export as a .zip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from oaipmh_server.errors import LoadFailed

from .conftest import load_into
from .db import everything, stored_fields

SEED_ITEM = Path(__file__).parent / "fixtures" / "dspace-seed" / "saf" / "item_000"
SEED_HANDLE = "10722/212116"
# AppleDouble: the resource fork macOS writes as `._NAME` beside (or, in a zip, under
# __MACOSX/) every file; binary, never a record.
SEED_RECORD = {
    "id": "seed",
    "metadata": [
        {"field": "dc.title", "value": "Already here"},
        {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"},
    ],
}
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 40


def seed_export(export: Path, name: str = "item_000") -> Path:
    """The seed item, as DSpace exports it, in `export`; its folder."""
    folder = export / name
    shutil.copytree(SEED_ITEM, folder)
    return folder


def seed_fields(tmp_path: Path) -> list[Any]:
    """The seed item's fields as a load of the plain fixture stores them."""
    from .conftest import sqlite_url

    url = sqlite_url(tmp_path / "reference.sqlite3")
    load_into(url, SEED_ITEM)
    return stored_fields(url, SEED_HANDLE)[SEED_HANDLE]


def refused(url: str, tmp_path: Path, *paths: Path, **overrides: Any) -> list[str]:
    """The problems of a load that must fail and leave a store holding a record as it
    was."""
    seed = tmp_path / "seed" / "seed.jsonl"
    if not seed.exists():
        seed.parent.mkdir()
        seed.write_text(json.dumps(SEED_RECORD) + "\n", "utf-8")
        load_into(url, seed)
    before = everything(url)
    with pytest.raises(LoadFailed) as failure:
        load_into(url, *paths, **overrides)
    assert everything(url) == before
    return [str(p) for p in failure.value.problems]


# --- bitstreams named with "/" ----------------------------------------------------------------


def with_bitstreams_in_sub_folders(folder: Path) -> None:
    """What DSpace's export writes for bitstreams named `chapters/one.pdf` and
    `data/records.jsonl`, `data/dublin_core.xml`, `data/handle` (its own test export
    `bundleWithForwardSlashes.zip` names bitstreams with `/`): sub-folders of the item
    folder, the names in `contents` as DSpace wrote them. The last three are named like
    record files and item files, and are none of them."""
    (folder / "chapters").mkdir()
    (folder / "chapters" / "one.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    (folder / "data").mkdir()
    (folder / "data" / "records.jsonl").write_text("not a record\n", "utf-8")
    (folder / "data" / "dublin_core.xml").write_text("<not-dublin-core/>", "utf-8")
    (folder / "data" / "handle").write_text("10722/666\n", "utf-8")
    (folder / "contents").write_text(
        "chapters/one.pdf\tbundle:ORIGINAL\tprimary:true \n"
        "data/records.jsonl\tbundle:ORIGINAL\tdescription:The data\n"
        "data/dublin_core.xml\tbundle:ORIGINAL\n"
        "data/handle\tbundle:ORIGINAL\n",
        "utf-8",
    )


def test_a_bitstream_in_a_sub_folder_is_a_file_of_its_item(
    empty_database_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    with_bitstreams_in_sub_folders(seed_export(export))
    summary = load_into(empty_database_url, export)
    assert (summary.added, summary.rejected) == (1, 0)
    assert stored_fields(empty_database_url, SEED_HANDLE) == {SEED_HANDLE: seed_fields(tmp_path)}


def test_an_item_folder_with_bitstream_sub_folders_given_alone_is_one_item(
    empty_database_url: str, tmp_path: Path
) -> None:
    folder = seed_export(tmp_path / "export")
    with_bitstreams_in_sub_folders(folder)
    summary = load_into(empty_database_url, folder)
    assert (summary.added, summary.rejected) == (1, 0)
    assert list(stored_fields(empty_database_url, SEED_HANDLE, "10722/666")) == [SEED_HANDLE]


# --- an item folder without dublin_core.xml ---------------------------------------------------


def test_an_item_folder_without_dublin_core_is_an_error_naming_it(
    empty_database_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    seed_export(export)
    lost = seed_export(export, "item_001")
    (lost / "dublin_core.xml").unlink()
    (lost / "handle").write_text("10722/212117\n", "utf-8")
    assert refused(empty_database_url, tmp_path, export) == [
        f"{lost}: an item folder (it holds handle) without dublin_core.xml: its record cannot "
        "be read"
    ]
    assert refused(empty_database_url, tmp_path, lost) == [
        f"{lost}: an item folder (it holds handle) without dublin_core.xml: its record cannot "
        "be read"
    ]


def test_an_item_folder_holding_only_contents_is_an_item_folder_too(
    empty_database_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    seed_export(export)
    lost = export / "nested" / "item_002"
    lost.mkdir(parents=True)
    (lost / "contents").write_text("one.pdf\tbundle:ORIGINAL\n", "utf-8")
    (lost / "one.pdf").write_bytes(b"%PDF-1.4\n")
    assert refused(empty_database_url, tmp_path, export) == [
        f"{lost}: an item folder (it holds contents) without dublin_core.xml: its record "
        "cannot be read"
    ]


# --- macOS debris -----------------------------------------------------------------------------


def with_macos_debris(export: Path) -> None:
    """What a Mac adds: Finder's .DS_Store in every folder it showed, and (in the zips its
    Archive Utility makes) __MACOSX/ mirroring the export with AppleDouble `._NAME` files,
    among them `._records.jsonl` and `._dublin_core.xml`, and a `._item_000` folder."""
    for folder in (export, export / "item_000"):
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 40)
    mac = export / "__MACOSX"
    (mac / "item_000").mkdir(parents=True)
    for name in ("._records.jsonl", "._item_000", "item_000/._dublin_core.xml"):
        (mac / name).write_bytes(APPLE_DOUBLE)
    (mac / "item_000" / "._handle").write_bytes(APPLE_DOUBLE)
    (mac / "item_001").mkdir()
    (mac / "item_001" / "handle").write_text("10722/666\n", "utf-8")


def test_macos_debris_is_ignored_everywhere(empty_database_url: str, tmp_path: Path) -> None:
    export = tmp_path / "export"
    seed_export(export)
    with_macos_debris(export)
    summary = load_into(empty_database_url, export)
    assert (summary.added, summary.rejected, summary.warnings) == (1, 0, [])
    assert stored_fields(empty_database_url, SEED_HANDLE) == {SEED_HANDLE: seed_fields(tmp_path)}
