"""N+1 detection: one query shape repeated from one call site, traced to the relationship and line that cause it.

Two patterns produce it:

* a relationship lazy-loaded once per parent object (``for post in user.posts: post.comments``): the
  ORM tells us the relationship and the path that loaded the parents (``do_orm_execute``); the fix is
  ``selectinload`` chained along that path (``selectinload(User.posts).selectinload(Post.comments)``), or
  for a self-referential relationship walked N levels, ``selectinload(Category.children, recursion_depth=N)``;
* an explicit query in a loop (``for id in ids: await session.get(...)`` / ``execute``): the fix is one
  query for the whole set (``WHERE id = ANY(:ids)`` / ``IN``).

Batches of an eager loader (selectinload's IN-list chunks over more than 500 parents, each level of
``recursion_depth``) repeat a shape too, but are the fix already in place: they are never counted.

Statements are grouped by shape, relationship and call site (Prosopite's rule): an auth dependency's
``session.get(User)`` is not part of the ``Item.owner`` N+1 that follows it. The stack is walked only once a
shape reaches the threshold (never for a statement that runs once or a few times); the statements before that,
and those past the first hundred located, join the group of the first located site.
"""

from __future__ import annotations

import re
from typing import Any

from pgpulse.profiler.context import LoadKind, NPlusOne, QueryEvent, Record, relationship_name
from pgpulse.profiler.sites import Site
from pgpulse.profiler.statements import shape

_MODULE_PATH = re.compile(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])")


def model_name(model: Any) -> str:
    name = getattr(model, "__name__", None)
    if isinstance(name, str) and not getattr(model, "__args__", None):
        return name
    return _MODULE_PATH.sub("", str(model))


def serialization_of(record: Record) -> str | None:
    """``list_items() with response_model=list[ItemOut]``: the route whose response serialization ran."""
    route = record.scope.get("route") if record.scope is not None else None
    endpoint = getattr(route, "endpoint", None)
    if endpoint is None:
        return None
    name = f"{getattr(endpoint, '__name__', str(endpoint))}()"
    model = getattr(route, "response_model", None)
    return f"{name} with response_model={model_name(model)}" if model is not None else name


def _is_self_referential(prop: Any) -> bool:
    return bool(prop.mapper.common_parent(prop.parent))


def _option_chain(chain: list[Any], levels: int) -> str:
    parts = []
    for i, prop in enumerate(chain):
        name = relationship_name(prop)
        depth = f", recursion_depth={levels}" if i == len(chain) - 1 and levels > 1 else ""
        parts.append(("" if i == 0 else ".") + f"selectinload({name}{depth})")
    return "".join(parts)


def _lazy_fix(prop: Any, queries: list[QueryEvent]) -> tuple[str, str | None, int]:
    """(fix, loaded_via, levels) for a repeated lazy load of ``prop``."""
    longest = max((q.load.parent_chain for q in queries if q.load is not None), key=len, default=())
    if _is_self_referential(prop):
        prefix = list(longest)
        while prefix and prefix[-1] is prop:
            prefix.pop()
        levels = max((q.load.depth for q in queries if q.load is not None), default=1)
        chain = [*prefix, prop]
    else:
        levels = 1
        chain = [*longest, prop]
    root_class = chain[0].parent.class_.__name__
    loaded_via = relationship_name(longest[-1]) if longest else None
    if levels > 1 and loaded_via is None:
        loaded_via = relationship_name(prop)
    fix = f".options({_option_chain(chain, levels)}) on the query that loads the {root_class} objects"
    return fix, loaded_via, levels


_LOOP_FIX = (
    "run one query for the whole set instead of one per item: collect the keys and use "
    "WHERE key = ANY(:keys) (or IN), or eager-load with selectinload() if this walks a relationship"
)


def _by_site(queries: list[QueryEvent]) -> list[tuple[Site | None, list[QueryEvent]]]:
    groups: dict[Site | None, list[QueryEvent]] = {}
    unlocated: list[QueryEvent] = []
    for query in queries:
        if query.site is None:
            unlocated.append(query)
        else:
            groups.setdefault(query.site, []).append(query)
    if not groups:
        return [(None, unlocated)]
    first = next(iter(groups))
    groups[first] = unlocated + groups[first]
    return list(groups.items())


def _busiest(queries: list[QueryEvent]) -> tuple[Site | None, list[QueryEvent]]:
    counts: dict[Site, int] = {}
    for query in queries:
        if query.site is not None:
            counts[query.site] = counts.get(query.site, 0) + 1
    return (max(counts, key=counts.__getitem__) if counts else None), queries


def count_key(query: QueryEvent) -> Any:
    """The key the listener counted the statement under (events.after): the shape, or (shape, relationship)."""
    load = query.load
    if load is None:
        return query.fingerprint
    return (query.fingerprint, load.prop if load.kind is LoadKind.LAZY else None)


def detect(record: Record) -> list[NPlusOne]:
    """The record's N+1s. On a record past its cap (``record.overflow``) the kept statements are grouped as usual;
    a shape that also ran past the cap gets those runs (counted per shape) added when the kept part shows it from
    one line — the runs nobody located join the first located site, as they do below the cap — and is a lower
    bound (``at_least``) when it shows several; a shape that only began repeating past the cap is found from its
    sample (its first located run). Such findings say how much of the record was inspected."""
    threshold = record.threshold or 5
    candidates: dict[tuple[str, Any], list[QueryEvent]] = {}
    for query in record.queries:
        load = query.load
        if query.error is not None or query.nested or (load is not None and load.kind is LoadKind.BATCH):
            continue
        if record.counts.get(count_key(query), 0) >= threshold:
            prop = load.prop if load is not None and load.kind is LoadKind.LAZY else None
            candidates.setdefault((query.fingerprint, prop), []).append(query)
    overflow = record.overflow
    inspected = total = None
    if overflow is not None:
        inspected, total = len(record.queries), record.query_count
        for key in overflow.samples:
            candidates.setdefault(key, [])
    findings = []
    route = record.route_name()
    for (fp, prop), queries in candidates.items():
        unkept = overflow.shapes.get((fp, prop), 0) if overflow is not None else 0
        unkept_ms = overflow.shape_ms.get((fp, prop), 0.0) if overflow is not None else 0.0
        groups: list[tuple[Site | None, list[QueryEvent]]]
        if not queries:  # it began repeating past the cap: its sample tells where from
            assert overflow is not None
            sample = overflow.samples[(fp, prop)]
            groups, unkept = [(sample.site, [sample])], unkept - 1  # the sample is one of the unkept runs
            unkept_ms -= sample.duration_ms
        elif prop is None or not _is_self_referential(prop):
            groups = _by_site(queries)
        else:
            # A self-referential walk runs its lazy loads from one line per level (nested loops): one finding,
            # placed at the line that ran most of them.
            groups = [_busiest(queries)]
        exact = len(groups) == 1  # the unkept runs can only be this line's (or the first located one's, as above)
        for site, group in groups:
            count, total_ms = len(group), sum(q.duration_ms for q in group)
            if exact:
                count, total_ms = count + unkept, total_ms + unkept_ms
            if count < threshold:
                continue
            if prop is not None:
                fix, loaded_via, levels = _lazy_fix(prop, group)
            else:
                fix, loaded_via, levels = _LOOP_FIX, None, 1
            serialization = serialization_of(record) if site is not None and site.during_serialization else None
            if serialization is not None and prop is not None:
                fix += f" in {serialization.split(' with ', 1)[0]}"  # the route function that returned them
            findings.append(
                NPlusOne(
                    fingerprint=fp,
                    statement=shape(group[0].statement),
                    count=count,
                    total_ms=total_ms,
                    relationship=relationship_name(prop) if prop is not None else None,
                    loaded_via=loaded_via,
                    site=site,
                    fix=fix,
                    route=route,
                    method=record.method,
                    during_serialization=serialization,
                    levels=levels,
                    inspected=inspected,
                    total=total,
                    at_least=unkept > 0 and not exact,
                )
            )
    return findings
