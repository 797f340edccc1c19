"""What a load reads: the files and folders given, found (and .zip exports unpacked),
then read in order into records, sets and problems."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from ..errors import LoadError, escaped
from .archive import DEBRIS, is_apple_double, is_zip, shown, unpack
from .drafts import Limits, Prepared
from .dspace_csv import read_csv_file
from .json import Item, read_json_file, read_jsonl_file
from .saf import (
    is_item_folder,
    lacks_dublin_core,
    leads_outside,
    read_saf_item,
    without_dublin_core,
)
from .structure import is_structure_file, read_structure_file, unreadable_root
from .workers import Workers

SUFFIXES = (".json", ".jsonl", ".csv")
FORMATS = ".json, .jsonl, DSpace metadata .csv or DSpace structure export .xml"
ZIP_IN_ZIP = "a .zip inside an archive is not unpacked: unpack the archive and load the folder"
NOTHING_HERE = f"no {FORMATS} files and no DSpace item folders in this folder"
NOT_A_FILE = "not a file or folder but a pipe, device or socket: not read"


def find_files(
    paths: Iterable[str | os.PathLike[str]], *, in_archive: bool = False
) -> tuple[list[Path], list[LoadError]]:
    """What to read: record files (.json, .jsonl, DSpace metadata .csv) and DSpace Simple
    Archive item folders (those holding a dublin_core.xml), given directly or found in the
    folders given, recursively, in name order, except that a folder's `sets.json` comes
    before everything else in it: records can then refer to the sets it defines (a DSpace
    export names collections, which the sets file places in the hierarchy).

    Symbolic links inside a folder are not followed: one leading outside the folder given
    is an error (an export must not publish what lies outside it), one leading inside it is
    skipped, since what it leads to is read where it is. A folder holding DSpace's item
    files but no dublin_core.xml is an error naming it; macOS debris (DEBRIS, AppleDouble
    `._NAME` files) is ignored. A `.zip` in a folder is an export, read as if it were given
    (DSpace's `export -z` leaves one in the folder it is told), except in an item folder
    (a bitstream) and `in_archive`, the folder an archive was unpacked into: an archive is
    unpacked once, so a zip in it is an error, not unpacked in turn."""
    found: list[Path] = []
    problems: list[LoadError] = []
    for given in paths:
        path = Path(given)
        if (error := _stat_error(path)) is not None:
            problems.append(LoadError.unreadable(str(path), error))
            continue
        if path.is_dir() and (item_file := lacks_dublin_core(path)) is not None:
            problems.append(without_dublin_core(path, item_file))
        elif path.is_dir() and not is_item_folder(path):
            inside, outside = _walk(path, in_archive)
            problems += outside
            if not inside and not outside:
                problems.append(LoadError(str(path), None, None, NOTHING_HERE))
            found += sorted(inside, key=lambda p: (p.parent, not _defines_sets(p), p.name))
        elif (
            path.is_dir()
            or (path.is_file() and (path.suffix in SUFFIXES or is_zip(path)))
            or _defines_sets(path)
        ):
            found.append(path)
        elif path.is_file():
            not_read = LoadError(str(path), None, None, f"not a {FORMATS} file")
            problems.append(unreadable_root(path) or not_read)
        elif path.exists():  # a pipe (load <(…)), a device, a socket
            problems.append(LoadError(str(path), None, None, NOT_A_FILE))
        else:
            problems.append(LoadError(str(path), None, None, "no such file or folder"))
    return found, problems


def _stat_error(path: Path) -> OSError | None:
    """Why `path` cannot be looked at, if it exists and cannot (a name too long, a folder
    on the way not searchable): pathlib's is_dir and is_file raise such errors, and say
    False only for one that does not exist (or is a loop of links)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # "no such file or folder", said where it is looked for
    except OSError as error:
        return error
    return None


def _walk(folder: Path, in_archive: bool = False) -> tuple[list[Path], list[LoadError]]:
    """Record files and item folders under `folder`, and a problem for each symbolic link
    leading outside it and each item folder without dublin_core.xml. Item folders are not
    searched: what is inside them (bitstreams too, in sub-folders when their names hold
    `/`) is the item's."""
    root = folder.resolve()
    found: list[Path] = []
    problems: list[LoadError] = []

    def unreadable(error: OSError) -> None:  # else os.walk skips the folder without a word
        problems.append(LoadError(error.filename, None, None, f"cannot read: {error.strerror}"))

    for parent, folders, files in os.walk(folder, onerror=unreadable):
        here = Path(parent)
        not_searched = set()
        for entry in sorted(folders + files):
            path = here / entry
            if entry in DEBRIS:
                not_searched.add(entry)
                continue
            try:
                if _take(path, here, folder, root, in_archive, found, problems):
                    not_searched.add(entry)
            except OSError as error:  # a link the file system cannot follow (EACCES, …)
                problems.append(LoadError(str(path), None, None, f"cannot read: {error.strerror}"))
                not_searched.add(entry)  # said once: os.walk would fail to list it again
        # Not into item folders (their files are the item's) nor debris; os.walk follows
        # no links.
        folders[:] = [f for f in folders if f not in not_searched]
    return found, problems


def _take(
    path: Path,
    here: Path,
    folder: Path,
    root: Path,
    in_archive: bool,
    found: list[Path],
    problems: list[LoadError],
) -> bool:
    """Add `path` to what is found or to the problems; True if the walk is not to go into
    it (an item folder, or a folder refused). OSError if the file system cannot even look
    at it."""
    if path.is_symlink():
        if (path.is_dir() or path.suffix in (*SUFFIXES, ".xml") or is_zip(path)) and leads_outside(
            path, root
        ):
            reason = f"a symbolic link leading outside {folder}: not read"
            problems.append(LoadError(str(path), None, None, reason))
        return False
    if path.is_file() and is_apple_double(path):
        return False
    if path.is_dir() and is_item_folder(path):
        found.append(path)
        return True
    elif path.is_dir() and (item_file := lacks_dublin_core(path)) is not None:
        problems.append(without_dublin_core(path, item_file))
        return True
    elif path.is_file() and is_zip(path) and not is_item_folder(here):
        if in_archive:
            problems.append(LoadError(str(path), None, None, ZIP_IN_ZIP))
        else:
            found.append(path)
    elif (
        path.is_file()
        and not is_item_folder(here)
        and (path.suffix in SUFFIXES or is_structure_file(path))
    ):
        found.append(path)
    return False


def read_items(
    sources: Sequence[Path],
    *,
    require_accessioned: bool,
    limits: Limits,
    workers: Workers | None = None,
    warnings: list[str] | None = None,
) -> Iterator[Item]:
    """Every file's records, sets and problems, in order. A file with none of them (empty,
    `[]`, a CSV header alone) adds a warning to `warnings`: it was meant to load something."""
    readers: dict[str, Callable[..., Iterator[Item]]] = {
        ".json": read_json_file,
        ".jsonl": read_jsonl_file if workers is None else workers.read_jsonl,
        ".csv": read_csv_file,
    }
    for path in sources:
        if is_zip(path) and path.is_file():
            yield from read_archive(
                path,
                require_accessioned=require_accessioned,
                limits=limits,
                workers=workers,
                warnings=warnings,
            )
            continue
        reader = read_saf_item if path.is_dir() else readers.get(path.suffix)
        if reader is None:  # a structure export, which may have something to say
            reader = partial(read_structure_file, warnings=warnings)
        empty = True
        for item in reader(path, require_accessioned=require_accessioned, limits=limits):
            empty = False
            yield item
        if empty and warnings is not None:
            warnings.append(
                f"{escaped(str(path))}: no records in this file: nothing loaded from it"
            )


def read_archive(
    archive: Path,
    *,
    require_accessioned: bool,
    limits: Limits,
    workers: Workers | None = None,
    warnings: list[str] | None = None,
) -> Iterator[Item]:
    """A .zip of an export, read as the folder it holds: unpacked (archive.py) into a
    private temporary folder, removed when the reading ends (or stops), its places named
    `ARCHIVE.zip!item_000`."""
    with tempfile.TemporaryDirectory(prefix="oaipmh-load-") as temporary:
        folder = Path(temporary)
        root = str(folder)
        problem = unpack(archive, folder, limits)
        if problem is not None:
            yield problem
            return
        found, problems = find_files([folder], in_archive=True)
        for problem in problems:
            reason = problem.reason.replace(
                NOTHING_HERE, NOTHING_HERE.replace("this folder", "this archive")
            )
            yield problem.elsewhere(
                shown(problem.path, root, archive), reason.replace(root, str(archive))
            )
        if problems:
            return
        notes: list[str] = []
        items = read_items(
            found,
            require_accessioned=require_accessioned,
            limits=limits,
            workers=workers,
            warnings=notes,
        )
        for item in items:
            if isinstance(item, LoadError):
                item = item.elsewhere(shown(item.path, root, archive), item.reason)
            elif isinstance(item, Prepared):
                item = item._replace(path=shown(item.path, root, archive))
            else:
                source = item.source
                item = replace(item, source=replace(source, path=shown(source.path, root, archive)))
            yield item
        if warnings is not None:
            shown_root = escaped(str(archive))
            warnings += [
                note.replace(escaped(root) + "/", shown_root + "!").replace(
                    escaped(root), shown_root
                )
                for note in notes
            ]


def _defines_sets(path: Path) -> bool:
    """A sets file or a DSpace structure export: read before the records beside it."""
    return path.name == "sets.json" or is_structure_file(path)
