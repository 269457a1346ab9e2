"""End to end on a real open-source app: fastapi/full-stack-fastapi-template (SQLModel, sync sessions, nested
routers, a JWT auth dependency doing ``session.get(User)``), vendored in apps/fullstack with pgpulse installed by
the README's two lines. Its item routes have no N+1: none may be reported; routes carry the ``/api/v1`` and
``/items`` prefixes; and a repeated query found in its code points at its own line, not at SQLModel's session."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from pgpulse.db.urls import async_url
from pgpulse.profiler import instrument, profile, uninstrument

ROOT = Path(__file__).parent / "apps" / "fullstack"
ITEMS = ROOT / "app" / "api" / "routes" / "items.py"


@pytest.fixture(scope="module")
def template(shop: Any) -> Iterator[dict[str, Any]]:
    url = async_url(shop.url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FULLSTACK_DATABASE_URL", url)
        mp.syspath_prepend(str(ROOT))
        main = importlib.import_module("app.main")
        models: ModuleType = importlib.import_module("app.models")
        security = importlib.import_module("app.core.security")
        from sqlmodel import Session, SQLModel

        engine = main.engine
        SQLModel.metadata.drop_all(engine, tables=[models.Item.__table__, models.User.__table__])
        SQLModel.metadata.create_all(engine, tables=[models.User.__table__, models.Item.__table__])
        with Session(engine) as session:
            admin = models.User(email="admin@example.com", hashed_password="x", is_superuser=True)
            owners = [models.User(email=f"u{i}@example.com", hashed_password="x") for i in range(5)]
            session.add_all([admin, *owners])
            session.flush()
            items = [models.Item(title=f"item {i}", owner_id=owners[i % 5].id) for i in range(30)]
            session.add_all(items)
            session.commit()
            token = security.create_access_token(admin.id, timedelta(minutes=5))
            ids = [item.id for item in items]
            admin_id = admin.id
        try:
            yield {"main": main, "models": models, "token": token, "ids": ids, "admin_id": admin_id}
        finally:
            SQLModel.metadata.drop_all(engine, tables=[models.Item.__table__, models.User.__table__])
            uninstrument(engine)
            engine.dispose()
            for name in [n for n in sys.modules if n == "app" or n.startswith("app.")]:
                del sys.modules[name]


async def test_the_template_gets_no_false_finding_and_full_route_labels(template: dict[str, Any]) -> None:
    main = template["main"]
    instrument(main.engine, slow_query_ms=0)  # the same engine again: no new listener, the config updated
    headers = {"Authorization": f"Bearer {template['token']}"}
    transport = httpx.ASGITransport(app=main.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://template") as client:
        with capture_logs() as logs, profile() as record:
            listed = await client.get("/api/v1/items/", params={"limit": 100}, headers=headers)
            one = await client.get(f"/api/v1/items/{template['ids'][0]}", headers=headers)
    assert listed.json()["count"] == 30 and one.json()["title"] == "item 0"
    assert record.query_count == 3 + 2  # list: auth get, count, select; one: auth get, get
    assert record.findings == [] and record.unused == []
    routes = sorted({(e["method"], e["route"]) for e in logs if e["event"] == "slow_query"})
    assert routes == [("GET", "/api/v1/items/"), ("GET", "/api/v1/items/{id}")]
    assert not [e for e in logs if e["event"] in ("n_plus_one", "unused_eager_load")]


def test_a_repeated_query_in_the_template_points_at_its_line_not_at_sqlmodel(template: dict[str, Any]) -> None:
    from sqlmodel import Session

    items_module = importlib.import_module("app.api.routes.items")
    main, models = template["main"], template["models"]
    with Session(main.engine) as session:
        admin = session.get(models.User, template["admin_id"])
        with profile() as record:
            for item_id in template["ids"][:6]:
                items_module.read_item(session, admin, item_id)
    [finding] = record.findings
    line = next(n for n, text in enumerate(ITEMS.read_text().splitlines(), 1) if "item = session.get(Item, id)" in text)
    assert finding.count == 6 and finding.site is not None
    assert (finding.site.filename, finding.site.lineno, finding.site.function) == (str(ITEMS), line, "read_item")
    assert "sqlmodel" not in finding.describe()
