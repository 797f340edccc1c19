"""The README opens with the two commands a newcomer copies, CI runs the second one, and
every command of the CLI is documented."""

from __future__ import annotations

import re

from click.testing import CliRunner

from oaipmh_server.cli import main

from .conftest import ROOT

README = (ROOT / "README.md").read_text("utf-8")


def commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", README, re.S)


def test_readme_opens_with_serve_then_test() -> None:
    serve, test = commands()[:2]
    assert README.index(serve) < README.index("##")
    assert "oaipmh-server load sample_records" in serve and "oaipmh-server serve" in serve
    assert "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert commands()[1] in ci.splitlines()


def test_every_cli_command_is_documented() -> None:
    for name in main.commands:  # type: ignore[attr-defined]
        assert f"`oaipmh-server {name}" in README, name


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
