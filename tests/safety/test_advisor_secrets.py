"""Attack: advise's output (every format, the -v log, error lines) must show no password, no literal of a query
and no pg_stats value: queries are shown as normalized shapes, URLs through the one redaction module."""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlsplit

import asyncpg
import pytest
import pytest_asyncio

from pgpulse.db.databases import create_database

from . import advisor_attack as attack  # a helper module beside the tests, shared by the four files

SECRETS = [
    "mcv-secret-value",
    "literal-secret-1",
    "comment-token-2",
    "unterminated-secret-3",
    "hidden-4",
    "typed-secret-6",
]
QUERIES = [
    "SELECT * FROM accounts WHERE api_key = $1",  # costed with the MCV: 'mcv-secret-value'
    "SELECT * FROM accounts WHERE api_key = 'literal-secret-1' /* token=comment-token-2 */",
    "SELECT * FROM accounts WHERE api_key = 'unterminated-secret-3",
    "SELECT * FROM accounts WHERE api_key = 'x' 'hidden-4'",
    "SELECT * FROM accounts WHERE id = 5 -- comment-token-2",
    # a literal that does not fit its column's type: the server's message quotes it ('invalid input syntax for
    # type integer: "typed-secret-6"'), and the -v log printed that message
    "SELECT * FROM accounts WHERE id = 'typed-secret-6'",
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def db(hypo_server) -> str:  # type: ignore[no-untyped-def]
    url = await create_database(hypo_server.url(), "advisor_secrets", replace=True)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE EXTENSION IF NOT EXISTS hypopg;"
            "CREATE TABLE accounts (id int PRIMARY KEY, api_key text NOT NULL);"
            "INSERT INTO accounts SELECT g, CASE WHEN g % 3 = 0 THEN 'mcv-secret-value' ELSE 'k' || g END "
            "FROM generate_series(1, 20000) g; ANALYZE accounts;"
        )
    finally:
        await conn.close()
    return url


def _password_in_query_string(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    password = parts.password or ""
    assert len(password) >= 12  # the server's random superuser password: a distinctive string to look for
    host = f"{parts.username}@{parts.hostname}:{parts.port}"
    return f"postgresql://{host}{parts.path}?password={quote(password, safe='')}", password


@pytest.mark.parametrize("fmt", ["json", "markdown", "table"])
@pytest.mark.parametrize("where", ["userinfo", "query-string"])
def test_no_password_literal_or_pg_stats_value_in_any_format(db: str, fmt: str, where: str) -> None:
    url, password = _password_in_query_string(db) if where == "query-string" else (db, urlsplit(db).password or "")
    code, out, err = attack.run_advise(url, *attack.args_for(QUERIES), "-f", fmt, "-v")
    assert code == 0, err
    text = out + err
    assert password not in text
    assert [s for s in SECRETS if s in text] == []
    assert "***" in text  # the URL is shown, masked
    if fmt == "json":
        assert "SELECT * FROM accounts WHERE api_key = $1" in out  # the shape is what is shown


def test_connection_errors_show_no_password(db: str) -> None:
    url, password = _password_in_query_string(db)
    missing = url.replace("/advisor_secrets?", "/no_such_db?")
    code, out, err = attack.run_advise(missing, "-q", QUERIES[0])
    assert code == 2 and err.count("\n") == 1 and password not in out + err
    wrong = db.replace(f":{urlsplit(db).password}@", ":wrong-secret-5@")
    code, out, err = attack.run_advise(wrong, "-q", QUERIES[0])
    assert code == 2 and err.count("\n") == 1 and "wrong-secret-5" not in out + err
    assert asyncio.run(_still_there(db))


async def _still_there(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) = 20000 FROM accounts"))
    finally:
        await conn.close()
