"""The `oaipmh-server` command run in the test's own process, through click's CliRunner:
the same arguments, environment, exit status and output as a process of its own, without
≈1.2 s of interpreter start per command. A few tests keep a real process, where only one
shows it: `serve` (which would otherwise serve in the test), signals and standard input."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass

from click.testing import CliRunner

from oaipmh_server.cli import main


@dataclass
class Ran:
    """What subprocess.CompletedProcess says of a command, for the assertions they share."""

    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str, env: dict[str, str] | None = None) -> Ran:
    """Run the command in process. An exception the command lets out is a traceback on
    its standard error, as in a process, so that `"Traceback" not in stderr` still holds
    only where the command itself ends with one clear line."""
    result = CliRunner().invoke(main, list(args), env=env, prog_name="oaipmh-server")
    stderr = result.stderr
    if result.exc_info is not None and not isinstance(result.exc_info[1], SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return Ran(result.exit_code, result.stdout, stderr)


def run_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m oaipmh_server ARGS` in a process of its own, with no standard input."""
    return subprocess.run(
        [sys.executable, "-m", "oaipmh_server", *args],
        capture_output=True, text=True, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
        timeout=120,
    )  # fmt: skip


def run_cli(*args: str, env: dict[str, str]) -> Ran | subprocess.CompletedProcess[str]:
    """A command as the tests run it: in process, except `serve`, which runs in a process
    of its own so that a regression that lets it start serves there, not in the test."""
    if args and args[0] == "serve":
        return run_process(*args, env=env)
    return invoke(*args, env=env)
