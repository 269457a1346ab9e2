"""Query-count snapshots through pytester: ``--pgpulse-record`` writes the file, a later run fails a test that
runs more queries (printing the diff of shapes) or a new N+1, and the allow-list (ini and marker) accepts
known N+1s."""

from __future__ import annotations

import json
from typing import Any

import pytest

INNER = """
import os
import pytest
from sqlalchemy import ForeignKey, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from pgpulse.profiler import instrument


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    owner: Mapped[User] = relationship()


engine = create_engine(os.environ["INNER_URL"])
instrument(engine)
LOOKUPS = int(os.environ.get("LOOKUPS", "2"))
OWNERS = int(os.environ.get("OWNERS", "2"))


def test_lookups():
    with Session(engine) as session:
        for uid in range(1, LOOKUPS + 1):
            session.execute(select(User.name).where(User.id == uid, User.name != "secret-literal"))


def test_owners():
    with Session(engine) as session:
        items = session.scalars(select(Item).where(Item.id <= OWNERS).order_by(Item.id)).all()
        return [item.owner.name for item in items]


@pytest.mark.pgpulse_allow("Item.owner")
def test_owners_allowed():
    test_owners()
"""


INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def run(pytester: pytest.Pytester, shop: Any, *args: str, **env: str) -> pytest.RunResult:
    from pgpulse.db.urls import async_url

    url = async_url(shop.url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INNER_URL", url)
        for key, value in env.items():
            mp.setenv(key, value)
        return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_record_then_fail_on_more_queries_and_new_n_plus_one(pytester: pytest.Pytester, shop: Any) -> None:
    pytester.makepyfile(test_inner=INNER)
    pytester.makeini(INI)
    recorded = run(pytester, shop, "--pgpulse-record")
    recorded.assert_outcomes(passed=3)
    snapshot = json.loads((pytester.path / "pgpulse-queries.json").read_text())
    assert set(snapshot) == {
        f"test_inner.py::{name}" for name in ("test_lookups", "test_owners", "test_owners_allowed")
    }
    assert snapshot["test_inner.py::test_lookups"]["queries"] == 2
    owners = snapshot["test_inner.py::test_owners"]
    assert owners["queries"] == 3 and owners["nplusone"] == []
    items_shape = (
        "SELECT items.id, items.title, items.owner_id FROM items WHERE items.id <= %(id_1)s::INTEGER ORDER BY items.id"
    )
    [owner_shape] = set(owners["shapes"]) - {items_shape}  # SQLAlchemy 2.0 and 2.1 differ in column aliases here
    assert owners["shapes"] == {items_shape: 1, owner_shape: 2}
    assert owner_shape.startswith("SELECT users.id") and owner_shape.endswith("WHERE users.id = %(pk_1)s::INTEGER")
    assert "secret-literal" not in (pytester.path / "pgpulse-queries.json").read_text()

    same = run(pytester, shop)
    same.assert_outcomes(passed=3)

    fewer = run(pytester, shop, LOOKUPS="1")
    fewer.assert_outcomes(passed=3)

    more = run(pytester, shop, LOOKUPS="4", OWNERS="6")
    more.assert_outcomes(failed=3)  # an allowed N+1 is no new N+1, but more queries are still more
    out = more.stdout.str()
    assert "test_inner.py::test_lookups ran 4 queries, 2 recorded:" in out
    assert "-   2 × SELECT users.name FROM users WHERE users.id = %(id_1)s::INTEGER AND users.name != %(name_1)s" in out
    assert "+   4 × SELECT users.name FROM users WHERE users.id = %(id_1)s::INTEGER AND users.name != %(name_1)s" in out
    assert "test_inner.py::test_owners ran 7 queries, 3 recorded:" in out
    assert "new N+1: lazy load of Item.owner ran 6 times" in out
    # test_owners only: test_owners_allowed accepts Item.owner. Counted in the failures section: the short summary
    # repeats whole messages when the terminal is wide (COLUMNS), so the whole output may show it twice.
    failures = out.split("= FAILURES =")[1].split("short test summary info")[0]
    owners, allowed = failures.split(" test_owners_allowed ")
    assert owners.count("new N+1") == 1
    assert "new N+1" not in allowed


def test_the_allow_list_accepts_known_n_plus_ones(pytester: pytest.Pytester, shop: Any) -> None:
    pytester.makepyfile(test_inner=INNER)
    pytester.makeini(INI)
    marker_only = run(pytester, shop, "--pgpulse-fail-on-nplusone", OWNERS="6")
    marker_only.assert_outcomes(passed=2, failed=1)
    assert "FAILED test_inner.py::test_owners -" in marker_only.stdout.str()
    pytester.makeini(INI + "pgpulse_allow =\n    Item.owner\n")
    ini = run(pytester, shop, "--pgpulse-fail-on-nplusone", OWNERS="6")
    ini.assert_outcomes(passed=3)
