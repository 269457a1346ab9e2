"""Where a statement came from: the first frame of the application's own code, found by walking the stack.

Library code is anything installed — the standard library, site-packages / dist-packages (``sysconfig`` and
``site`` say where those are), frozen and generated modules — plus pgpulse itself (its CitizenApp excepted, an
application like any other). No list of package names: a SQLModel or a private wrapper package installed into
site-packages is library code too, and an application's own modules are never mistaken for it.

Walking costs a few µs, so the listeners call :func:`find_site` only for a statement whose shape has already
repeated (never for a statement that runs once), and the verdict per code object is cached.
"""

from __future__ import annotations

import linecache
import os
import site
import sys
import sysconfig
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import NamedTuple

_PGPULSE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_DEMO_DIR = os.path.join(_PGPULSE_DIR, "demo") + os.sep


def _installed_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    dirs.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if isinstance(user_site, str):
        dirs.add(user_site)
    return tuple(os.path.join(os.path.realpath(d), "") for d in sorted(dirs) if d)


INSTALLED_DIRS = _installed_dirs()


def is_library(filename: str) -> bool:
    """True for installed code (stdlib, site-packages), generated code and pgpulse's own tooling."""
    if not filename or filename.startswith("<"):
        return True  # <frozen importlib._bootstrap>, <string>, <template>: not a line a user can edit
    path = os.path.realpath(filename) if not os.path.isabs(filename) else filename
    if path.startswith(_PGPULSE_DIR):
        return not path.startswith(_DEMO_DIR)
    return path.startswith(INSTALLED_DIRS)


# file name → is library; bounded by the program's source files. Keyed by the name, not the code object: a
# str caches its hash, a code object hashes its whole bytecode on every lookup (≈ 100 µs per walk).
_verdicts: dict[str, bool] = {}


def _library(code: CodeType) -> bool:
    filename = code.co_filename
    verdict = _verdicts.get(filename)
    if verdict is None:
        verdict = _verdicts[filename] = is_library(filename)
    return verdict


# FastAPI validates and serializes the endpoint's return value in these functions (fastapi/routing.py,
# fastapi/_compat); a lazy load under them happens after the route function returned.
_SERIALIZERS = {"serialize_response", "validate", "_validate"}
_FASTAPI = f"{os.sep}fastapi{os.sep}"


class Site(NamedTuple):
    """A line of application code (``during_serialization``: reached from FastAPI's response serialization,
    where no application frame is on the stack). A named tuple: built on the hot path of repeated shapes."""

    filename: str
    lineno: int
    function: str
    during_serialization: bool = False

    @property
    def line(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip() if self.filename else ""

    def __str__(self) -> str:
        if not self.filename:
            return "FastAPI response serialization"
        return f"{self.filename}:{self.lineno} in {self.function}()"


SERIALIZATION = Site("", 0, "", during_serialization=True)


def _greenlet_parents() -> Iterator[FrameType]:
    """Async SQLAlchemy runs the ORM in a child greenlet; the application's ``await`` waits in the parent
    greenlet, whose suspended frame continues the story."""
    greenlet_mod = sys.modules.get("greenlet")
    current = greenlet_mod.getcurrent() if greenlet_mod is not None else None
    for _ in range(5):
        current = getattr(current, "parent", None)
        frame = getattr(current, "gr_frame", None)
        if frame is None:
            return
        yield frame


def _walk(frame: FrameType | None) -> Site | bool | None:
    verdicts = _verdicts
    while frame is not None:
        code = frame.f_code
        library = verdicts.get(code.co_filename)
        if library is None:
            library = _library(code)
        if not library:
            return Site(code.co_filename, frame.f_lineno, _function(frame))
        if code.co_name in _SERIALIZERS and _FASTAPI in code.co_filename:
            return SERIALIZATION
        frame = frame.f_back
    return False


def find_site(skip: int = 1) -> Site | None:
    """The innermost application frame; :data:`SERIALIZATION` when FastAPI's response serialization comes
    first (the lazy load ran while the response was being built); None when only library code is on the stack."""
    found = _walk(sys._getframe(skip))
    if found is not False:
        return found  # type: ignore[return-value]
    for frame in _greenlet_parents():
        found = _walk(frame)
        if found is not False:
            return found  # type: ignore[return-value]
    return None


_COMPREHENSIONS = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}


def _function(frame: FrameType) -> str:
    """The function a line belongs to; a comprehension (a frame of its own before Python 3.12) is named after
    the function that contains it."""
    code = frame.f_code
    outer = frame.f_back
    while code.co_name in _COMPREHENSIONS and outer is not None and outer.f_code.co_filename == code.co_filename:
        code, outer = outer.f_code, outer.f_back
    return code.co_name
