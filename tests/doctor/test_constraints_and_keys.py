"""Invalid (NOT VALID) constraints, foreign keys without an index, tables without a primary key."""

from __future__ import annotations

from typing import Any

from pgpulse.doctor.check import Severity
from pgpulse.doctor.checks.foreign_key_indexes import ForeignKeyIndexesCheck
from pgpulse.doctor.checks.invalid_constraints import InvalidConstraintsCheck
from pgpulse.doctor.checks.primary_keys import PrimaryKeysCheck

PARENT = "CREATE TABLE parent (id int PRIMARY KEY)"
FILL_PARENT = "INSERT INTO parent SELECT generate_series(1, 100)"


async def test_not_valid_constraints_get_validate_constraint(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        PARENT,
        'CREATE TABLE "Child" (id int PRIMARY KEY, parent_id int, qty int)',
        'ALTER TABLE "Child" ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent NOT VALID',
        'ALTER TABLE "Child" ADD CONSTRAINT "qty positive" CHECK (qty > 0) NOT VALID',
        # the healthy twin: added NOT VALID, then validated (the two-step migration done)
        "CREATE TABLE done (id int PRIMARY KEY, qty int)",
        "ALTER TABLE done ADD CONSTRAINT done_qty CHECK (qty > 0) NOT VALID",
        "ALTER TABLE done VALIDATE CONSTRAINT done_qty",
    )
    findings = {f.object: f for f in await run_check(db, InvalidConstraintsCheck())}
    assert set(findings) == {'constraint "Child".child_parent_fk', 'constraint "Child"."qty positive"'}
    fk = findings['constraint "Child".child_parent_fk']
    assert fk.severity is Severity.warning
    assert fk.fix == 'ALTER TABLE "Child" VALIDATE CONSTRAINT child_parent_fk;'
    assert fk.note is not None and "ROW SHARE on parent" in fk.note
    assert findings['constraint "Child"."qty positive"'].fix == (
        'ALTER TABLE "Child" VALIDATE CONSTRAINT "qty positive";'
    )


async def test_unindexed_foreign_keys_when_the_parent_sees_deletes_or_the_child_is_large(
    db: str, execute: Any, run_check: Any
) -> None:
    await execute(
        db,
        PARENT,
        FILL_PARENT,
        "CREATE TABLE large (id int PRIMARY KEY, parent_id int REFERENCES parent)",
        "INSERT INTO large SELECT g, 1 + g % 100 FROM generate_series(1, 10000) g",
        "CREATE TABLE below (id int PRIMARY KEY, parent_id int REFERENCES parent)",  # edge: 9,999 rows
        "INSERT INTO below SELECT g, 1 + g % 100 FROM generate_series(1, 9999) g",
        "CREATE TABLE indexed (id int PRIMARY KEY, parent_id int REFERENCES parent)",
        "CREATE INDEX ON indexed (parent_id, id)",
        "INSERT INTO indexed SELECT g, 1 + g % 100 FROM generate_series(1, 10000) g",
        "CREATE TABLE other_parent (a int, b int, PRIMARY KEY (a, b))",
        "INSERT INTO other_parent VALUES (1, 1), (2, 2)",
        "CREATE TABLE small (id int PRIMARY KEY, a int, b int, FOREIGN KEY (b, a) REFERENCES other_parent (b, a))",
        "DELETE FROM other_parent WHERE a = 2",
    )
    findings = {f.object: f for f in await run_check(db, ForeignKeyIndexesCheck())}
    assert set(findings) == {"constraint large.large_parent_id_fkey", "constraint small.small_b_a_fkey"}
    assert findings["constraint large.large_parent_id_fkey"].fix == (
        "CREATE INDEX CONCURRENTLY ix_large_parent_id ON large (parent_id);"
    )
    small = findings["constraint small.small_b_a_fkey"]
    assert small.fix == "CREATE INDEX CONCURRENTLY ix_small_b_a ON small (b, a);"
    assert small.evidence["referenced_deletes"] == 1


async def test_tables_without_a_primary_key(db: str, execute: Any, run_check: Any) -> None:
    await execute(
        db,
        "CREATE TABLE bare (payload text)",
        "CREATE TABLE keyed_in_all_but_name (code text NOT NULL, label text)",
        "CREATE UNIQUE INDEX keyed_code ON keyed_in_all_but_name (code)",
        "CREATE TABLE nullable_unique (code text UNIQUE)",  # a unique index over a nullable column is no key
        "CREATE TABLE fine (id int PRIMARY KEY)",
        "CREATE TABLE parted (id int PRIMARY KEY, at date) PARTITION BY RANGE (id)",
        "CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100)",
    )
    findings = {f.object: f for f in await run_check(db, PrimaryKeysCheck())}
    assert set(findings) == {"table bare", "table keyed_in_all_but_name", "table nullable_unique"}
    assert findings["table bare"].severity is Severity.warning
    assert findings["table bare"].fix == (
        "ALTER TABLE bare ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;"
    )
    promotable = findings["table keyed_in_all_but_name"]
    assert promotable.severity is Severity.info
    assert promotable.fix == "ALTER TABLE keyed_in_all_but_name ADD PRIMARY KEY USING INDEX keyed_code;"
    assert findings["table nullable_unique"].severity is Severity.warning
