"""Query-count snapshots for CI: what each test ran, recorded once and committed, checked on every later run.

The file is plain, sorted JSON (reviewable in a diff)::

    {"tests/test_api.py::test_list_items": {"queries": 3,
                                            "shapes": {"SELECT items.id … FROM items WHERE …": 1, …},
                                            "nplusone": ["Item.owner"]}}

A test fails when it runs more statements than recorded, or shows an N+1 the snapshot did not have and the
allow-list does not accept; the failure prints the difference of shapes. Fewer statements pass (and
``--pgpulse-record`` writes the better figure). Shapes are normalized (``statements.shape``): no literal ever
reaches the file.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgpulse.profiler.context import NPlusOne, Record
from pgpulse.profiler.statements import shape


@dataclass(frozen=True)
class Snapshot:
    queries: int
    shapes: dict[str, int]
    nplusone: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"queries": self.queries, "shapes": dict(sorted(self.shapes.items())), "nplusone": list(self.nplusone)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        return cls(int(data["queries"]), {str(k): int(v) for k, v in data["shapes"].items()}, tuple(data["nplusone"]))


def finding_key(finding: NPlusOne) -> str:
    """How an N+1 is named in snapshots and allow-lists: its relationship, or its fingerprint."""
    return finding.relationship or finding.fingerprint


def allowed(finding: NPlusOne, allow: set[str]) -> bool:
    return finding.relationship in allow or finding.fingerprint in allow


def take(record: Record) -> Snapshot:
    shapes = Counter(shape(q.statement) for q in record.queries)
    return Snapshot(record.query_count, dict(shapes), tuple(sorted({finding_key(f) for f in record.findings})))


def load(path: Path) -> dict[str, Snapshot]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {nodeid: Snapshot.from_json(entry) for nodeid, entry in data.items()}


def save(path: Path, snapshots: dict[str, Snapshot]) -> None:
    data = {nodeid: snapshots[nodeid].to_json() for nodeid in sorted(snapshots)}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _lines(snapshot: Snapshot) -> list[str]:
    return [f"{count:>4} × {text}" for text, count in sorted(snapshot.shapes.items())]


def compare(nodeid: str, recorded: Snapshot, now: Snapshot, record: Record, allow: set[str]) -> str | None:
    """Why the test regressed against its snapshot, or None."""
    new_nplusone = [f for f in record.findings if finding_key(f) not in recorded.nplusone and not allowed(f, allow)]
    if now.queries <= recorded.queries and not new_nplusone:
        return None
    lines = []
    if now.queries > recorded.queries:
        lines.append(f"{nodeid} ran {now.queries} queries, {recorded.queries} recorded:")
        lines.extend(difflib.unified_diff(_lines(recorded), _lines(now), "recorded", "now", lineterm="", n=0))
    for finding in new_nplusone:
        lines.append(f"new {finding.describe()}")
    lines.append("(re-record with --pgpulse-record if this is intended; accept a known N+1 with")
    lines.append(' @pytest.mark.pgpulse_allow("Item.owner") or the pgpulse_allow ini option)')
    return "\n".join(lines)
