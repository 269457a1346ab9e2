"""What the ORM knows about each execution, handed to the cursor listeners through its execution options.

``do_orm_execute`` fires once per ORM statement, before it reaches the connection. There we learn:

* a **lazy load** (``lazy_loaded_from`` is set): the relationship and the path that loaded the parent
  object (its ``load_path``) — repeated, that is an N+1, and the path is the chain the fix must name;
* an **eager batch** (a relationship load without ``lazy_loaded_from``: a selectinload IN-list chunk, a
  subqueryload, one level of ``recursion_depth``): never an N+1, whatever its count;
* an application query carrying **eager-load options**: remembered for the unused-eager-load check, and
  each relationship it eager-loads gets its attribute watched (reads are counted only while a record is open).

The verdict travels in the execution's own options (``_pgpulse_load``), never in a per-request slot, so
two sessions running concurrently in one request each keep their own relationship.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import InstrumentedAttribute, ORMExecuteState, Session
from sqlalchemy.orm.base import instance_state

from pgpulse.profiler.context import MAX_DEPTHS_TRACKED, MAX_EAGER_KEPT, EagerUse, LoadInfo, LoadKind, _current

LOAD_OPTION = "_pgpulse_load"
EAGER_STRATEGIES = frozenset({"selectin", "joined", "subquery"})


class WatchedAttribute(InstrumentedAttribute[Any]):
    """A relationship attribute that tells the open record it was read (only relationships some query
    eager-loads are watched; column attributes never pay for this)."""

    __slots__ = ()
    inherit_cache = True

    def __get__(self, instance: object | None, owner: Any) -> Any:
        if instance is not None:
            record = _current.get()
            if record is not None and not record.closed:
                record.accessed.add(self.impl.parent_token)
        return InstrumentedAttribute.__get__(self, instance, owner)


_watched: list[InstrumentedAttribute[Any]] = []
_watched_props: set[Any] = set()
_watch_lock = threading.Lock()


def watch(prop: Any) -> None:
    if prop in _watched_props:
        return
    with _watch_lock:
        if prop in _watched_props:
            return
        for mapper in prop.parent.self_and_descendants:
            attribute = mapper.class_manager.get(prop.key)
            if type(attribute) is InstrumentedAttribute:
                attribute.__class__ = WatchedAttribute
                _watched.append(attribute)
        _watched_props.add(prop)


def unwatch_all() -> None:
    with _watch_lock:
        for attribute in _watched:
            attribute.__class__ = InstrumentedAttribute
        _watched.clear()
        _watched_props.clear()


def _collapse(chain: tuple[Any, ...]) -> tuple[Any, ...]:
    """``recursion_depth`` repeats a self-referential relationship in the option's paths: keep one."""
    out: list[Any] = []
    for prop in chain:
        if not out or out[-1] is not prop:
            out.append(prop)
    return tuple(out)


def eager_uses(options: Any) -> tuple[EagerUse, ...]:
    """One EagerUse per eager-loaded relationship path of the statement's options (a chained option gives one
    per level), each with the loader of every level (``selectinload(User.items).joinedload(Item.owner)``)."""
    found: dict[tuple[Any, ...], str] = {}
    for option in options:
        for element in getattr(option, "context", ()):
            strategy = dict(getattr(element, "strategy", None) or ()).get("lazy")
            chain = _collapse(tuple(element.path.path[1::2]))
            if chain and chain not in found:
                found[chain] = str(strategy)
    if not any(strategy in EAGER_STRATEGIES for strategy in found.values()):
        return ()
    uses = []
    for chain, strategy in found.items():
        if strategy in EAGER_STRATEGIES:
            strategies = tuple(found.get(chain[: i + 1], strategy) for i in range(len(chain)))
            uses.append(EagerUse(chain, strategies, None))  # the site: events._eager_site, once per shape
    return tuple(uses)


def on_orm_execute(state: ORMExecuteState) -> None:
    record = _current.get()
    if record is None or record.closed:
        return
    if state.is_relationship_load:
        prop = getattr(state.loader_strategy_path, "prop", None)
        if prop is None:
            return
        parent = state.lazy_loaded_from
        if parent is None:
            info = LoadInfo(LoadKind.BATCH, prop)
        else:
            load_path = getattr(parent, "load_path", None)
            chain = tuple(load_path.path[1::2]) if load_path else ()
            depth = 1
            if prop.mapper.common_parent(prop.parent):
                track_depth(prop.mapper)
                depth = record.depths.get(parent, 1)
            info = LoadInfo(LoadKind.LAZY, prop, chain, depth=depth)
        state.update_execution_options(**{LOAD_OPTION: info})
        return
    if not state.is_select:
        return
    options = getattr(state.statement, "_with_options", None)
    if not options:
        return
    uses = eager_uses(options)
    if uses:
        for use in uses:
            watch(use.chain[-1])
            for prop in use.chain:
                watch(prop)
        room = MAX_EAGER_KEPT - len(record.eager)
        if room >= len(uses):
            record.eager.extend(uses)
        else:  # past the cap: counted, not judged (the options seen before it still are)
            record.eager.extend(uses[: max(room, 0)])
            record.eager_dropped += len(uses) - max(room, 0)
        state.update_execution_options(**{LOAD_OPTION: LoadInfo(LoadKind.QUERY, eager=uses)})


_depth_tracked: set[Any] = set()


def _on_load(target: Any, context: Any) -> None:
    """A self-referential walk's objects: each one loaded lazily is one level below its parent. The ORM's
    ``load_path`` does not grow along lazy loads, so the level is counted here."""
    record = _current.get()
    if record is None or record.closed:
        return
    parent = getattr(getattr(context, "load_options", None), "_lazy_loaded_from", None)
    if parent is not None:
        depths = record.depths
        if len(depths) < MAX_DEPTHS_TRACKED:  # past it an object is not tracked: its children count from level 2
            depths[instance_state(target)] = depths.get(parent, 1) + 1


def track_depth(mapper: Any) -> None:
    """Installed on a mapper the first time one of its self-referential relationships is lazy-loaded."""
    if mapper in _depth_tracked:
        return
    with _watch_lock:
        if mapper not in _depth_tracked:
            event.listen(mapper, "load", _on_load)
            _depth_tracked.add(mapper)


def untrack_all() -> None:
    with _watch_lock:
        for mapper in _depth_tracked:
            event.remove(mapper, "load", _on_load)
        _depth_tracked.clear()


_installed = 0
_install_lock = threading.Lock()


def install() -> None:
    """Listen on every Session (the event is per class): counted, so the last ``uninstrument`` removes it."""
    global _installed
    with _install_lock:
        if _installed == 0:
            event.listen(Session, "do_orm_execute", on_orm_execute)
        _installed += 1


def uninstall() -> None:
    global _installed
    with _install_lock:
        if _installed == 0:
            return
        _installed -= 1
        if _installed == 0:
            event.remove(Session, "do_orm_execute", on_orm_execute)
            unwatch_all()
            untrack_all()
