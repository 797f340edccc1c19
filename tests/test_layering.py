"""The protocol core runs without the web and without the database."""

import ast
from pathlib import Path

import oaipmh_server

from .imports import loaded_after


def test_protocol_imports_neither_flask_nor_sqlalchemy() -> None:
    imports = "oaipmh_server.protocol, oaipmh_server.verbs, oaipmh_server.tokens"
    assert loaded_after(imports, ("flask", "sqlalchemy", "werkzeug")) == []


def test_package_import_is_light() -> None:
    assert loaded_after("oaipmh_server", ("lxml", "flask")) == []


def test_a_load_worker_imports_neither_sqlalchemy_nor_flask() -> None:
    """A load's worker processes are started fresh (spawn) for every load, and never touch
    the store: importing SQLAlchemy (through the fields' packing, then in the store
    package) was 0.5 of a worker's 0.7 CPU-s start, twice a load."""
    assert loaded_after("oaipmh_server.ingest.workers", ("sqlalchemy", "flask")) == []


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


def _module_imports() -> dict[str, set[str]]:
    """Each oaipmh_server module → the oaipmh_server modules it imports, wherever the import
    stands (at the top, inside a function, under TYPE_CHECKING)."""
    package = Path(oaipmh_server.__file__).parent
    names = {
        ".".join(("oaipmh_server", *path.relative_to(package).with_suffix("").parts)).removesuffix(
            ".__init__"
        ): path
        for path in package.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")
                    parent = parent[: len(parent) - (node.level - 1)]
                    base = ".".join([*parent, *([base] if base else [])])
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in names else base)
        graph[name] = {t for t in targets if t in names and t != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others() -> None:
    """No import circle among the package's modules, not even one held open by an import
    inside a function or under TYPE_CHECKING: each module can be read (and moved) after
    the ones it imports."""
    graph = _module_imports()
    assert "oaipmh_server.web.views" in graph["oaipmh_server.web.app"]  # the parse sees them
    assert _circles(graph) == []


def test_circles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]
