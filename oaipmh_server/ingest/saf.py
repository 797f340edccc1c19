"""DSpace Simple Archive Format: an export folder of item folders, each with
`dublin_core.xml`, optional `metadata_<schema>.xml`, `handle` and `collections`.

The item's handle is its local id; a `dcvalue`'s `language` is kept as written (`en_US`),
its `authority` and `confidence` attributes (a controlled value: `authority="…"
confidence="600"`) as the value's authority and confidence. Its collections (handles such
as `10722/5`) become set specs the DSpace way (`col_10722_5`). Problems name the item
folder.

Nothing outside the item folder is read: an export is someone else's folder, and a file in
it may be a symbolic link to anything the loading user can read (`handle` →
`/proc/self/environ`, `dublin_core.xml` → another item's or another system's file). Each
file is resolved first, and one that leads outside the item folder is refused unread.

Bitstreams are the files the item's `contents` file lists, read as DSpace's import reads
them (ItemImportServiceImpl.processContentsFile and processOptions): one bitstream a line
(blank lines skipped), its name up to the first tab, then tab-separated options in any
order: `bundle:NAME` (default ORIGINAL, LICENSE for `license.txt`), `permissions:-r
'Group'` or `-w 'Group'`, `description:TEXT`, `primary:true` (DSpace's iiif-* options are
read past). A name with `/` is a file in a sub-folder (`chapters/one.pdf`): such
sub-folders are the item's, never searched for records or items (inputs.py's walk stops at
an item folder). Each file's size, MD5 (DSpace's checksum) and MIME type (mime.py) are
kept with the record; its sequence number is its place among the lines. A file listed but
missing, or leading outside the item folder, or with a bundle or permissions holding a
character XML cannot carry (refused as JSON's are), is an error naming CONTENTS:LINE, the
item and what is wrong (names.py: any character DSpace allows is a name's, `:` included); a
file present but not listed is ignored, as DSpace ignores it; an item folder with files
beside its metadata but no `contents` is refused, as DSpace refuses it ("No contents file
found"). A `-r -s N -f PATH` line (a bitstream DSpace registers from its own
assetstore) names no file of the export and is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from ..datestamps import parse_record_date
from ..errors import LoadError, quoted
from ..files import ORIGINAL, access_of
from ..names import not_a_file_name, segments
from ..record_source import File
from ..xml import clean_text, has_illegal_characters
from .archive import DEBRIS, is_apple_double
from .drafts import CONFIDENCE_RANGE, Limits, Source, draft_or_error, too_big
from .export_xml import DOCTYPE, has_doctype, parse, whole_text
from .json import Item
from .mime import mime_type

DUBLIN_CORE = "dublin_core.xml"
# The files DSpace writes in every item folder beside dublin_core.xml: a folder holding one
# of them is an item folder, whether or not its dublin_core.xml is there.
ITEM_FILES = ("handle", "contents", "collections")
# A handle or collections file is a few handles; one bigger than this is something else.
SMALL_FILE = 64 * 1024
INTEGER = re.compile(r"[+-]?[0-9]{1,10}", re.ASCII)
CONTENTS = "contents"
LICENSE_NAME = "license.txt"  # DSpace puts it in the LICENSE bundle when none is named
# Files DSpace's import expects beside the metadata without a `contents` file.
METADATA_FILES = frozenset({DUBLIN_CORE, "handle", "collections", "relationships"})
CHUNK = 1024 * 1024
# Where Java's readLine, which DSpace reads `contents` with, ends a line (str.splitlines
# ends one at U+2028, U+0085 … too, which a bitstream's name may hold).
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def is_item_folder(folder: Path) -> bool:
    return (folder / DUBLIN_CORE).is_file()


def lacks_dublin_core(folder: Path) -> str | None:
    """The DSpace item file (`handle`, `contents`, `collections`) that makes `folder` an
    item folder although it has no dublin_core.xml, or None. DSpace's import refuses such
    an item (its metadata is dublin_core.xml), so a load must not skip it without a word:
    the record would silently be missing from the repository."""
    if os.path.lexists(folder / DUBLIN_CORE):
        return None
    return next((name for name in ITEM_FILES if os.path.lexists(folder / name)), None)


def without_dublin_core(folder: Path, found: str) -> LoadError:
    return LoadError(
        str(folder), None, None,
        f"an item folder (it holds {found}) without {DUBLIN_CORE}: its record cannot be read",
    )  # fmt: skip


def collection_spec(handle: str) -> str:
    """DSpace names a collection's set after its handle, only "/" replaced (a setSpec may
    hold "."): `10722/5` → `col_10722_5`, `20.500.12801/3` → `col_20.500.12801_3`.
    ValueError for one with a ":" (a handle URL, say): the spec made of it would nest the
    set in another (`col_https` : `__hdl.handle.net_10722_5`)."""
    if ":" in handle:
        raise ValueError(
            f"{quoted(handle.strip())} is not a handle such as 10722/5: its ':' would make the "
            "set's spec nest it in another"
        )
    return "col_" + handle.strip().replace("/", "_")


def leads_outside(path: Path, root: Path) -> bool:
    """Whether `path`, links followed, is somewhere other than inside `root` (resolved); a
    loop of links leads nowhere inside it."""
    try:
        return not path.resolve().is_relative_to(root)
    except (RuntimeError, OSError):  # Python 3.11 says RuntimeError for a loop
        return True


def read_saf_item(folder: Path, *, require_accessioned: bool, limits: Limits) -> Iterator[Item]:
    name = str(folder)
    root = folder.resolve()
    handle_file = folder / "handle"
    files = [handle_file, folder / "collections", folder / DUBLIN_CORE]
    files += sorted(folder.glob("metadata_*.xml"))
    for path in files:
        if path.is_symlink() and leads_outside(path, root):
            yield LoadError(
                name, None, None, f"{path.name}: a symbolic link leading outside the item folder: "
                "not read"
            )  # fmt: skip
            return
    try:
        local_id = _small_text(handle_file).strip() if handle_file.is_file() else None
    except ValueError as e:
        yield LoadError(name, None, None, f"handle: {e}")
        return
    if not local_id:
        yield LoadError(name, None, None, "no handle file: the handle is the record's id")
        return
    try:
        size = sum(path.stat().st_size for path in files[2:])
    except OSError as e:
        yield LoadError(name, None, local_id, f"cannot read the item's files: {e.strerror}")
        return
    if size > limits.max_record_bytes:  # too big to parse: not even tried
        yield LoadError(name, None, local_id, too_big(size, limits))
        return
    fields: list[tuple[Any, ...]] = []
    for path in files[2:]:
        try:
            fields += _values(path)
        except etree.XMLSyntaxError as e:  # its msg: str(e) names the parser's input again
            where = f"{path.name}:{e.lineno}" if e.lineno else path.name
            yield LoadError(name, None, local_id, f"{where}: {e.msg}")
            return
        except ValueError as e:
            yield LoadError(name, None, local_id, f"{path.name}: {e}")
            return
        except OSError as e:
            yield LoadError(
                name, None, local_id, f"{path.name}: cannot read the file: {e.strerror}"
            )
            return
    collections = folder / "collections"
    sets = []
    if collections.is_file():
        try:
            sets = [collection_spec(h) for h in _small_text(collections).split()]
        except ValueError as e:
            yield LoadError(name, None, local_id, f"collections: {e}")
            return
    bitstreams = read_contents(folder, root, local_id, limits)
    if isinstance(bitstreams, LoadError):
        yield bitstreams
        return
    yield draft_or_error(
        Source(name, None),
        local_id,
        sets,
        withdrawn(fields),
        fields,
        require_accessioned=require_accessioned,
        limits=limits,
        files=bitstreams,
    )


PROVENANCE = "dc.description.provenance"
# The first line of the note DSpace adds on withdrawing or reinstating an item
# (ItemServiceImpl.withdraw, .reinstate; the same words since DSpace 1.x).
WITHDRAW_NOTE = re.compile(r"Item (withdrawn|reinstated) by .* on (\S+)")


def withdrawn(fields: list[tuple[Any, ...]]) -> bool:
    """Whether the item was withdrawn when it was exported. An item export writes no such
    flag (and `dspace export -t ITEM` exports a withdrawn item, which a collection's export
    leaves out), but withdrawing and reinstating each add a provenance note: the latest by
    its date decides (by its place, if a date cannot be read). DSpace's own OAI serves a
    withdrawn item as deleted, and so does this server (a tombstone, in its sets)."""
    notes: list[tuple[str, str, int]] = []
    for place, (name, value, *_) in enumerate(fields):
        if name == PROVENANCE and isinstance(value, str):
            m = WITHDRAW_NOTE.match(value)
            if m is not None:
                notes.append((m.group(1), m.group(2), place))
    if not notes:
        return False
    try:
        dated = [(parse_record_date(when), place, kind) for kind, when, place in notes]
    except ValueError:
        return notes[-1][0] == "withdrawn"
    return max(dated)[2] == "withdrawn"


def read_contents(
    folder: Path, root: Path, local_id: str, limits: Limits
) -> tuple[File, ...] | LoadError:
    """The item's bitstreams as its `contents` file lists them (see the module's docstring)."""
    contents = folder / CONTENTS
    if not os.path.lexists(contents):
        extra = _unlisted(folder)
        if extra is not None:
            return LoadError(
                str(folder), None, local_id,
                f"{extra} beside the metadata but no {CONTENTS} file listing the item's "
                "bitstreams (DSpace's import refuses such an item too)",
            )  # fmt: skip
        return ()
    where = str(contents)
    if contents.is_symlink() and leads_outside(contents, root):
        return LoadError(where, None, local_id,
                         "a symbolic link leading outside the item folder: not read")  # fmt: skip
    try:
        with contents.open("rb") as handle:
            data = handle.read(limits.max_record_bytes + 1)
    except OSError as e:
        return LoadError(where, None, local_id, f"cannot read the file: {e.strerror}")
    if len(data) > limits.max_record_bytes:
        return LoadError(where, None, local_id, too_big(len(data), limits))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return LoadError(where, data[: e.start].count(b"\n") + 1, local_id, "not UTF-8 text")
    files: list[File] = []
    for number, line in enumerate(LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        if len(files) >= limits.max_values:
            reason = (
                f"more than {limits.max_values:,} bitstreams, over the limit of values "
                "([limits] max_values)"
            )
            return LoadError(where, number, local_id, reason)
        try:
            files.append(_bitstream(folder, root, line, len(files) + 1))
        except ValueError as e:
            return LoadError(where, number, local_id, str(e))
    return tuple(files)


def _bitstream(folder: Path, root: Path, line: str, sequence: int) -> File:
    """One line of `contents`: the bitstream it names, read. ValueError saying what is wrong."""
    if line.strip().startswith("-r "):
        raise ValueError(
            "a registered bitstream (-r -s N -f PATH): its file is in DSpace's assetstore, "
            "not in the export, so it cannot be read"
        )
    name, tab, rest = line.partition("\t")
    options = _options("\t" + rest) if tab else {}
    wrong = not_a_file_name(name)
    if wrong is not None:
        raise ValueError(f"bitstream {quoted(name)}: {wrong}: not a name inside the item folder")
    if has_illegal_characters(name):
        raise ValueError(f"bitstream {quoted(name)}: a name with characters XML cannot carry")
    path = folder / name
    if leads_outside(path, root):
        what = "a symbolic link leading" if _is_link(folder, name) else "leads"
        raise ValueError(f"bitstream {quoted(name)}: {what} outside the item folder: not read")
    try:
        is_file = path.is_file()
    except OSError as e:  # not "no such file": a name too long, say, which is_file raises
        raise ValueError(f"bitstream {quoted(name)}: cannot read it: {e.strerror}") from None
    if not is_file:
        missing = "not a file" if os.path.lexists(path) else "no such file in the item folder"
        raise ValueError(f"bitstream {quoted(name)}: {missing}")
    bundle = options.get("bundle", "").strip()
    if not bundle:
        bundle = "LICENSE" if name == LICENSE_NAME else ORIGINAL
    permissions = options.get("permissions")
    permissions = permissions.strip() if permissions is not None else None
    # Names and codes, not text (a description is cleaned as values are): refused with a
    # character XML cannot carry, as JSON's "bundle" and "permissions" are (json._json_file).
    for option, found in (("bundle", bundle), ("permissions", permissions)):
        if found and has_illegal_characters(found):
            reason = f"{option} {quoted(found)} has characters XML cannot carry"
            raise ValueError(f"bitstream {quoted(name)}: {reason}")
    size, md5 = _size_and_md5(path)
    description = clean_text((options.get("description") or "").strip()) or None
    return File(
        name=name,
        bundle=bundle,
        size=size,
        md5=md5,
        mime=mime_type(name),
        sequence=sequence,
        description=description,
        primary="\tprimary:true" in line,
        access=access_of(permissions),
        permissions=permissions or None,
    )


def _is_link(folder: Path, name: str) -> bool:
    """Whether the bitstream `name`, or a folder on its way, is a symbolic link."""
    path = folder
    for part in segments(name):
        path = path / part
        if path.is_symlink():
            return True
    return False


def _options(rest: str) -> dict[str, str]:
    """The options of a `contents` line after its name: each option DSpace looks for, from
    its marker (`\tbundle:`…, the first one) to the next tab, as DSpace cuts them."""
    found = {}
    for option in ("bundle", "permissions", "description"):
        marker = f"\t{option}:"
        start = rest.find(marker)
        if start < 0:
            continue
        end = rest.find("\t", start + 1)
        found[option] = rest[start + len(marker) : end if end >= 0 else len(rest)]
    return found


def _size_and_md5(path: Path) -> tuple[int, str]:
    """A bitstream's size and MD5 (DSpace's default checksum algorithm), read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise ValueError(f"bitstream {quoted(path.name)}: cannot read it: {e.strerror}") from None
    return size, digest.hexdigest()


def _unlisted(folder: Path) -> str | None:
    """A file or folder of the item folder that is neither metadata nor debris, or None."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return None
    for entry in entries:
        if entry in METADATA_FILES or entry in DEBRIS:
            continue
        if entry.startswith("metadata_") and entry.endswith(".xml"):
            continue
        if is_apple_double(folder / entry):
            continue
        return entry
    return None


def _small_text(path: Path) -> str:
    """A `handle` or `collections` file: a few lines of UTF-8 text. ValueError, with
    nothing of its content, for one that is not (and its first SMALL_FILE bytes are all
    that is ever read of it)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(SMALL_FILE + 1)
    except OSError as e:
        raise ValueError(f"cannot read the file: {e.strerror}") from None
    if len(data) > SMALL_FILE:
        raise ValueError(f"more than {SMALL_FILE:,} bytes: not a list of handles")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"line {line}: not UTF-8 text") from None


def _values(path: Path) -> list[tuple[Any, ...]]:
    """(field, value, language) of one dublin_core.xml or metadata_<schema>.xml, in order;
    (field, value, language, authority, confidence) for a value with either attribute."""
    document = parse(path)
    root = document.getroot()
    if root.tag != "dublin_core":
        raise ValueError(f"the root element is <{root.tag}>, not <dublin_core>")
    schema = root.get("schema", "dc")
    values: list[tuple[Any, ...]] = []
    for value in root.iter("dcvalue"):
        element = value.get("element")
        if not element:
            raise ValueError(f"line {value.sourceline}: a dcvalue without element")
        qualifier = value.get("qualifier")
        field = f"{schema}.{element}"
        if qualifier and qualifier != "none":
            field += f".{qualifier}"
        what = f"dcvalue {field}"
        authority, confidence = value.get("authority"), value.get("confidence")
        if authority is None and confidence is None:
            values.append((field, whole_text(value, what), value.get("language")))
        else:
            values.append((field, whole_text(value, what), value.get("language"), authority,
                           _confidence(value, field, confidence)))  # fmt: skip
    if has_doctype(document):  # after the values: an entity reference is named at its line
        raise ValueError(DOCTYPE)
    return values


def _confidence(value: etree._Element, field: str, confidence: str | None) -> int | None:
    """A dcvalue's `confidence` attribute: an integer of DSpace's scale, or ValueError
    naming its line."""
    if confidence is None:
        return None
    number = int(confidence) if INTEGER.fullmatch(confidence.strip()) else None
    if number is None or number not in CONFIDENCE_RANGE:
        raise ValueError(
            f"line {value.sourceline}: dcvalue {field}: confidence {quoted(confidence)} is not "
            "an integer of DSpace's scale (-1 unset, 0 no value, 100 rejected … 600 accepted)"
        )
    return number
