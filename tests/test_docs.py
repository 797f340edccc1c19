"""The README opens with the two commands a newcomer copies, CI runs the second one and
builds the manual, every command of the CLI is documented in the manual, the README stays
a short front page whose links into docs/ lead somewhere, and the configuration reference
is the shipped TOML's own comments."""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import click
from click.testing import CliRunner

from oaipmh_server.cli import main
from oaipmh_server.config import load_settings

from .conftest import ROOT, SAMPLES, sqlite_url

README = (ROOT / "README.md").read_text("utf-8")
MANUAL = ROOT / "docs"
TOML = ROOT / "config" / "oaipmh.toml"


def commands(text: str = README) -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", text, re.S)


def test_readme_opens_with_serve_then_test() -> None:
    serve, test = commands()[:2]
    assert README.index(serve) < README.index("##")
    assert "oaipmh-server load sample_records" in serve and "oaipmh-server serve" in serve
    assert "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert commands()[1] in ci.splitlines()


def test_ci_fails_when_any_step_of_the_readme_test_command_fails(tmp_path: Path) -> None:
    """`set -e` does not stop a script at a failure inside an `a && b && c` list, only at the
    list's last command: a failing `mypy` then skipped the tests and CI still passed. CI's
    copy of command 2 must make any of its steps fail the run, and run nothing after it."""
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    start = ci.index("# README command 2")
    rest = ci[start:].replace(commands()[1], "true && false && true")
    script = tmp_path / "run"
    script.write_text("set -euo pipefail\n" + rest.replace("mkdocs build", "echo reached; : "))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0
    assert "reached" not in done.stdout


def test_ci_builds_the_manual_strictly_after_installing_the_test_extras() -> None:
    """`--strict` turns every broken link, missing anchor and page left out of the nav into
    a failure; MkDocs comes with the dev dependency group that command 2 installs."""
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    build = ci.index("mkdocs build --strict")
    assert ci.index(commands()[1]) < build


def test_the_manual_starts_with_the_readme_commands() -> None:
    """Getting started gives the same two commands, and any page giving one of them gives
    it as the README does, so they never drift apart."""
    assert commands((MANUAL / "getting-started.md").read_text("utf-8"))[:2] == commands()[:2]
    for page in MANUAL.glob("*.md"):
        for block in commands(page.read_text("utf-8")):
            if block.startswith("python3 -m venv .venv"):
                assert block in commands()[:2], page.name


def test_the_manual_explains_the_readme_commands_in_the_readme_words() -> None:
    """The paragraph after the two commands says what they do (where the database goes,
    how many pytest workers): Getting started says it as the README does, word for word
    (it said "two processes" where the command and the README gave four workers)."""

    def explained(text: str) -> str:
        start = text.index("Both start by")
        return " ".join(text[start : text.index("\n\n", start)].split())

    assert explained((MANUAL / "getting-started.md").read_text("utf-8")) == explained(README)
    assert commands()[1].endswith("pytest -n 3")
    assert "in three pytest-xdist workers" in explained(README)


def test_getting_started_says_what_loading_the_samples_prints(tmp_path: Path) -> None:
    """Command 1's load, as Getting started describes it: the summary it quotes, after the
    one warning it explains (a sample abstract's control characters, replaced)."""
    page = " ".join((MANUAL / "getting-started.md").read_text("utf-8").split())
    said = re.search(r"The load says (.+?), after one warning", page)
    assert said, "Getting started no longer quotes the load's summary"
    quoted = re.findall(r"`([^`]+)`", said.group(1))
    env = {"OAIPMH_DATABASE_URL": sqlite_url(tmp_path / "oaipmh.sqlite3")}
    result = CliRunner().invoke(main, ["load", str(SAMPLES)], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(quoted) == 2
    for line, quote in zip(lines, quoted, strict=True):
        assert re.fullmatch(re.escape(quote).replace("…", ".*"), line), (quote, line)
    (warning,) = result.stderr.splitlines()
    assert "2 character(s) XML cannot carry replaced by U+FFFD" in warning


def test_every_cli_command_is_documented_in_the_manual() -> None:
    page = (MANUAL / "commands.md").read_text("utf-8")
    for name, command in main.commands.items():  # type: ignore[attr-defined]
        assert f"`oaipmh-server {name}" in page, name
        if isinstance(command, click.Group):
            for sub in command.commands:
                assert f"`oaipmh-server {name} {sub}`" in page, f"{name} {sub}"


def test_help_works_without_a_database() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "load" in result.output and "serve" in result.output


def test_ci_first_runs_command_one_in_a_fresh_venv_without_test_extras() -> None:
    """The test extras (pytest brings `packaging`) and the system Python hide a dependency
    the runtime imports but does not declare: CI installs command 1's way first."""
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert "python3 -m venv .venv" in commands()[0]
    smoke = ci.index(".ci/smoke.py")
    assert ci.index("-m pip install -q -e .\n") < smoke < ci.index(commands()[1])


def test_readme_is_a_short_front_page() -> None:
    """What it is, the two commands, five requests, links into the manual: the rest is
    the manual's."""
    assert len(README.splitlines()) <= 150
    curls = [line for block in commands() for line in block.splitlines() if "curl" in line]
    assert len(curls) == 5


def anchors(page: str) -> set[str]:
    """The ids MkDocs gives a page's headings: `{#id}` if given, else the title's slug."""
    found = set()
    for title in re.findall(r"^#+ (.+)$", page, re.M):
        given = re.search(r"\{#([^}]+)\}\s*$", title)
        slug = re.sub(r"[^\w\s-]", "", title.lower()).strip()
        found.add(given.group(1) if given else re.sub(r"[-\s]+", "-", slug))
    return found


def test_readme_links_lead_to_files_of_the_checkout() -> None:
    """Relative links, so they work on a forge and in a checkout: each names a file of the
    checkout (a page of the manual, among others) and, with a #fragment, a heading of it."""
    links = re.findall(r"\]\(([^)]+)\)", README)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert "docs/index.md" in relative
    for link in relative:
        path, _, fragment = link.partition("#")
        assert (ROOT / path).is_file(), link
        if fragment:
            assert fragment in anchors((ROOT / path).read_text("utf-8")), link


def hook() -> ModuleType:
    """The MkDocs hook that renders the configuration reference (docs/hooks/)."""
    spec = importlib.util.spec_from_file_location(
        "config_reference", MANUAL / "hooks" / "config_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def flat(text: str) -> str:
    """Rendered Markdown reduced to its words, for finding a comment's text in it."""
    return " ".join(html.unescape(text.replace("\\", "")).split())


def test_configuration_reference_gives_each_key_with_its_comment() -> None:
    text = """# The file's own introduction.

[a]
# The answer, `always` below <b> & *bold*: a_b [c].
answer = 42
other = "no comment of its own"
list = [
  1, # one
  2,
]

# A note of its own, about the table.

# The map's comment.
[a.map]
"dc.title" = "title"
"""
    page = hook().render(text)
    assert page.startswith("The file's own introduction.")
    assert "## `[a]` {#a}" in page and "## `[a.map]` {#a-map}" in page
    entry = (
        r"The answer, `always` below &lt;b&gt; &amp; \*bold\*: a\_b \[c\]."
        '\n\n```toml\nanswer = 42\nother = "no comment of its own"\n'
        "list = [\n  1, # one\n  2,\n]\n```\n"
    )
    assert entry in page
    assert page.index("A note of its own") < page.index("The map's comment.")
    assert "## `[a.map]` {#a-map}\n\nThe map's comment." in page
    assert '```toml\n"dc.title" = "title"\n```' in page


def keys(table: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(table, key) for every key that is not itself a table."""
    found = []
    for key, value in table.items():
        if isinstance(value, dict):
            found += keys(value, f"{prefix}{key}.")
        else:
            found.append((prefix.rstrip("."), key))
    return found


def test_configuration_reference_holds_every_key_and_comment_of_the_shipped_file() -> None:
    text = TOML.read_text("utf-8")
    page = hook().render(text)
    sections = dict(
        re.findall(r"^## `\[([^\]]+)\]` \{#[^}]+\}\n(.*?)(?=^## |\Z)", page, re.S | re.M)
    )
    for table, key in keys(tomllib.loads(text)):
        line = re.compile(rf'^(?:{re.escape(key)}|"{re.escape(key)}") = ', re.M)
        assert line.search(sections[table]), f"{table}.{key}"
    words = flat(page)
    for comment in re.findall(r"^\s*# ?(.+)$", text, re.M):
        assert " ".join(comment.split()) in words, comment


def test_the_reference_page_is_generated_not_written() -> None:
    """The page holds the markers the hook replaces, and no key of its own."""
    module = hook()
    source = (MANUAL / "configuration-reference.md").read_text("utf-8")
    assert module.MARKER in source and module.END in source
    built = module.on_page_markdown(source)
    assert "page_size = 100" in built and "page_size" not in source


def test_every_configuration_snippet_of_the_manual_is_read_as_written(tmp_path: Path) -> None:
    """An adopter pastes a page's TOML into the file OAIPMH_CONFIG names: each snippet is
    read without a mistake, and a virtual set it defines is one it serves (Virtual sets
    defined `theses` alone, which the server then never served: `served` chooses)."""
    snippets = [
        (page.name, block)
        for page in sorted(MANUAL.glob("*.md"))
        for block in re.findall(r"```toml\n(.+?)```", page.read_text("utf-8"), re.S)
    ]
    assert len(snippets) >= 4
    for number, (page, block) in enumerate(snippets):
        path = tmp_path / f"{number}.toml"
        path.write_text(block, "utf-8")
        settings = load_settings(environ={"OAIPMH_CONFIG": str(path)})
        defined = tomllib.loads(block).get("virtual_sets", {}).get("define", {})
        for spec in defined:
            assert spec in settings.virtual_sets_served, (page, spec)


def test_the_front_pages_lead_to_every_page_of_the_manual() -> None:
    """The README's list of the manual and the home page's "What is where" each link every
    page mkdocs.yml's nav holds (the home page had left out ResourceSync, Who harvests and
    Read-only servers and standbys)."""
    listed = (ROOT / "mkdocs.yml").read_text("utf-8")
    nav = set(re.findall(r"^\s*- (?:[^:]+: )?([\w-]+\.md)$", listed, re.M))
    assert len(nav) == len(list(MANUAL.glob("*.md")))
    home = (MANUAL / "index.md").read_text("utf-8")
    assert nav - {"index.md"} <= set(re.findall(r"\]\(([\w-]+\.md)[#)]", home))
    assert nav - {"index.md"} <= set(re.findall(r"\]\(docs/([\w-]+\.md)[#)]", README))
