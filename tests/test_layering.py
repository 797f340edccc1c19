"""The protocol core runs without the web and without the database."""

import ast
import subprocess
import sys
from pathlib import Path

import oaipmh_server


def test_protocol_imports_neither_flask_nor_sqlalchemy() -> None:
    code = (
        "import sys, oaipmh_server.protocol, oaipmh_server.verbs, oaipmh_server.tokens;"
        "print(sorted(m for m in ('flask', 'sqlalchemy', 'werkzeug') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


def test_package_import_is_light() -> None:
    code = "import sys, oaipmh_server; print('lxml' in sys.modules, 'flask' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False False"


WEB_LIBRARIES = ("flask", "werkzeug", "gunicorn", "jinja2")


def _imported_modules(tree: ast.AST) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_only_the_web_package_imports_flask_werkzeug_and_gunicorn() -> None:
    """The web edge is one package: everything else runs (and is tested) without it."""
    package = Path(oaipmh_server.__file__).parent
    outside = [
        f"{path.relative_to(package)} imports {name}"
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).parts[0] != "web"
        for name in sorted(_imported_modules(ast.parse(path.read_text(), str(path))))
        if name.split(".")[0] in WEB_LIBRARIES
    ]
    assert outside == []
