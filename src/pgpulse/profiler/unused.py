"""Unused eager loads (what nplusone and Rails' Bullet report): an option that made the database load a
relationship nothing read during the request.

Reads are seen by the watched relationship attributes (``orm.WatchedAttribute``), whoever reads them while the
record is open: the handler, pydantic's ``from_attributes`` / FastAPI's ``response_model`` serialization after
the handler returned, a background task of the same request. The shapes that fool other tools are ruled out:

* nested chains where only the leaf is read (``user.items[0].tags``): reading a deeper relationship of the
  chain counts as reading every relationship above it;
* empty parents: an option under a relationship that loaded no object (a user with no items) could not be
  read, so it is not reported; nor is an option on a query that returned no row;
* one option, one finding: the shallowest unused relationship of a chain is reported, not each level below;
* never "add" and "remove" for the same relationship in one request: an N+1 finding on a relationship
  (which already counts as a read) suppresses any unused-eager finding on it.

The line of the query is not looked up on every eager query (a stack walk costs tens of µs): a shape is
added to :data:`unused_shapes` when it is first reported, and located from its next run on.
"""

from __future__ import annotations

from pgpulse.profiler.context import EagerUse, Record, UnusedEagerLoad, relationship_name
from pgpulse.profiler.statements import shape

unused_shapes: set[str] = set()  # fingerprints of queries reported as unused eager loads: located when they run
_MAX_SHAPES = 4096

_LOADER = {"selectin": "selectinload", "joined": "joinedload", "subquery": "subqueryload"}


def _option_parts(use: EagerUse) -> list[str]:
    return [
        f"{_LOADER.get(strategy, strategy + 'load')}({relationship_name(prop)})"
        for prop, strategy in zip(use.chain, use.strategies, strict=True)
    ]


def _loaded_parents(use: EagerUse, record: Record) -> bool:
    """Did the level above the chain's last relationship load any object (anything that could be read)?"""
    if use.rows <= 0:
        return False
    if len(use.chain) == 1:
        return True
    above = use.chain[-2]
    # A selectin/subquery level above ran batches whose rows we counted; a joined level has no batch of its
    # own, its rows came with the query's.
    return record.eager_rows.get(above, 0) > 0 if above in record.eager_rows else True


def detect_unused(record: Record) -> list[UnusedEagerLoad]:
    if not record.eager:
        return []
    nplusone = {f.relationship for f in record.findings if f.relationship}
    route = record.route_name()
    accessed = record.accessed
    findings: list[UnusedEagerLoad] = []
    reported: set[tuple[object, ...]] = set()
    # The distinct chains of each query (shape, line): the uses of one query repeat the same few chains, so this
    # stays linear in the number of uses (a loop of 10,000 queries with options is 10,000 uses).
    chains: dict[tuple[object, ...], set[tuple[object, ...]]] = {}
    for use in record.eager:
        chains.setdefault((use.fingerprint, use.site), set()).add(use.chain)
    for use in record.eager:
        chain = use.chain
        query = (use.fingerprint, use.site)
        deeper = [c for c in chains[query] if c[: len(chain)] == chain]
        if any(c[-1] in accessed for c in deeper) or not _loaded_parents(use, record):
            continue
        if len(chain) > 1 and (chain[:-1], query) in reported:
            continue  # the level above is already reported unused: one finding per option
        name = relationship_name(chain[-1])
        if name in nplusone:
            continue
        key = (chain, query)
        if key in reported:
            continue
        reported.add(key)
        if use.site is None and use.fingerprint:
            if len(unused_shapes) >= _MAX_SHAPES:
                unused_shapes.clear()
            unused_shapes.add(use.fingerprint)
        parts = _option_parts(use)
        option = ".".join(parts)
        if len(chain) == 1:
            fix = f"remove {option} from the query (or use noload({name}) / load_only() if only columns are read)"
        else:
            fix = f"remove .{parts[-1]} from {option} (or replace it with noload({name}))"
        findings.append(
            UnusedEagerLoad(option, name, shape(use.statement), use.site, fix, route=route, method=record.method)
        )
    return findings
