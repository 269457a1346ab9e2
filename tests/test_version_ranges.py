"""The declared version ranges (pyproject.toml) hold the versions this suite runs on, and the lowest edge
scripts/test-versions.sh installs is exactly their floor: the cheap half of testing the ranges (the script
runs the profiler's and CitizenApp's tests at both edges; too slow for the default suite)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# The libraries whose releases change what pgpulse relies on (listeners, routing, the driver), and where
# pyproject.toml declares each of them.
RANGED = {"sqlalchemy": "core", "asyncpg": "core", "fastapi": "demo", "starlette": "demo"}


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sections = {"core": project["dependencies"], "demo": project["optional-dependencies"]["demo"]}
    found = {}
    for name, section in RANGED.items():
        [requirement] = [r for r in map(Requirement, sections[section]) if r.name.lower() == name]
        found[name] = requirement
    return found


def test_every_ranged_library_has_a_floor_and_a_ceiling() -> None:
    for name, requirement in declared().items():
        operators = sorted(spec.operator for spec in requirement.specifier)
        assert operators == ["<", ">="], f"{name}: {requirement}"


def test_installed_versions_are_inside_the_declared_ranges() -> None:
    for name, requirement in declared().items():
        installed = version(name)
        assert requirement.specifier.contains(installed), f"{name} {installed} is outside {requirement}"


def test_the_lowest_edge_of_the_version_script_is_the_declared_floor() -> None:
    script = (ROOT / "scripts" / "test-versions.sh").read_text()
    [lowest] = re.findall(r"^LOWEST=\((.*)\)$", script, flags=re.MULTILINE)
    pins = {}
    for quoted in lowest.split():
        requirement = Requirement(quoted.strip('"'))
        [spec] = requirement.specifier
        pins[requirement.name.lower()] = Version(spec.version)
    floors = {
        name: Version(next(s.version for s in requirement.specifier if s.operator == ">="))
        for name, requirement in declared().items()
    }
    assert pins == floors
