"""Whether a relative name from someone else's export (a bitstream in `contents`, a member
of a zip) stays inside the folder it is read from.

A name may hold any character DSpace allows in a bitstream's name: `Figure 1: map.pdf`
is an ordinary name, written by DSpace's export and read by its import. What leads
outside is a place, not a character: an absolute path, a Windows drive at the start
(`C:\\`, `C:/`), a `..` segment. `\\` separates as `/` does, as DSpace's import reads
names written on Windows."""

from __future__ import annotations

import re

# A drive at the start of a name, followed by a separator: `C:\x` and `C:/x` are absolute
# on Windows. `C:x` elsewhere than at the start, or a colon anywhere else, is a character.
DRIVE = re.compile(r"[A-Za-z]:[\\/]")


def segments(name: str) -> list[str]:
    """The folders and file of `name`, split at `/` and `\\`."""
    return name.replace("\\", "/").split("/")


def leading_outside(name: str) -> str | None:
    """What makes `name` lead outside its folder (an absolute path, a drive, a `..`
    segment), said for a message, or None."""
    if name.startswith(("/", "\\")):
        return "an absolute path"
    if DRIVE.match(name):
        return f"a Windows drive ({name[:3]}) at its start"
    if ".." in segments(name):
        return "a '..' segment"
    return None


def not_a_file_name(name: str) -> str | None:
    """What makes `name` no relative file name (leading outside, or an empty or `.`
    segment: `a//b.pdf`, `./b.pdf`, `a/`), said for a message, or None."""
    if not name:
        return "an empty name"
    outside = leading_outside(name)
    if outside is not None:
        return outside
    parts = segments(name)
    if "" in parts:
        return "an empty segment"
    if "." in parts:
        return "a '.' segment"
    return None
