"""Every module of the package is a room of one concern (issue 23): at most 600 lines, and
its docstring's first line says what it holds, so a newcomer can place each file by
reading its top."""

import ast
from pathlib import Path

import pytest

import oaipmh_server

PACKAGE = Path(oaipmh_server.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))
MOST_LINES = 600


def _problems(path: Path) -> list[str]:
    """What keeps the module at `path` from being a room: too long, no docstring at its
    top, or a docstring whose first line is empty."""
    text = path.read_text(encoding="utf-8")
    problems = []
    lines = len(text.splitlines())
    if lines > MOST_LINES:
        problems.append(f"{lines} lines, over {MOST_LINES}")
    docstring = ast.get_docstring(ast.parse(text, str(path)), clean=False)
    if not docstring or not docstring.strip():
        problems.append("no docstring at its top")
    elif not docstring.splitlines()[0].strip():
        problems.append("its docstring's first line is empty")
    return problems


def test_every_module_is_at_most_600_lines_and_says_its_concern_first() -> None:
    assert len(MODULES) > 50  # the whole package, subpackages too
    found = {
        str(path.relative_to(PACKAGE)): problems
        for path in MODULES
        if (problems := _problems(path))
    }
    assert found == {}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('"""A room."""\n' + "x = 1\n" * 600, "601 lines, over 600"),
        ("import os\n", "no docstring at its top"),
        ('import os\n"""Not the module\'s docstring."""\n', "no docstring at its top"),
        ('"""\n\n"""\n', "no docstring at its top"),
        ('"""\n    \n    Its concern, too late."""\n', "its docstring's first line is empty"),
    ],
)
def test_a_module_that_is_no_room_is_found(text: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    path.write_text(text, encoding="utf-8")
    assert _problems(path) == [problem]


def test_a_room_passes(tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    path.write_text('"""Its concern.\n\nWhy it is so."""\n' + "x = 1\n" * 595, encoding="utf-8")
    assert _problems(path) == []
