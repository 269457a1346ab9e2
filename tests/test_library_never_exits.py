"""The library raises, it never exits: only ``pgpulse.cli`` turns an error into a line and an exit code.

An app that embeds the profiler, or calls the doctor or the advisor from its own code, must keep running when
pgpulse meets bad input. So no module outside ``pgpulse/cli/`` may call ``sys.exit``/``exit``/``os._exit``,
raise ``SystemExit``, use ``typer``'s ``Exit``/``Abort`` (or import typer at all), or call the CLI's ``fail``.
A module that is also a script may exit from its ``if __name__ == "__main__":`` block, which a library import
never runs.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pgpulse

PACKAGE = Path(pgpulse.__file__).parent
CLI = PACKAGE / "cli"
EXIT_CALLS = {("sys", "exit"), ("os", "_exit"), (None, "exit"), (None, "quit"), (None, "fail"), ("errors", "fail")}


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``"""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)
    )


def _callee(call: ast.Call) -> tuple[str | None, str] | None:
    func = call.func
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id, func.attr
    return None


def exits(source: str) -> list[tuple[int, str]]:
    """(line, what) for each way ``source`` could end the process, outside a ``__main__`` guard."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if _is_main_guard(node):
            return
        if isinstance(node, ast.Call) and _callee(node) in EXIT_CALLS:
            owner, name = _callee(node) or (None, "")
            found.append((node.lineno, f"{owner}.{name}()" if owner else f"{name}()"))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id in ("SystemExit", "KeyboardInterrupt"):
                found.append((node.lineno, f"raise {raised.id}"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "typer":
            found.append((node.lineno, f"typer.{node.attr}"))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] in ("typer", "click") or name in ("pgpulse.cli", "pgpulse.cli.errors"):
                    found.append((node.lineno, f"import {name}"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return sorted(found)


def _library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if CLI not in p.parents)


def test_the_scanner_finds_each_way_out_and_ignores_the_main_guard() -> None:
    source = """
import sys, typer
from pgpulse.cli.errors import fail
def f():
    sys.exit(2)
def g():
    raise SystemExit("no")
def h():
    raise typer.Exit(1)
def i():
    fail("bad input")
def j():
    pytest.fail("a test failure is not an exit")
if __name__ == "__main__":
    sys.exit(main())
"""
    assert exits(source) == [
        (2, "import typer"),
        (3, "import pgpulse.cli.errors"),
        (5, "sys.exit()"),
        (7, "raise SystemExit"),
        (9, "typer.Exit"),
        (11, "fail()"),
    ]


def test_no_library_module_exits_the_process() -> None:
    files = _library_files()
    assert PACKAGE / "profiler" / "middleware.py" in files and PACKAGE / "cli" / "errors.py" not in files
    offenders = {
        str(path.relative_to(PACKAGE)): found for path in files if (found := exits(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_every_library_module_imports_without_exiting() -> None:
    """Importing is what an app does: no module may exit, or need the CLI, at import time."""
    names = [
        ".".join(("pgpulse", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for path in _library_files()
        if "migrations" not in path.parts  # Alembic's env.py runs a migration when imported
    ]
    assert "pgpulse.advisor.advise" in names and "pgpulse.doctor.checks.bloat" in names
    for name in names:
        importlib.import_module(name)
