"""What the dashboard must never do, checked over HTTP against the same uvicorn: change the database, accept a
state-changing method, show a password, a parameter or live markup, or run without auth in production."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from pgpulse.cli import app as cli
from pgpulse.dashboard import MISSING_EXTRA, DashboardError, app
from pgpulse.dashboard.app import SESSION_SETTINGS
from pgpulse.dashboard.explain import ExplainError, generic_plan
from pgpulse.db.engine import libpq_url
from pgpulse.sql import redact_url

from .conftest import SECRET_IN_SESSION, SECRET_LITERAL, Site

PAGES = ("/", "/queries", "/indexes", "/tables", "/connections")


async def get(site: Site, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(base_url=site.base, timeout=60) as client:
        return await client.request(method, path)


async def query_ids(site: Site) -> dict[str, int]:
    page = (await get(site, "/queries")).text
    pairs = re.findall(r'/queries/(-?\d+)"><code>(.*?)</code>', page)
    return {text: int(qid) for qid, text in pairs}


async def test_no_page_shows_a_password_a_parameter_or_live_markup(site: Site) -> None:
    password = urlsplit(site.database_url).password
    for path in PAGES:
        response = await get(site, path)
        assert response.status_code == 200
        page = response.text
        assert "<script" not in page.lower()
        assert SECRET_LITERAL not in page and SECRET_IN_SESSION not in page
        if password:
            assert f":{password}@" not in page
        assert redact_url(site.database_url) in page
    tables = (await get(site, "/tables")).text
    assert "public.&lt;script&gt;window.__pwned=1&lt;/script&gt;" in tables
    # the query text is shown redacted (a digit inside a quoted name is masked like a literal) and escaped
    assert (
        "SELECT count(*) FROM &#34;&lt;script&gt;window.__pwned=$?&lt;/script&gt;&#34;"
        in (await get(site, "/queries")).text
    )


async def test_every_response_forbids_scripts_and_framing(site: Site) -> None:
    response = await get(site, "/")
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_state_changing_methods_are_refused(site: Site, method: str) -> None:
    response = await get(site, "/queries", method)
    assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD")


async def test_a_writing_statement_is_explained_never_executed(site: Site) -> None:
    ids = await query_ids(site)
    qid = ids["DELETE FROM dead_rows WHERE id &lt;= $1"]
    page = (await get(site, f"/queries/{qid}")).text
    assert '<span class="node">Delete</span>' in page
    conn = await asyncpg.connect(site.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM dead_rows") == 400
    finally:
        await conn.close()


async def test_unknown_or_malformed_query_ids_are_404(site: Site) -> None:
    assert (await get(site, "/queries/1")).status_code == 404
    assert (await get(site, "/queries/abc")).status_code == 404


async def test_explain_refuses_anything_but_one_plain_statement_on_a_read_only_session(site: Site) -> None:
    conn = await asyncpg.connect(libpq_url(site.database_url), server_settings=SESSION_SETTINGS)
    try:
        with pytest.raises(ExplainError, match="2 statements where one is allowed"):
            await generic_plan(conn, "SELECT 1; DROP TABLE orders")
        with pytest.raises(ExplainError, match="DropStmt"):
            await generic_plan(conn, "DROP TABLE orders")
        plan = await generic_plan(conn, "UPDATE orders SET note = $1 WHERE id = $2")
        assert plan.node_type == "Update"
        assert await conn.fetchval("SHOW transaction_read_only") == "on"
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE note IS NULL") == 0
    finally:
        await conn.close()


def test_production_mode_refuses_to_build_without_auth(site: Site) -> None:
    with pytest.raises(DashboardError, match="needs auth="):
        app(site.database_url)
    assert callable(app(site.database_url, allow_unauthenticated=True))


async def test_auth_is_asked_before_anything_is_read() -> None:
    denied = app("postgresql://nobody@127.0.0.1:1/none", auth=lambda request: False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=denied), base_url="http://t") as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (403, "forbidden")


def test_the_command_needs_a_url_and_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPULSE_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["dashboard"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: give the database URL: pgpulse dashboard postgresql://user@host/db (or set PGPULSE_DATABASE_URL)"
    ]


def test_without_jinja2_the_dashboard_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)  # what an install without the [dashboard] extra looks like
    with pytest.raises(DashboardError) as raised:
        app("postgresql://nobody@127.0.0.1:1/none", allow_unauthenticated=True)
    assert str(raised.value) == "pgpulse dashboard needs the dashboard extra: pip install 'pgpulse[dashboard]'"
    result = CliRunner().invoke(cli, ["dashboard", "postgresql://nobody@127.0.0.1:1/none"])
    assert (result.exit_code, result.output.strip()) == (2, f"error: {MISSING_EXTRA}")


async def test_a_store_without_the_history_schema_means_no_history_not_an_error(site: Site) -> None:
    bare = app(site.database_url, site.database_url, allow_unauthenticated=True)  # the target: no pgpulse_history
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url="http://t") as client:
        queries = await client.get("/queries")
        tables = await client.get("/tables")
    assert (queries.status_code, tables.status_code) == (200, 200)
    assert "svg" not in queries.text and "Growth, 7 days" in tables.text


async def test_the_command_serves_the_dashboard_on_loopback(site: Site) -> None:
    with socket.socket() as sock:  # a free port (released before the server binds it)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PGPULSE_DATABASE_URL"}
    command = [sys.executable, "-m", "pgpulse.cli", "dashboard", site.database_url, "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=30) as client:
            while True:
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/indexes")
                    break
                except httpx.TransportError:
                    assert server.poll() is None, server.stderr.read() if server.stderr else ""
                    assert time.monotonic() < deadline, "pgpulse dashboard did not answer within 60 s"
                    await asyncio.sleep(0.1)
        assert response.status_code == 200 and "dupvals_v_key" in response.text
        listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{port}"]
    finally:
        server.terminate()
        server.wait(timeout=30)


async def test_mounted_under_a_prefix_in_a_fastapi_app_its_links_and_stylesheet_follow(site: Site) -> None:
    from fastapi import FastAPI

    outer = FastAPI()
    outer.mount("/pgpulse", app(site.database_url, auth=lambda request: True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://t") as client:
        page = await client.get("/pgpulse/indexes")
        links = set(re.findall(r'href="(/[^"]*)"', page.text))
        assert page.status_code == 200
        assert {"/pgpulse/", "/pgpulse/queries", "/pgpulse/tables", "/pgpulse/static/style.css"} <= links
        for link in links:
            assert (await client.get(link)).status_code == 200, link


async def test_close_releases_the_dashboards_connections(site: Site) -> None:
    dashboard = app(site.database_url, allow_unauthenticated=True)
    count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgpulse-dashboard' AND datname = $1"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dashboard), base_url="http://t") as client:
        assert (await client.get("/indexes")).status_code == 200
    conn = await asyncpg.connect(site.database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        before = await conn.fetchval(count, name)
        await dashboard.close()
        deadline = time.monotonic() + 20
        while (after := await conn.fetchval(count, name)) != before - 1:
            assert time.monotonic() < deadline, f"{after} dashboard sessions left of {before}"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def test_a_plan_shows_no_constant_the_statement_did_not_write(make_database: Any) -> None:
    """The query page's generic plan is of pg_stat_statements' normalized text, but the plan itself brings
    constants back: a view's WHERE (here), an inlined SQL function, a column default. The page showed
    ``Filter: (token <> 'view-secret-45'::text)`` as PostgreSQL printed it."""
    secret = "view-secret-45"
    url = await make_database("dashplan", extensions=("pg_stat_statements",))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, token text);"
            "INSERT INTO accounts SELECT g, 'k' || g FROM generate_series(1, 1000) g; ANALYZE accounts;"
            f"CREATE VIEW live_accounts AS SELECT * FROM accounts WHERE token <> '{secret}'"
        )
        await conn.execute("SELECT * FROM live_accounts WHERE id = 5")
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()
    dashboard = app(url, allow_unauthenticated=True)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dashboard), base_url="http://t") as client:
            ids = re.findall(
                r'/queries/(-?\d+)"><code>SELECT \* FROM live_accounts', (await client.get("/queries")).text
            )
            assert len(ids) == 1
            page = await client.get(f"/queries/{ids[0]}")
    finally:
        await dashboard.close()
    assert page.status_code == 200
    assert "Filter: <code>(token &lt;&gt; &#39;***&#39;::text)</code>" in page.text
    assert "Index Cond: <code>(id = $1)</code>" in page.text  # the statement's own parameters stay readable
    assert secret not in page.text
