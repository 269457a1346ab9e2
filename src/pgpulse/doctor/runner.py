"""Run the checks on one read-only session; a check that cannot run is skipped with a note, never fatal.

The session is opened with ``default_transaction_read_only = on``, a ``statement_timeout`` and a
``lock_timeout``: the doctor inspects production databases and must never write, wait on a lock or run
away. A missing privilege (a role without pg_monitor/pg_read_all_stats) skips that one check.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import psutil

from pgpulse.db.connect import open_session
from pgpulse.doctor.check import Check, Context, Finding, Options, SkipCheck
from pgpulse.doctor.checks import ALL
from pgpulse.errors import UserError
from pgpulse.errors import one_line as _one_line

SESSION_SETTINGS = {"default_transaction_read_only": "on", "application_name": "pgpulse-doctor"}
# Set after the server's own values are read, so the settings check judges the server, not our session.
STATEMENT_TIMEOUT_SECONDS = 10
SESSION_LIMITS = {
    "statement_timeout": f"{STATEMENT_TIMEOUT_SECONDS}s",
    "lock_timeout": "1s",
    "idle_in_transaction_session_timeout": "60s",
}
SET_CONFIG = "SELECT set_config($1, $2, $3)"  # SET cannot take bound values; set_config can
SERVER_SETTINGS_SQL = "SELECT name, setting, unit FROM pg_settings"
# NULL over a Unix socket; a loopback address when the server runs on this machine.
SERVER_ADDRESS_SQL = "SELECT inet_server_addr() IS NULL OR inet_server_addr() <<= ANY($1::inet[])"
LOOPBACK = ["127.0.0.0/8", "::1/128"]


class ConnectError(UserError):
    """The database cannot be reached or refused us; ``str()`` is one line, without the password."""


@dataclass
class CheckResult:
    name: str
    title: str
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0


@dataclass
class Report:
    database: str
    server_version: str
    results: list[CheckResult]
    seconds: float

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]


Settings = dict[str, tuple[str, str | None]]


async def connect(url: str, timeout: float = 10.0) -> tuple[asyncpg.Connection, Settings]:
    """A read-only session with our limits set, and the server's settings as they were before we set them."""
    conn = await open_session(url, timeout=timeout, server_settings=SESSION_SETTINGS, error=ConnectError)
    try:
        settings = {r["name"]: (r["setting"], r["unit"]) for r in await conn.fetch(SERVER_SETTINGS_SQL)}
        for name, value in SESSION_LIMITS.items():
            await conn.execute(SET_CONFIG, name, value, False)
    except BaseException:
        await conn.close()
        raise
    return conn, settings


def _skip_reason(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return f"skipped: insufficient privilege ({_one_line(exc)}); grant pg_monitor to this role"
    if isinstance(exc, (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError, asyncpg.UndefinedObjectError)):
        return f"skipped: {_one_line(exc)} (extension or view not available)"
    if isinstance(exc, asyncpg.QueryCanceledError):
        return "skipped: the check hit the statement timeout"
    return f"skipped: {type(exc).__name__}: {_one_line(exc)}"


async def _server_memory(conn: asyncpg.Connection, options: Options) -> tuple[int | None, str]:
    """The server's RAM: what the user said (--memory), else this machine's when the server runs here."""
    if options.memory_bytes is not None:
        return options.memory_bytes, "--memory"
    if await conn.fetchval(SERVER_ADDRESS_SQL, LOOPBACK):
        return int(psutil.virtual_memory().total), "this host's RAM (the server listens on loopback)"
    return None, ""


async def run_checks(
    url: str,
    options: Options | None = None,
    checks: Sequence[Check] = ALL,
    on_progress: Callable[[str], None] | None = None,
    budget_seconds: float | None = None,
) -> Report:
    """Run ``checks`` on one database. With a budget, checks that would start after it ran out are skipped
    with that reason, and none runs a statement past it (its statement_timeout is cut to what is left)."""
    began = time.perf_counter()
    deadline = None if budget_seconds is None else began + budget_seconds
    conn, settings = await connect(url)
    try:
        # Keep our own catalog queries out of pg_stat_statements where the role may (superuser only).
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("SET pg_stat_statements.track = 'none'")
        version = await conn.fetchval("SHOW server_version")
        version_num = int(await conn.fetchval("SHOW server_version_num"))
        database = await conn.fetchval("SELECT current_database()")
        extensions = {r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension")}
        preload = settings.get("shared_preload_libraries", ("", None))[0]  # hidden from unprivileged roles
        opts = options or Options()
        memory, memory_source = await _server_memory(conn, opts)
        ctx = Context(
            conn=conn,
            server_version=version_num,
            database=database,
            extensions=extensions,
            preload_libraries={p.strip() for p in preload.split(",") if p.strip()},
            options=opts,
            settings=settings,
            memory_bytes=memory,
            memory_source=memory_source,
        )
        results = []
        for check in checks:
            result = CheckResult(check.name, check.title)
            results.append(result)
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0.05:
                result.skipped = f"skipped: the database's time budget ({budget_seconds:g} s) ran out"
                continue
            if on_progress:
                on_progress(check.title)
            started = time.perf_counter()
            try:
                # each check in its own read-only transaction: one failure cannot poison the next
                async with conn.transaction(readonly=True):
                    if left is not None and left < STATEMENT_TIMEOUT_SECONDS:
                        await conn.execute(SET_CONFIG, "statement_timeout", f"{int(left * 1000)}ms", True)
                    result.findings = await check.run(ctx)
            except SkipCheck as exc:
                result.skipped = f"skipped: {exc}"
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                result.skipped = _skip_reason(exc)
            result.seconds = time.perf_counter() - started
    except BaseException:
        conn.terminate()  # cancelled (the fleet's hard deadline) or broken: do not wait on the server
        raise
    await conn.close()
    return Report(database=database, server_version=version, results=results, seconds=time.perf_counter() - began)
