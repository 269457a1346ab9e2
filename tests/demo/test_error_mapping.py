"""The database-error backstop: real driver errors become the answers ``errors.py`` promises.

The schemas refuse NUL characters and out-of-range ids first; these errors still reach the mapping when a
value arrives by another road (a query parameter, a future route), so it is tested against a real server.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pgpulse.db.engine import make_engine
from pgpulse.demo.errors import classify


@pytest.mark.parametrize(
    ("sql", "value", "expected"),
    [
        ("SELECT CAST(:v AS text)", "a\x00b", 422),  # SQLSTATE 22021: PostgreSQL text cannot hold NUL
        ("SELECT CAST(:v AS bigint)", 10**25, 422),  # asyncpg cannot encode it: DataError before sending
        ("SELECT pg_sleep(:v)", 1, 504),  # statement_timeout (57014): the request was too slow
    ],
)
async def test_driver_errors_map_to_client_answers(citizen, sql: str, value: object, expected: int) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(citizen.url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET statement_timeout = 100"))
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text(sql), {"v": value})
    finally:
        await engine.dispose()
    status, detail = classify(caught.value)
    assert status == expected, detail
