"""The one targets-file format (``pgpulse.db.targets``) that ``doctor --targets`` and ``history collect --targets``
both read: every line form, comments that never cut a URL, BOM and CRLF, hostile files as one-line errors that
never show a password, bounded memory on huge files — and one file audited and collected by both commands."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from pgpulse.cli import app
from pgpulse.db.targets import MAX_TARGETS, Target, TargetsError, parse_targets, read_targets
from pgpulse.history.targets import default_name
from pgpulse.sql import redact_url

SECRET = "S3cr#t-pw"  # a '#' inside, raw: it must neither start a comment nor ever be printed
QUERY_SECRET = "qs-Secret-42"


def _file(tmp_path: Path, body: str | bytes, name: str = "targets") -> Path:
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


def _error(path: Path) -> str:
    with pytest.raises(TargetsError) as info:
        read_targets(path)
    message = str(info.value)
    assert "\n" not in message
    assert SECRET.split("#")[0] not in message and QUERY_SECRET not in message
    return message


# ---------------------------------------------------------------------------------------------------------------
# line forms, comments, encodings


def test_the_three_line_forms_with_each_commands_default_name(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "postgresql://u:pw@h1/a\n"
        "second postgresql://u:pw@h2/b?sslmode=require\n"
        "third = postgresql://u:pw@h3:5433/c\n"
        "fourth=postgresql://h4/d\n"
        "fifth\t=\tpostgres://h5/e\n"
        "  sixth\tpostgresql://h6/f  \n",
    )
    urls = [
        "postgresql://u:pw@h1/a",
        "postgresql://u:pw@h2/b?sslmode=require",
        "postgresql://u:pw@h3:5433/c",
        "postgresql://h4/d",
        "postgres://h5/e",
        "postgresql://h6/f",
    ]
    names = ["second", "third", "fourth", "fifth", "sixth"]
    assert read_targets(path) == [Target(n, u) for n, u in zip(["postgresql://u:***@h1/a", *names], urls, strict=True)]
    assert read_targets(path, default_name=default_name) == [
        Target(n, u) for n, u in zip(["h1:5432/a", *names], urls, strict=True)
    ]


def test_a_name_in_the_equals_form_may_hold_blanks_as_history_files_did() -> None:
    assert parse_targets("billing eu = postgresql://h/b\n") == [Target("billing eu", "postgresql://h/b")]


def test_comments_never_cut_a_url(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "# the fleet\n"
        "   # an indented comment\n"
        "#prod postgresql://u:pw@commented-out/db\n"
        f"a = postgresql://u:{SECRET}@h/db   # primary, '#' in its password stays\n"
        "b postgresql://u:%23pw%23@h/db\t# a tab before the comment\n"
        "postgresql://u:#starts-with-hash@h/db\n"
        "c = postgresql://u:pw@h/db?application_name=x#y # the query keeps its '#' too\n",
    )
    assert [(t.name, t.url) for t in read_targets(path)] == [
        ("a", f"postgresql://u:{SECRET}@h/db"),
        ("b", "postgresql://u:%23pw%23@h/db"),
        ("postgresql://u:***@h/db", "postgresql://u:#starts-with-hash@h/db"),
        ("c", "postgresql://u:pw@h/db?application_name=x#y"),
    ]


def test_a_byte_order_mark_and_crlf_line_ends_are_tolerated(tmp_path: Path) -> None:
    body = "\ufeff# saved by Notepad\r\nprod = postgresql://h/db\r\n\r\npostgresql://h2/db2\r\n"
    expected = [Target("prod", "postgresql://h/db"), Target("postgresql://h2/db2", "postgresql://h2/db2")]
    assert read_targets(_file(tmp_path, body.encode("utf-8"))) == expected
    assert parse_targets(body) == expected
    assert read_targets(_file(tmp_path, b"prod = postgresql://h/db\rpostgresql://h2/db2", "cr")) == expected


def test_environment_variables_fill_the_url_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPULSE_T_PW", SECRET)
    targets = read_targets(_file(tmp_path, "a = postgresql://u:${PGPULSE_T_PW}@h/db\n"))
    assert targets == [Target("a", f"postgresql://u:{SECRET}@h/db")]
    assert SECRET not in repr(targets)


# ---------------------------------------------------------------------------------------------------------------
# bad lines: FILE:LINE: what is wrong: what to do — and never a password


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            f"prod postgresql://u:{SECRET}@h/db extra",
            "expected URL, NAME URL or NAME = URL, found 3 words: one database per line",
        ),
        (
            f"postgresql://u:{SECRET}@h/db trailing",
            "text after the URL: start a comment with ' #', write a blank inside a URL as %20",
        ),
        (
            f"prod = postgresql://u:{SECRET} more@h/db",
            "text after the URL: start a comment with ' #', write a blank inside a URL as %20",
        ),
        (
            f"postgresql://u:{SECRET}@h/a postgresql://u:{SECRET}@h/b",
            "two URLs on one line: one database per line (URL, NAME URL or NAME = URL)",
        ),
        (f"prod = u:{SECRET}@h/db", "no postgresql:// URL on the line: expected URL, NAME URL or NAME = URL"),
        (f"prod u:{SECRET}@h/db", "no postgresql:// URL on the line: expected URL, NAME URL or NAME = URL"),
        (f"= postgresql://u:{SECRET}@h/db", "nothing before '=': write NAME = URL, or the URL alone"),
        ("prod =", "nothing after '=': write NAME = URL"),
        (f"prod = mysql://u:{SECRET}@h/db", "'mysql' is not PostgreSQL: pgpulse needs a postgresql:// URL"),
        (
            f"prod = postgresql://u:{SECRET}@h:99999/db?password={QUERY_SECRET}",
            "port 99999 in postgresql://u:***@h:99999/db?password=*** is out of range: use 1-65535 (default 5432)",
        ),
        (
            f"postgresql://h:0/db?sslmode=require&password={QUERY_SECRET}",
            "port 0 in postgresql://h:0/db?sslmode=require&password=*** is out of range: use 1-65535 (default 5432)",
        ),
        (
            f"prod postgresql://u:{SECRET}",  # no '@': SQLAlchemy would read the password as a port
            "cannot parse database URL 'postgresql://u:***': expected postgresql://user:password@host:port/dbname",
        ),
        (
            "prod postgresql://u:no-hash-secret",
            "cannot parse database URL 'postgresql://u:***': expected postgresql://user:password@host:port/dbname",
        ),
        (
            f"prod postgresql://u:{SECRET}@[::1/db",
            "cannot parse database URL '<unparseable URL>': expected postgresql://user:password@host:port/dbname",
        ),
        (f"pr\x1bod = postgresql://u:{SECRET}@h/db", "the line contains a control character: remove it"),
        ("x" * 201 + " postgresql://h/db", "the name is longer than 200 characters: give a shorter one"),
        (
            "prod = postgresql://u:${PGPULSE_SURELY_UNSET}@h/db",
            "environment variable PGPULSE_SURELY_UNSET is not set: export it, or write the value",
        ),
    ],
)
def test_a_bad_line_is_one_line_naming_file_and_line_without_the_password(
    tmp_path: Path, line: str, message: str
) -> None:
    path = _file(tmp_path, f"# fleet\nok = postgresql://h/ok\n{line}\n")
    assert _error(path) == f"{path}:3: {message}"


def test_a_line_too_long_is_refused_with_its_number(tmp_path: Path) -> None:
    path = _file(tmp_path, f"ok postgresql://h/db\nlong postgresql://u:{SECRET}@h/{'d' * 9000}\n")
    assert _error(path) == f"{path}:2: the line is longer than 8,192 characters: one database per line"


def test_duplicate_names_name_both_lines(tmp_path: Path) -> None:
    path = _file(tmp_path, "a = postgresql://h/x\n\nb postgresql://h/y\na postgresql://h/z\n")
    assert _error(path) == (
        f"{path}:4: the name 'a' is already used on line 1: give each database its own name "
        "(URL, NAME URL or NAME = URL)"
    )
    same_url = _file(tmp_path, f"postgresql://u:{SECRET}@h/db\npostgresql://u:{SECRET}@h/db\n", "same")
    assert _error(same_url) == (
        f"{same_url}:2: the name 'postgresql://u:***@h/db' is already used on line 1: give each database its own "
        "name (URL, NAME URL or NAME = URL)"
    )
    # history names a bare URL host:port/dbname: two users of one database are one history, so one line
    two_users = _file(tmp_path, "postgresql://a@h/db\npostgresql://b@h:5432/db\n", "users")
    with pytest.raises(TargetsError, match=r":2: the name 'h:5432/db' is already used on line 1"):
        read_targets(two_users, default_name=default_name)


@pytest.mark.parametrize("body", ["", "\n\n", "# only a comment\n   \n", "\ufeff"])
def test_a_file_without_targets_is_an_error(tmp_path: Path, body: str) -> None:
    path = _file(tmp_path, body)
    assert _error(path) == f"{path}: no targets in the file: write one database per line (URL, NAME URL or NAME = URL)"


def test_more_targets_than_the_limit_are_refused(tmp_path: Path) -> None:
    lines = [f"db{i} postgresql://u:{SECRET}@h/db{i}" for i in range(MAX_TARGETS)]
    assert len(read_targets(_file(tmp_path, "\n".join(lines)))) == MAX_TARGETS
    path = _file(tmp_path, "# fleet\n" + "\n".join([*lines, "one-more postgresql://h/x"]), "over")
    assert _error(path) == f"{path}:10002: more than 10,000 targets: split the fleet into several files and run each"


def test_unreadable_files_are_one_line_naming_the_file(tmp_path: Path) -> None:
    assert _error(tmp_path) == f"cannot read targets file {tmp_path}: Is a directory"
    missing = tmp_path / "missing"
    assert _error(missing) == f"cannot read targets file {missing}: No such file or directory"
    latin1 = _file(tmp_path, f"caf\u00e9 = postgresql://u:{SECRET}@h/db\n".encode("latin-1"), "latin1")
    assert _error(latin1) == f"cannot read targets file {latin1}: it is not UTF-8 text: save it as UTF-8"


def test_a_huge_file_is_read_line_by_line(tmp_path: Path) -> None:
    """A million comment lines around one target, and a 50 MB line: neither is held in memory whole."""
    path = tmp_path / "huge"
    with path.open("w") as out:
        out.write("prod = postgresql://h/db\n")
        for _ in range(1_000_000):
            out.write("# a comment line of some forty characters\n")
    assert path.stat().st_size > 40_000_000
    one_line = _file(tmp_path, b"postgresql://h/" + b"x" * 50_000_000, "one-line")

    tracemalloc.start()
    try:
        assert read_targets(path) == [Target("prod", "postgresql://h/db")]
        with pytest.raises(TargetsError, match=r":1: the line is longer than 8,192 characters"):
            read_targets(one_line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"peak {peak:,} bytes"


# ---------------------------------------------------------------------------------------------------------------
# both commands, one file


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPULSE_DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "doctor", *args], capture_output=True, text=True, timeout=120, env=env
    )


def _history(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["history", *args], env={"PGPULSE_HISTORY_STORE": None})
    return result.exit_code, result.stdout, result.stderr


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def fleet(make_database: Callable[..., Awaitable[str]]) -> dict[str, str]:
    first = await make_database("tf_a", extensions=("pg_stat_statements",))
    second = await make_database("tf_b", extensions=("pg_stat_statements",))
    return {"first": first, "second": second, "store": await make_database("tf_store")}


def _one_file_for_both(tmp_path: Path, fleet: dict[str, str]) -> tuple[Path, list[str]]:
    first, second = fleet["first"], fleet["second"]
    body = (
        "\ufeff# one file, read by doctor --targets and history collect --targets\r\n"
        f"{first}   # a bare URL: the command names it\r\n"
        f"second {second}\r\n"
        f"again = {first}\r\n"
    )
    passwords = [p for p in (make_url(first).password, make_url(second).password) if p]
    return _file(tmp_path, body), passwords


def test_doctor_audits_every_database_of_the_file(tmp_path: Path, fleet: dict[str, str]) -> None:
    path, passwords = _one_file_for_both(tmp_path, fleet)
    result = _doctor("--targets", str(path), "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    databases = json.loads(result.stdout)["databases"]
    shown_first = redact_url(fleet["first"])  # the doctor's own default name, as before
    assert [d["name"] for d in databases] == [shown_first, "second", "again"]
    assert all(d.get("error") is None and d["server_version"] for d in databases)
    for password in passwords:
        assert password not in result.stdout + result.stderr


def test_history_collects_every_target_of_the_same_file(tmp_path: Path, fleet: dict[str, str]) -> None:
    path, passwords = _one_file_for_both(tmp_path, fleet)
    code, _, err = _history("collect", "--targets", str(path), "--store", fleet["store"], "--once")
    assert code == 0, err
    first = make_url(fleet["first"])
    bare = f"{first.host}:{first.port or 5432}/{first.database}"  # history's own default name, as before
    assert "first snapshot" in err and all(f"{name}: " in err for name in (bare, "second", "again"))
    for password in passwords:
        assert password not in err

    async def names() -> list[str]:
        conn = await asyncpg.connect(fleet["store"])
        try:
            return [r["name"] for r in await conn.fetch("SELECT name FROM pgpulse_history.target ORDER BY name")]
        finally:
            await conn.close()

    assert asyncio.run(names()) == sorted([bare, "second", "again"])


def test_both_commands_print_the_same_one_line_error_without_the_password(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        f"ok = postgresql://h/db\nbad = postgresql://u:{SECRET}@h:70000/db?password={QUERY_SECRET}\n",
    )
    expected = (
        f"error: {path}:2: port 70000 in postgresql://u:***@h:70000/db?password=*** is out of range: "
        "use 1-65535 (default 5432)"
    )
    doctor = _doctor("--targets", str(path))
    assert doctor.returncode == 2 and doctor.stderr.strip().splitlines() == [expected], doctor.stderr
    code, _, err = _history("collect", "--targets", str(path), "--store", "postgresql://h/store", "--once")
    assert code == 2 and err.strip().splitlines() == [expected], err
    for output in (doctor.stdout + doctor.stderr, err):
        assert SECRET.split("#")[0] not in output and QUERY_SECRET not in output and "Traceback" not in output
