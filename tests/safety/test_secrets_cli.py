"""No password in any output of a command that takes a database URL, and no traceback, whatever the URL.

Every command (doctor, advise, bench, demo, serve) runs as a real subprocess against the test server with a
wrong password in the URL's user-info and in ``?password=``, a closed port, a host that does not resolve, a
password with an unencoded ``/`` (which asyncpg and SQLAlchemy split differently) and a libpq keyword DSN.
Expected, from the contract in the README: exit code 2, exactly one ``error:`` line on stderr, no
``Traceback``, and the secret nowhere in stdout or stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import make_url

from pgpulse.demo.embedded import free_port

SECRET = "Hunter2Wr0ngPw"
SPECIALS = {"doctor": [], "advise": ["--query", "SELECT 1"], "demo": ["--no-serve"], "serve": []}


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPULSE_DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture(scope="module")
def bad_urls(pg_url: str) -> dict[str, str]:
    """Each failure mode once, the secret hidden a different way in each (user-info, query, unencoded)."""
    server = make_url(pg_url)
    host, port = server.host, server.port
    closed = free_port()
    return {
        "wrong password in user-info, unencoded /": f"postgresql://postgres:{SECRET}/x@{host}:{port}/postgres",
        "wrong password in ?password=": f"postgresql://postgres@{host}:{port}/postgres?password={SECRET}",
        "closed port, password in user-info": f"postgresql://postgres:{SECRET}@{host}:{closed}/postgres",
        "unresolvable host, password in the query": f"postgresql://u@no-such-host.invalid:5432/db?password={SECRET}",
    }


# A URL missing its host: "user:secret" with no "@" reads as host:port, and the error about the bad port printed
# the password (found by the targets-file work). Every command parses its URL the same way: each gets each case.
NO_HOST_URLS = {
    "user:password, no @": f"postgresql://postgres:{SECRET}",
    "user:password/db, no @": f"postgresql://postgres:{SECRET}/postgres",
    "user:pass#word, no @": f"postgresql://postgres:Hun#{SECRET}",
}
KEYWORD_DSN = f"host=127.0.0.1 port=5432 user=postgres password={SECRET} dbname=postgres"
COMMANDS = ("doctor", "advise", "bench", "demo", "serve")
# The dashboard connects per page, so only a URL that cannot be parsed fails before it serves. It once served
# anyway, and each page's traceback in its log ended in the parser's "invalid literal for int() with base 10:
# 'secret'" (the cause chained to the redacted DatabaseURLError).
PARSING_COMMANDS = (*COMMANDS, "dashboard")
# advise, bench, demo and serve parse and connect through the same code as doctor (db.engine, asyncpg):
# two cases each keep the suite lean
SHARED_PATH_CASES = ("wrong password in ?password=", "closed port, password in user-info")


def _cases(command: str, bad_urls: dict[str, str]) -> dict[str, str]:
    if command == "doctor":
        return bad_urls
    # bench once handed the raw URL to asyncpg, which read an unencoded "/" in the password as the end of the
    # host and printed the password inside a ValueError traceback
    extra = ("wrong password in user-info, unencoded /",) if command == "bench" else ()
    return {case: url for case, url in bad_urls.items() if case in SHARED_PATH_CASES + extra}


BENCH_BAD_URLS = {
    "not a url": "cannot parse database URL",
    f"mysql://root:{SECRET}@localhost/shop": "'mysql' is not PostgreSQL",
    f"http://admin:{SECRET}@localhost/": "'http' is not PostgreSQL",
    f"postgresql://postgres:{SECRET}@127.0.0.1:99999/postgres": "port 99999",
    "": "the database URL is empty",
}


def _command(name: str, url: str, tmp: str) -> list[str]:
    if name == "dashboard":
        return [name, url, "--port", str(free_port())]
    if name == "bench":
        return ["bench", url, "--quick", "--only", "composite", "--out", tmp]
    if name in ("demo", "serve"):
        port = [] if name == "demo" else ["--port", str(free_port())]
        return [name, *SPECIALS[name], *port, "--database-url", url]
    return [name, url, *SPECIALS[name]]


Results = dict[tuple[str, str], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def results(bad_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Results:
    """Every (command, URL) run once, a few at a time: ~30 interpreter start-ups are most of the cost."""
    tmp = str(tmp_path_factory.mktemp("bench-out"))
    runs = {(c, url): _command(c, url, tmp) for c in COMMANDS for url in _cases(c, bad_urls).values()}
    runs.update({("doctor", KEYWORD_DSN): _command("doctor", KEYWORD_DSN, tmp)})
    runs.update({(c, url): _command(c, url, tmp) for c in PARSING_COMMANDS for url in NO_HOST_URLS.values()})
    runs.update({("bench", url): _command("bench", url, tmp) for url in BENCH_BAD_URLS})
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(runs, pool.map(_cli, runs.values()), strict=True))


def _assert_one_safe_line(result: subprocess.CompletedProcess[str], case: str) -> str:
    output = result.stdout + result.stderr
    assert SECRET not in output, f"{case}: secret printed:\n{output[-1500:]}"
    assert "Traceback" not in output, f"{case}: traceback:\n{output[-1500:]}"
    assert result.returncode == 2, f"{case}: exit {result.returncode}\n{output[-800:]}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {result.stderr!r}"
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_urls_give_one_line_without_the_password(command: str, results: Results, bad_urls: dict[str, str]) -> None:
    for case, url in _cases(command, bad_urls).items():
        line = _assert_one_safe_line(results[command, url], f"{command} / {case}")
        if case.startswith("wrong password"):
            assert "password authentication failed" in line, line
        elif case.startswith("unresolvable host"):
            assert "no-such-host.invalid" in line, line
        else:
            assert "127.0.0.1" in line, line


def test_a_libpq_keyword_string_is_refused_without_echoing_its_password(results: Results) -> None:
    line = _assert_one_safe_line(results["doctor", KEYWORD_DSN], "doctor keyword DSN")
    assert "cannot parse database URL" in line and "password=***" in line, line


@pytest.mark.parametrize("command", PARSING_COMMANDS)
def test_a_url_missing_its_host_never_shows_the_password_it_ends_with(command: str, results: Results) -> None:
    for case, url in NO_HOST_URLS.items():
        line = _assert_one_safe_line(results[command, url], f"{command} / {case}")
        assert "postgresql://postgres:***" in line, line


@pytest.mark.parametrize(("url", "needle"), list(BENCH_BAD_URLS.items()))
def test_bench_refuses_unusable_urls_in_one_line(url: str, needle: str, results: Results) -> None:
    """Before the fix each of these ended in a traceback (the empty one ran a whole benchmark instead)."""
    line = _assert_one_safe_line(results["bench", url], f"bench {url!r}")
    assert needle in line, line


LIBRARY_CALLS = {
    "libpq_url": "from pgpulse.db.urls import libpq_url; libpq_url(sys.argv[1])",
    "dashboard app": "from pgpulse.dashboard import app; app(sys.argv[1], allow_unauthenticated=True)",
}


@pytest.mark.parametrize("call", list(LIBRARY_CALLS))
def test_an_unparseable_url_raised_into_an_app_shows_no_password_in_its_traceback(call: str) -> None:
    """An app that lets the library's error propagate prints its traceback, chained causes included: the cause
    of the redacted DatabaseURLError was SQLAlchemy's ``ValueError: invalid literal for int() with base 10:
    'secret'``."""
    for url in NO_HOST_URLS.values():
        result = subprocess.run(
            [sys.executable, "-c", f"import sys; {LIBRARY_CALLS[call]}", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1 and "DatabaseURLError: cannot parse database URL" in result.stderr
        assert SECRET not in result.stderr, result.stderr[-1500:]
