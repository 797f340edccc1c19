"""Simple Archive Format exports as DSpace writes them: bitstreams in sub-folders of their
item, macOS debris, items that lost their dublin_core.xml, and the export as a .zip."""

from __future__ import annotations

import json
import re
import shutil
import stat
import struct
import warnings
import zipfile
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError
from oaipmh_server.store.schema import memberships_table, records_table

from .conftest import LOADED, load_into, refused_load
from .db import fetch, stored_fields

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
    return refused_load(url, SEED_RECORD, tmp_path, *paths, **overrides)


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


def test_apple_double_files_beside_the_export_s_files_are_ignored(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A Mac copying to a disk that cannot hold resource forks (or tar on a Mac) writes them
    beside each file as `._NAME`; a `._NAME` file that is not one is read as any file."""
    export = tmp_path / "export"
    seed_export(export)
    (export / "._item_000").write_bytes(APPLE_DOUBLE)
    (export / "._records.jsonl").write_bytes(APPLE_DOUBLE)
    (export / "._sets.json").write_bytes(APPLE_DOUBLE)
    (export / "._mine.jsonl").write_text(json.dumps(SEED_RECORD) + "\n", "utf-8")
    summary = load_into(empty_database_url, export)
    assert (summary.added, summary.rejected, summary.warnings) == (2, 0, [])


# --- a .zip of an export ----------------------------------------------------------------------


def zip_folder(folder: Path, archive: Path, top: str = "") -> Path:
    """`folder` zipped as an archiver does it: folders as members too, under `top`."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            zipped.write(path, top + path.relative_to(folder).as_posix())
    return archive


@pytest.mark.parametrize(
    ("top", "name"), [("", "export.zip"), ("SimpleArchiveFormat/", "EXPORT.ZIP")]
)
def test_a_zipped_export_loads_like_the_folder(
    empty_database_url: str, tmp_path: Path, private_temp: Path, top: str, name: str
) -> None:
    """As DSpace's `export -z` zips it, or a Mac (debris and all), with or without a folder
    around the items; bitstreams in sub-folders included."""
    export = tmp_path / "export"
    with_bitstreams_in_sub_folders(seed_export(export))
    with_macos_debris(export)
    archive = zip_folder(export, tmp_path / name, top)
    summary = load_into(empty_database_url, archive)
    assert (summary.added, summary.rejected, summary.warnings) == (1, 0, [])
    assert stored_fields(empty_database_url, SEED_HANDLE) == {SEED_HANDLE: seed_fields(tmp_path)}
    assert list(private_temp.iterdir()) == []  # unpacked for the load, removed after it


def test_problems_in_a_zipped_export_name_their_place_in_the_archive(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    export = tmp_path / "export"
    broken = seed_export(export)
    text = (broken / "dublin_core.xml").read_text("utf-8")
    (broken / "dublin_core.xml").write_text(text.replace("</dublin_core>", ""), "utf-8")
    lost = seed_export(export, "item_001")
    (lost / "dublin_core.xml").unlink()
    archive = zip_folder(export, tmp_path / "export.zip")
    lines = text.count("\n") + 1
    assert refused(empty_database_url, tmp_path, archive) == [
        f"{archive}!item_001: an item folder (it holds handle) without dublin_core.xml: "
        "its record cannot be read"
    ]
    shutil.rmtree(lost)
    archive = zip_folder(export, tmp_path / "export.zip")
    (problem,) = refused(empty_database_url, tmp_path, archive)
    assert problem.startswith(f"{archive}!item_000: record {SEED_HANDLE}: dublin_core.xml:{lines}")
    assert list(private_temp.iterdir()) == []


@pytest.mark.parametrize(
    "name",
    ["../outside.jsonl", "export/../../outside.jsonl", "/tmp/outside.jsonl", "..\\outside.jsonl",
     "C:/outside.jsonl"],
)  # fmt: skip
def test_a_zip_with_names_leading_outside_it_is_refused_unpacked(
    empty_database_url: str, tmp_path: Path, private_temp: Path, name: str
) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(SEED_ITEM / "dublin_core.xml", "item_000/dublin_core.xml")
        zipped.write(SEED_ITEM / "handle", "item_000/handle")
        zipped.writestr(name, json.dumps(SEED_RECORD | {"id": "evil"}) + "\n")
    assert refused(empty_database_url, tmp_path, archive) == [
        f"{archive}!{name}: a name leading outside the archive: the archive is not unpacked"
    ]
    assert sorted(p.name for p in tmp_path.rglob("outside.jsonl")) == []
    assert list(private_temp.iterdir()) == []


def test_a_zip_with_a_symbolic_link_is_refused(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(SEED_ITEM / "dublin_core.xml", "item_000/dublin_core.xml")
        link = zipfile.ZipInfo("item_000/handle")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(link, "/etc/hostname")
    assert refused(empty_database_url, tmp_path, archive) == [
        f"{archive}!item_000/handle: a symbolic link: the archive is not unpacked"
    ]


def test_a_zip_naming_a_file_twice_is_refused(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    """Two members `item_000/handle`: which one is the item's would depend on the order
    of unpacking."""
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zipped, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate it writes
        zipped.write(SEED_ITEM / "dublin_core.xml", "item_000/dublin_core.xml")
        zipped.writestr("item_000/handle", "10722/1\n")
        zipped.writestr("item_000/handle", "10722/2\n")
    assert refused(empty_database_url, tmp_path, archive) == [
        f"{archive}!item_000/handle: a name given twice: the archive is not unpacked"
    ]
    assert list(private_temp.iterdir()) == []


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    """50 MB of zeros packed into some 50 KB, under a limit of 10 MB; then the same limit
    on the number of files."""
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
        zipped.write(SEED_ITEM / "dublin_core.xml", "item_000/dublin_core.xml")
        zipped.write(SEED_ITEM / "handle", "item_000/handle")
        zipped.writestr("item_000/zeros.bin", bytes(50_000_000))
    assert archive.stat().st_size < 100_000
    declared = 50_000_000 + sum(
        (SEED_ITEM / n).stat().st_size for n in ("dublin_core.xml", "handle")
    )
    assert refused(empty_database_url, tmp_path, archive, max_archive_bytes=10_000_000) == [
        f"{archive}: unpacks to {declared:,} bytes, over the limit of 10,000,000 ([limits] "
        "max_archive_bytes): not unpacked (a zip bomb, or an export to unpack and load as a "
        "folder)"
    ]
    assert refused(empty_database_url, tmp_path, archive, max_archive_entries=2) == [
        f"{archive}: 3 files and folders, over the limit of 2 ([limits] max_archive_entries): "
        "not unpacked"
    ]
    assert list(private_temp.iterdir()) == []


def test_a_zip_member_bigger_than_it_declares_is_refused(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    """A forged size (1,000 bytes declared, 10 MB packed): never unpacked past what it
    declares, and its check sum fails there."""
    archive = tmp_path / "forged.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("records.jsonl", bytes(10_000_000))
    data = bytearray(archive.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 1000)
    struct.pack_into("<I", data, central + 24, 1000)
    archive.write_bytes(bytes(data))
    assert refused(empty_database_url, tmp_path, archive) == [
        f"{archive}!records.jsonl: not a readable zip archive: Bad CRC-32 for file 'records.jsonl'"
    ]
    assert list(private_temp.iterdir()) == []


def test_a_zip_that_is_not_an_export_is_an_error(
    empty_database_url: str, tmp_path: Path, private_temp: Path
) -> None:
    archive = tmp_path / "export.zip"
    archive.write_text("not a zip\n", "utf-8")
    assert refused(empty_database_url, tmp_path, archive) == [
        f"{archive}: not a readable zip archive: File is not a zip file"
    ]
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("__MACOSX/._records.jsonl", APPLE_DOUBLE)
        zipped.writestr("notes.txt", "nothing to load\n")
    assert refused(empty_database_url, tmp_path, archive) == [
        f"{archive}: no .json, .jsonl, DSpace metadata .csv or DSpace structure export .xml "
        "files and no DSpace item folders in this archive"
    ]
    assert list(private_temp.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "default"), [("max_archive_bytes", 8_589_934_592), ("max_archive_entries", 1_000_000)]
)
def test_archive_limits_are_settings(tmp_path: Path, key: str, default: int) -> None:
    assert getattr(load_settings(environ={}), key) == default
    config = tmp_path / "site.toml"
    config.write_text(f"[limits]\n{key} = 0\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"{config}: limits.{key}: must be 1 or more, got 0")
    ):
        load_settings(environ={"OAIPMH_CONFIG": str(config)})


# --- member names as desktop archivers write them ---------------------------------------------

# A thesis's bitstreams: a dash DSpace keeps as written, a colon, an accent; and names an
# old Windows tool can write in CP437 (which has no dash).
DESKTOP_NAMES = ("Movement I\u2013II.pdf", "Figure 1: map.pdf", "R\u00e9sum\u00e9.pdf")
CP437_NAMES = ("Figure 1: map.pdf", "R\u00e9sum\u00e9.pdf", "\u00dcbersicht \u00f1 2.pdf")


def zip_as_written(folder: Path, archive: Path, encoding: str, *, flag: bool) -> Path:
    """`folder` zipped with its names in `encoding`, the UTF-8 flag set or not, as an
    archiver writes them: macOS Finder and 7-Zip write UTF-8 without the flag, old Windows
    tools CP437 without it. zipfile itself sets the flag on any name not ASCII, so a name
    is written as a stand-in of the same length and its bytes put in place after."""
    stand_ins: dict[bytes, bytes] = {}
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
        for number, path in enumerate(sorted(folder.rglob("*"))):
            name = path.relative_to(folder).as_posix()
            written = name.encode(encoding)
            stand_in = name if flag else f"{number:04d}".ljust(len(written), "#")
            stand_ins[stand_in.encode("ascii", "replace")] = written
            zipped.write(path, stand_in)
    data = archive.read_bytes()
    if not flag:
        for stand_in, written in stand_ins.items():
            assert data.count(stand_in) == 2  # the local header's and the central directory's
            data = data.replace(stand_in, written)
    archive.write_bytes(data)
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():  # zipfile sets the flag only on names not ASCII
            assert bool(info.flag_bits & 0x800) == (flag and not info.filename.isascii())
    return archive


@pytest.mark.parametrize(
    ("encoding", "flag", "names"),
    [("utf-8", False, DESKTOP_NAMES), ("utf-8", True, DESKTOP_NAMES),
     ("cp437", False, CP437_NAMES)],
    ids=["Finder or 7-Zip: UTF-8 without the flag", "UTF-8 with the flag", "CP437"],
)  # fmt: skip
def test_zip_member_names_are_read_as_the_archiver_wrote_them(
    empty_database_url: str,
    tmp_path: Path,
    private_temp: Path,
    encoding: str,
    flag: bool,
    names: tuple[str, ...],
) -> None:
    from oaipmh_server.store import SqlStore

    from .conftest import SECRET

    export = tmp_path / "export"
    folder = seed_export(export)
    for name in names:
        (folder / name).write_bytes(name.encode("utf-8"))
    (folder / "contents").write_text("".join(f"{n}\tbundle:ORIGINAL\n" for n in names))
    archive = zip_as_written(export, tmp_path / "thesis.zip", encoding, flag=flag)
    summary = load_into(empty_database_url, archive)
    assert (summary.added, summary.rejected) == (1, 0)
    store = SqlStore(empty_database_url, token_secret=SECRET)
    try:
        files = store.get_files(SEED_HANDLE)
    finally:
        store.close()
    assert [(f.name, f.size) for f in files] == [(n, len(n.encode())) for n in names]
    assert list(private_temp.iterdir()) == []


def test_a_zip_member_name_not_utf_8_is_cp437(tmp_path: Path) -> None:
    """Without the flag, a name that is valid UTF-8 is UTF-8 (accents and dashes alike), and
    bytes that are not (`R\\x82sum\\x82`, an old Windows zip) are CP437."""
    from oaipmh_server.ingest.archive import member_name

    folder = tmp_path / "item"
    folder.mkdir()
    (folder / "R\u00e9sum\u00e9 \u2013 I.pdf").write_bytes(b"x")
    (folder / "Movement I\u2013II.pdf").write_bytes(b"y")
    with zipfile.ZipFile(zip_as_written(folder, tmp_path / "a.zip", "utf-8", flag=False)) as z:
        assert [member_name(i) for i in z.infolist()] == [
            "Movement I\u2013II.pdf",
            "R\u00e9sum\u00e9 \u2013 I.pdf",
        ]
    (folder / "R\u00e9sum\u00e9 \u2013 I.pdf").unlink()
    (folder / "Movement I\u2013II.pdf").unlink()
    (folder / "R\u00e9sum\u00e9 \u00f1 1.pdf").write_bytes(b"x")  # CP437 has all three
    with zipfile.ZipFile(zip_as_written(folder, tmp_path / "b.zip", "cp437", flag=False)) as z:
        assert [i.filename.encode("cp437") for i in z.infolist()] == [b"R\x82sum\x82 \xa4 1.pdf"]
        assert [member_name(i) for i in z.infolist()] == ["R\u00e9sum\u00e9 \u00f1 1.pdf"]


# --- withdrawn items ---------------------------------------------------------------------------
# DSpace writes no withdrawn flag into an item export, but withdrawing an item adds a
# provenance note that begins "Item withdrawn by NAME (EMAIL) on DATE", and reinstating it
# one that begins "Item reinstated by …" (ItemServiceImpl.withdraw and .reinstate, the same
# words since DSpace 1.x); dublin_core.xml carries every dc.description.provenance value.
SUBMITTED = "Submitted by Jane Doe (jane@example.org) on 2015-07-20T10:00:00Z\nNo. of bitstreams: 1"
WITHDRAWN = (
    "Item withdrawn by Rita Admin (rita@example.org) on {}\nItem was in collections:\n"
    "Articles (ID: 5)\nNo. of bitstreams: 1"
)
REINSTATED = (
    "Item reinstated by Rita Admin (rita@example.org) on {}\nItem was in collections:\n"
    "Articles (ID: 5)\nNo. of bitstreams: 1"
)


def with_provenance(folder: Path, *notes: str) -> None:
    """`notes` added to the item's dublin_core.xml, as DSpace adds them, in that order."""
    dublin_core = folder / "dublin_core.xml"
    values = "".join(
        f'  <dcvalue element="description" qualifier="provenance" language="en">{n}</dcvalue>\n'
        for n in notes
    )
    dublin_core.write_text(
        dublin_core.read_text().replace("</dublin_core>", values + "</dublin_core>")
    )


def served_as(url: str, local_id: str) -> tuple[bool, list[str]]:
    """Whether the record is a tombstone, and its sets."""
    record = records_table.c.local_id == local_id
    ((deleted,),) = fetch(url, select(records_table.c.deleted).where(record))
    member = memberships_table.c.local_id == local_id
    sets = fetch(url, select(memberships_table.c.set_spec).where(member))
    return bool(deleted), sorted(s for (s,) in sets)


@pytest.mark.parametrize(
    ("notes", "deleted"),
    [
        pytest.param([SUBMITTED], False, id="never-withdrawn"),
        pytest.param([SUBMITTED, WITHDRAWN.format("2019-03-01T09:00:00Z")], True, id="withdrawn"),
        pytest.param(
            [
                SUBMITTED,
                WITHDRAWN.format("2019-03-01T09:00:00Z"),
                REINSTATED.format("2019-04-02T09:00:00Z"),
            ],
            False,
            id="reinstated",
        ),
        pytest.param(
            [
                SUBMITTED,
                WITHDRAWN.format("2019-03-01T09:00:00Z"),
                REINSTATED.format("2019-04-02T09:00:00Z"),
                WITHDRAWN.format("2020-01-05T09:00:00Z"),
            ],
            True,
            id="withdrawn-again",
        ),
        pytest.param(
            [
                SUBMITTED,
                REINSTATED.format("2019-04-02T09:00:00Z"),
                WITHDRAWN.format("2019-03-01T09:00:00Z"),
            ],
            False,
            id="notes-out-of-order",
        ),
    ],
)
def test_an_item_export_of_a_withdrawn_item_is_a_tombstone(
    empty_database_url: str, tmp_path: Path, notes: list[str], deleted: bool
) -> None:
    """`dspace export -t ITEM` of a withdrawn item (a collection's export leaves such items
    out) was loaded live, so a harvester saw an item its repository withdrew. As DSpace's
    own OAI does, a withdrawn item is served as deleted, in its collection's set; the last
    of its withdrawn and reinstated notes, by date, decides."""
    folder = seed_export(tmp_path / "export")
    with_provenance(folder, *notes)
    load_into(empty_database_url, folder)
    assert served_as(empty_database_url, SEED_HANDLE) == (deleted, ["col_10722_5"])


def test_an_item_withdrawn_since_its_last_load_is_served_as_deleted_from_then_on(
    empty_database_url: str, tmp_path: Path
) -> None:
    """The next export of an item withdrawn since: its record becomes a tombstone dated by
    that load, so an incremental harvest from the last one lists the deletion."""
    folder = seed_export(tmp_path / "export")
    with_provenance(folder, SUBMITTED)
    load_into(empty_database_url, folder, clock=lambda: LOADED)
    with_provenance(folder, WITHDRAWN.format("2019-03-01T09:00:00Z"))
    later = LOADED + timedelta(days=1)
    load_into(empty_database_url, folder, clock=lambda: later)
    assert served_as(empty_database_url, SEED_HANDLE) == (True, ["col_10722_5"])
    ((datestamp,),) = fetch(
        empty_database_url,
        select(records_table.c.datestamp).where(records_table.c.local_id == SEED_HANDLE),
    )
    assert datestamp.replace(tzinfo=UTC) == later
