"""A .zip of an export (DSpace's `export -z`, or a folder zipped by hand or by a Mac's
Archive Utility), unpacked into a private temporary folder that the load reads like the
folder and removes after it.

A zip is someone else's file, like an export folder, and nothing it holds may land
outside that temporary folder or fill the disk. So, before anything is unpacked:
- a member whose name leads outside the archive (`../x`, `/etc/x`, `C:/x`, with `/` or
  `\\` between the parts, as DSpace's own import reads them) refuses the archive; so
  does a symbolic link (unpacked, it would lead anywhere; DSpace writes none), and a name
  given twice;
- a zip declaring more than [limits] max_archive_bytes unpacked (all members together) or
  more than max_archive_entries members is refused: a zip bomb packs terabytes, or
  millions of files, into a few kilobytes.
A member's name is read as the archiver meant it (member_name): UTF-8 when the zip's
UTF-8 flag says so; without the flag, as UTF-8 if it is valid UTF-8 (macOS Finder and 7-Zip
write UTF-8 names without setting the flag, and zipfile would read `I–II` as `IΓÇôII`, no
longer the name `contents` lists), else as CP437, the format's own default.
While unpacking, no member gives more than it declares (zipfile stops there, and a
damaged or forged member fails its CRC check). `__MACOSX/` and `.DS_Store` are not
unpacked (inputs.py skips DEBRIS). Places inside the archive are named `ARCHIVE.zip!MEMBER`.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import LoadError
from ..names import leading_outside, segments
from .drafts import Limits

SEPARATOR = "!"
CHUNK = 1024 * 1024
UTF8_FLAG = 0x800  # general purpose bit 11: the name (and comment) are UTF-8
# What macOS leaves in folders it has shown (Finder's .DS_Store) and in the zips it makes
# (__MACOSX/, resource forks mirroring every file as `._NAME`): never part of an export,
# never unpacked, and ignored wherever they are in a folder (inputs.py): a
# `__MACOSX/item_000/._records.json` is not a record file.
DEBRIS = frozenset({"__MACOSX", ".DS_Store"})
# How an AppleDouble file (`._NAME`, a resource fork macOS writes beside a file on a disk
# or in a tar that cannot hold it) begins: such a file is debris too, wherever it is.
APPLE_DOUBLE = b"\x00\x05\x16\x07"


def is_apple_double(path: Path) -> bool:
    """Whether `path` (a file, not a link) is macOS's `._NAME` resource fork: named so and
    beginning as one, so a `._records.jsonl` someone wrote is still read."""
    if not path.name.startswith("._"):
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(len(APPLE_DOUBLE)) == APPLE_DOUBLE
    except OSError:
        return False  # read, then, to report why it cannot be


def is_zip(path: Path) -> bool:
    """A .zip (or .ZIP, as Windows names it) given to load: an archive of an export."""
    return path.suffix.lower() == ".zip"


def member_parts(name: str) -> tuple[str, ...] | None:
    """The folders and file of a member's name, or None for a name leading outside the
    archive. `\\` separates as `/` does (zips made on Windows); `.` and empty parts are
    nothing."""
    if leading_outside(name) is not None:
        return None
    return tuple(p for p in segments(name) if p not in ("", "."))


def member_name(info: zipfile.ZipInfo) -> str:
    """A member's name (see the module's docstring). zipfile reads a name without the
    UTF-8 flag as CP437, which gives every byte a character: encoded back, those are the
    bytes the archiver wrote."""
    if info.flag_bits & UTF8_FLAG:
        return info.filename
    written = info.filename.encode("cp437")
    try:
        return written.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


def unpack(archive: Path, into: Path, limits: Limits) -> LoadError | None:
    """Unpack `archive` into the (empty, private) folder `into`; the problem that stopped
    it, or None. On a problem `into` may hold part of the archive: its caller removes it."""
    name = str(archive)
    member = ""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            if len(members) > limits.max_archive_entries:
                return LoadError(
                    name, None, None,
                    f"{len(members):,} files and folders, over the limit of "
                    f"{limits.max_archive_entries:,} ([limits] max_archive_entries): "
                    "not unpacked",
                )  # fmt: skip
            declared = sum(m.file_size for m in members)
            if declared > limits.max_archive_bytes:
                return LoadError(
                    name, None, None,
                    f"unpacks to {declared:,} bytes, over the limit of "
                    f"{limits.max_archive_bytes:,} ([limits] max_archive_bytes): not unpacked "
                    "(a zip bomb, or an export to unpack and load as a folder)",
                )  # fmt: skip
            wanted: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
            seen: set[tuple[str, ...]] = set()
            for info in members:
                member = member_name(info)
                parts = member_parts(member)
                if parts is None:
                    return _refused(name, member, "a name leading outside the archive")
                if DEBRIS.intersection(parts) or not parts:
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    return _refused(name, member, "a symbolic link")
                if parts in seen and not info.is_dir():
                    return _refused(name, member, "a name given twice")
                seen.add(parts)
                wanted.append((info, parts))
            for info, parts in wanted:
                member = member_name(info)
                target = into.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, target.open("xb") as out:
                    written = 0
                    while chunk := source.read(CHUNK):
                        written += len(chunk)
                        if written > info.file_size:  # zipfile stops there: never reached
                            return _refused(name, member, "more bytes than it declares")
                        out.write(chunk)
    except zipfile.BadZipFile as e:
        where = f"{name}{SEPARATOR}{member}" if member else name
        return LoadError(where, None, None, f"not a readable zip archive: {e}")
    except (RuntimeError, NotImplementedError, EOFError, zlib.error) as e:
        # encrypted, a compression zipfile cannot read (Deflate64), cut short, damaged
        return LoadError(f"{name}{SEPARATOR}{member}", None, None, f"cannot unpack: {e}")
    except OSError as e:
        where = f"{name}{SEPARATOR}{member}" if member else name
        return LoadError(where, None, None, f"cannot unpack: {e.strerror or e}")
    return None


def _refused(archive: str, member: str, what: str) -> LoadError:
    return LoadError(
        f"{archive}{SEPARATOR}{member}", None, None, f"{what}: the archive is not unpacked"
    )


def shown(path: str, root: str, archive: Path) -> str:
    """A path inside the unpacked `root` as the place in the archive it came from."""
    if path == root:
        return str(archive)
    if path.startswith(root + "/"):
        return f"{archive}{SEPARATOR}{PurePosixPath(path[len(root) + 1 :])}"
    return path
