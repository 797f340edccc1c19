"""The store's modules stay rooms of one concern each (issue 23): none over 600 lines,
each saying what it holds, and the package's __init__.py only handing names on."""

import ast
from pathlib import Path

import oaipmh_server.store

STORE = Path(oaipmh_server.store.__file__).parent
MODULES = sorted(STORE.glob("*.py"))


def test_every_store_module_is_at_most_600_lines_and_says_its_concern() -> None:
    assert len(MODULES) > 5
    for path in MODULES:
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 600, path.name
        assert ast.get_docstring(ast.parse(text)), path.name


def test_store_package_only_hands_names_on() -> None:
    tree = ast.parse((STORE / "__init__.py").read_text(encoding="utf-8"))
    body = tree.body[1:]  # after the docstring
    assert all(isinstance(node, ast.ImportFrom) for node in body[:-1])
    last = body[-1]
    assert isinstance(last, ast.Assign)
    assert [target.id for target in last.targets if isinstance(target, ast.Name)] == ["__all__"]
    assert all(hasattr(oaipmh_server.store, name) for name in oaipmh_server.store.__all__)
    for name in ("SqlStore", "LoadTransaction", "RecordState", "pack_fields", "unpack_fields"):
        assert name in oaipmh_server.store.__all__
