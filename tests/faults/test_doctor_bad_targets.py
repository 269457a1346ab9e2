"""``pgpulse doctor`` pointed at things that are not a healthy database it may read: one line, exit 2, never
a traceback or a password; or, for a role that may connect but see little, skipped checks with a reason.

(Closed port, wrong password, an HTTP server and bad arguments are covered in tests/doctor; these are the
other ways a target goes wrong.)"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url


@pytest.fixture
def odd_server() -> Iterator[Any]:
    """A TCP server on loopback whose behaviour the test picks: ``reset`` (close at once) or ``garbage``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    mode = {"value": "reset"}

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with client:
                if mode["value"] == "garbage":
                    client.recv(1024)
                    client.sendall(bytes(range(256)) * 4)
                    time.sleep(0.2)  # the fake server's behaviour: it keeps the socket open a moment, then hangs up

    threading.Thread(target=serve, daemon=True).start()

    class Odd:
        def url(self, behaviour: str) -> str:
            mode["value"] = behaviour
            return f"postgresql://u:odd-secret@127.0.0.1:{port}/db"

    yield Odd()
    listener.close()


@pytest.mark.parametrize("behaviour", ["reset", "garbage"])
def test_a_port_that_hangs_up_or_speaks_garbage(
    odd_server: Any, behaviour: str, run_doctor: Any, one_line_exit_2: Any
) -> None:
    one_line_exit_2(run_doctor(odd_server.url(behaviour)), secret="odd-secret")


def test_a_host_that_does_not_resolve(run_doctor: Any, one_line_exit_2: Any) -> None:
    one_line_exit_2(
        run_doctor("postgresql://u:dns-secret@no-such-host.invalid:5432/db"), "cannot connect", secret="dns-secret"
    )


def test_a_database_that_does_not_exist(citizen_db: Any, run_doctor: Any, one_line_exit_2: Any) -> None:
    url = make_url(citizen_db.url).set(database="no_such_db_here").render_as_string(hide_password=False)
    one_line_exit_2(run_doctor(url), "no such database", secret=citizen_db.server.password)


@pytest_asyncio.fixture(loop_scope="session")
async def limited_roles(citizen_db: Any) -> dict[str, str]:
    """Roles that reach the server but little else: no LOGIN, no CONNECT on the database, no privileges."""
    admin = await asyncpg.connect(citizen_db.url)
    try:
        for role in ("doc_nologin", "doc_noconnect", "doc_nothing"):
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.execute("CREATE ROLE doc_nologin NOLOGIN PASSWORD 'role-secret'")
        await admin.execute("CREATE ROLE doc_noconnect LOGIN PASSWORD 'role-secret'")
        await admin.execute("CREATE ROLE doc_nothing LOGIN PASSWORD 'role-secret'")
        await admin.execute("REVOKE CONNECT ON DATABASE citizen_faults FROM PUBLIC")
        await admin.execute("GRANT CONNECT ON DATABASE citizen_faults TO doc_nothing")
    finally:
        await admin.close()
    urls = {
        role: make_url(citizen_db.url).set(username=role, password="role-secret").render_as_string(hide_password=False)
        for role in ("doc_nologin", "doc_noconnect", "doc_nothing")
    }
    yield urls
    admin = await asyncpg.connect(citizen_db.url)
    try:
        await admin.execute("GRANT CONNECT ON DATABASE citizen_faults TO PUBLIC")
        await admin.execute("REVOKE CONNECT ON DATABASE citizen_faults FROM doc_nothing")
        for role in urls:
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
    finally:
        await admin.close()


def test_roles_that_may_not_log_in_or_connect(
    limited_roles: dict[str, str], run_doctor: Any, one_line_exit_2: Any
) -> None:
    one_line_exit_2(run_doctor(limited_roles["doc_nologin"]), "refused", secret="role-secret")
    one_line_exit_2(run_doctor(limited_roles["doc_noconnect"]), "refused", secret="role-secret")


def test_a_role_without_privileges_runs_with_skip_notes_through_the_cli(
    limited_roles: dict[str, str], run_doctor: Any
) -> None:
    result = run_doctor(limited_roles["doc_nothing"], "--format", "json")
    assert "Traceback" not in result.stderr and "role-secret" not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    # It ran (not 2); 1 exactly when a finding reaches the default --fail-on (warning), else 0.
    failing = [f for f in report["findings"] if f["severity"] in ("warning", "critical")]
    assert result.returncode == (1 if failing else 0), result.stderr
    skipped = {c["name"]: c["skipped"] for c in report["checks"] if c.get("skipped")}
    ran = [c["name"] for c in report["checks"] if not c.get("skipped")]
    assert ran, "checks that need no privilege still ran"
    for name, reason in skipped.items():
        assert reason.startswith("skipped: ") and "\n" not in reason, (name, reason)
