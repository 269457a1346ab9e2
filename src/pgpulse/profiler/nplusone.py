"""N+1 detection: one query shape repeated in one request, traced to the relationship and line that cause it.

Two patterns produce it:

* a relationship lazy-loaded once per parent object (``for post in user.posts: post.comments``): the
  ORM tells us the relationship (``do_orm_execute``); the fix is ``selectinload``, chained through the
  relationship that loaded the parents (``selectinload(User.posts).selectinload(Post.comments)``);
* an explicit query in a loop (``for id in ids: await session.get(...)`` / ``session.refresh`` /
  ``execute``): the fix is one query for the whole set (``WHERE id = ANY(:ids)`` / ``IN``).

Finding the line is a stack walk, so it is done once per shape and only when the shape reaches the
threshold — the hot path never walks the stack.
"""

from __future__ import annotations

import linecache
import os
import sys
from types import FrameType

from pgpulse.profiler.context import NPlusOne, Record, Site

_PGPULSE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROFILER_DIR = os.path.dirname(os.path.abspath(__file__))
_LIBRARY_MARKERS = (
    f"{os.sep}sqlalchemy{os.sep}",
    f"{os.sep}asyncpg{os.sep}",
    f"{os.sep}greenlet{os.sep}",
    f"{os.sep}asyncio{os.sep}",
    f"{os.sep}starlette{os.sep}",
    f"{os.sep}fastapi{os.sep}",
    f"{os.sep}anyio{os.sep}",
    f"{os.sep}pydantic{os.sep}",
    f"{os.sep}_pytest{os.sep}",
    f"{os.sep}pluggy{os.sep}",
    f"{os.sep}pytest_asyncio{os.sep}",
    f"{os.sep}contextlib.py",
    "<frozen ",
    "<string>",
)


def _is_application(filename: str) -> bool:
    if filename.startswith(_PROFILER_DIR):
        return False
    if any(marker in filename for marker in _LIBRARY_MARKERS):
        return False
    # pgpulse's own CitizenApp is an application like any other; the rest of pgpulse is tooling.
    if filename.startswith(_PGPULSE_DIR):
        return f"{os.sep}citizenapp{os.sep}" in filename
    return True


def _frames(start: FrameType | None) -> list[FrameType]:
    """The frames from ``start`` outwards, hopping from a SQLAlchemy greenlet to the awaiting coroutine."""
    out: list[FrameType] = []
    frame = start
    seen_greenlets = 0
    greenlet_mod = sys.modules.get("greenlet")
    current = greenlet_mod.getcurrent() if greenlet_mod is not None else None
    while True:
        while frame is not None:
            out.append(frame)
            frame = frame.f_back
        # Async SQLAlchemy runs the ORM in a child greenlet; the application's ``await`` waits in the
        # parent greenlet, whose suspended frame continues the story.
        parent = getattr(current, "parent", None)
        if parent is None or seen_greenlets > 4:
            return out
        frame = getattr(parent, "gr_frame", None)
        current = parent
        seen_greenlets += 1


def find_site() -> Site | None:
    for frame in _frames(sys._getframe(1)):
        filename = frame.f_code.co_filename
        if _is_application(filename):
            line = linecache.getline(filename, frame.f_lineno).strip()
            return Site(filename=filename, lineno=frame.f_lineno, function=frame.f_code.co_name, line=line)
    return None


def _fix(relationship: str | None, loaded_via: str | None, record: Record) -> str:
    if relationship is None:
        return (
            "run one query for the whole set instead of one per item: collect the keys and use "
            "WHERE key = ANY(:keys) (or IN), or eager-load with selectinload() if this walks a relationship"
        )
    chain = [relationship]
    via = loaded_via
    seen = {relationship}
    while via is not None and via not in seen:
        chain.insert(0, via)
        seen.add(via)
        parent_class = via.split(".", 1)[0]
        via = record.loaded_by.get(parent_class)
    option = "".join(("" if i == 0 else ".") + f"selectinload({rel})" for i, rel in enumerate(chain))
    return f".options({option}) on the query that loads the {chain[0].split('.', 1)[0]} objects"


def detect(record: Record) -> list[NPlusOne]:
    by_fingerprint: dict[str, list[int]] = {}
    for index, query in enumerate(record.queries):
        if record.counts[query.fingerprint] >= record.threshold:
            by_fingerprint.setdefault(query.fingerprint, []).append(index)
    findings = []
    route = record.route_name()
    for fingerprint, indexes in by_fingerprint.items():
        first = record.queries[indexes[0]]
        relationship = next((record.queries[i].relationship for i in indexes if record.queries[i].relationship), None)
        loaded_via = None
        if relationship is not None:
            loaded_via = record.loaded_by.get(relationship.split(".", 1)[0])
        findings.append(
            NPlusOne(
                fingerprint=fingerprint,
                statement=" ".join(first.statement.split()),
                count=len(indexes),
                total_ms=sum(record.queries[i].duration_ms for i in indexes),
                relationship=relationship,
                loaded_via=loaded_via,
                site=record.sites.get(fingerprint),
                fix=_fix(relationship, loaded_via, record),
                route=route,
            )
        )
    return findings
