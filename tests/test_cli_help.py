"""The command line as a new user meets it: --version, and help text that shows flags as flags."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from pgpulse.cli import app

COMMANDS = ["demo", "serve", "doctor", "logs", "advise", "bench"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
    )


def test_version_prints_the_installed_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"pgpulse {version('pgpulse')}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_type_placeholder_for_flags(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output
