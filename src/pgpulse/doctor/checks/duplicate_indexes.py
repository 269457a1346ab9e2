"""Duplicate and redundant indexes: same columns, or a left prefix of another index on the same table.

A btree on ``(a)`` answers nothing that one on ``(a, b)`` cannot (same operator classes, collations,
sort directions, expressions and predicate), yet both are maintained on every write. Exact duplicates
keep the one that backs a constraint; a prefix index is dropped in favour of the longer one unless it
is unique (uniqueness of ``(a)`` is a stronger rule than of ``(a, b)``). ``INCLUDE`` columns are not keys
but index-only scans read them: of two indexes with the same keys, the one whose included columns are a
subset of the other's is redundant, and a prefix index is redundant only if the longer one has its
included columns too.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgpulse.doctor.check import Context, Finding, Severity, pretty_bytes, qualified

SQL = """
SELECT n.nspname AS schemaname, t.relname AS table_name, c.relname AS index_name, i.indexrelid,
       i.indkey::int2[] AS keys, i.indclass::oid[] AS opclasses, i.indcollation::oid[] AS collations,
       i.indoption::int2[] AS options, i.indnkeyatts AS nkeys,
       COALESCE(pg_get_expr(i.indexprs, i.indrelid), '') AS expressions,
       COALESCE(pg_get_expr(i.indpred, i.indrelid), '') AS predicate,
       i.indisunique, i.indisprimary, am.amname,
       pg_relation_size(i.indexrelid) AS size_bytes, pg_get_indexdef(i.indexrelid) AS definition,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND i.indisvalid
ORDER BY n.nspname, t.relname, c.relname
"""


@dataclass(frozen=True)
class Index:
    schema: str
    table: str
    name: str
    keys: tuple[int, ...]
    includes: tuple[int, ...]  # INCLUDE columns: not searchable, but what an index-only scan also reads
    opclasses: tuple[int, ...]
    collations: tuple[int, ...]
    options: tuple[int, ...]
    expressions: str
    predicate: str
    unique: bool
    primary: bool
    method: str
    size_bytes: int
    definition: str
    backs_constraint: bool

    def prefix(self, n: int) -> tuple[tuple[int, ...], ...]:
        return (self.keys[:n], self.opclasses[:n], self.collations[:n], self.options[:n])


def _load(row: dict) -> Index:  # type: ignore[type-arg]
    n = row["nkeys"]
    return Index(
        row["schemaname"], row["table_name"], row["index_name"], tuple(row["keys"][:n]), tuple(row["keys"][n:]),
        tuple(row["opclasses"][:n]), tuple(row["collations"][:n]), tuple(row["options"][:n]),
        row["expressions"], row["predicate"], row["indisunique"], row["indisprimary"], row["amname"],
        row["size_bytes"], row["definition"], row["backs_constraint"],
    )  # fmt: skip


def redundant_pairs(indexes: list[Index]) -> list[tuple[Index, Index, str]]:
    """(redundant, covering, reason) for each index made useless by another on the same table."""
    pairs: list[tuple[Index, Index, str]] = []
    by_table: dict[tuple[str, str], list[Index]] = {}
    for index in indexes:
        by_table.setdefault((index.schema, index.table), []).append(index)
    for group in by_table.values():
        for a in group:
            for b in group:
                if a is b or a.method != b.method or a.predicate != b.predicate or a.expressions != b.expressions:
                    continue
                n = len(a.keys)
                if a.prefix(n) != b.prefix(n):
                    continue
                if len(a.keys) == len(b.keys):
                    if set(a.includes) < set(b.includes):
                        # b has the same keys and covers more: a is the one to drop
                        if not a.backs_constraint and not (a.unique and not b.unique):
                            pairs.append((a, b, "has the same key columns as"))
                    elif set(a.includes) == set(b.includes) and a.method in ("btree", "hash"):
                        # exact duplicates: report once, keeping the constraint/unique/older-named one
                        keep_b = (b.backs_constraint, b.unique, b.primary, a.name) > (
                            a.backs_constraint,
                            a.unique,
                            a.primary,
                            b.name,
                        )
                        if keep_b and not a.backs_constraint and not (a.unique and not b.unique):
                            pairs.append((a, b, "has the same columns as"))
                elif (
                    len(a.keys) < len(b.keys)
                    and a.method == "btree"
                    and not (a.unique or a.primary or a.backs_constraint)
                    and set(a.includes) <= set(b.keys) | set(b.includes)
                ):
                    pairs.append((a, b, "is a left prefix of"))
    return pairs


class DuplicateIndexesCheck:
    name = "duplicate_indexes"
    title = "Duplicate and redundant indexes"

    async def run(self, ctx: Context) -> list[Finding]:
        indexes = [_load(dict(r)) for r in await ctx.conn.fetch(SQL)]
        findings = []
        for redundant, covering, reason in redundant_pairs(indexes):
            name = qualified(redundant.schema, redundant.name)
            other = qualified(covering.schema, covering.name)
            findings.append(
                Finding(
                    check=self.name,
                    severity=Severity.warning,
                    object=f"index {name}",
                    title=f"index {name} {reason} {other}",
                    evidence={
                        "redundant": redundant.definition,
                        "covered_by": covering.definition,
                        "size": pretty_bytes(redundant.size_bytes),
                        "size_bytes": redundant.size_bytes,
                    },
                    fix=f"DROP INDEX CONCURRENTLY {name};",
                    note="Same operator classes, collations, directions, expressions and predicate: "
                    f"every query that can use {name} can use {other}.",
                )
            )
        return findings
