"""A throw-away PgBouncer (Debian's 1.18, transaction mode) in front of an embedded server: the benchmark's worker
pair shows the pool-sizing fix with it and the fault tests drive CitizenApp's PgBouncer mode through it.

PgBouncer refuses to run as root, so as root it runs as the ``postgres`` system user, its folder handed over to
that user. Few server connections for many clients is the point: consecutive transactions of one client land
on different server connections, which is exactly what breaks named prepared statements.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pgpulse.demo.embedded import EmbeddedPostgres, free_port
from pgpulse.errors import PgPulseError

PGBOUNCER = "/usr/sbin/pgbouncer"
PGBOUNCER_USER = "postgres"
START_SECONDS = 10


class PgBouncerMissing(PgPulseError):
    """Not installed here (Debian package pgbouncer), or no system user to run it as."""


class PgBouncerError(PgPulseError):
    """Installed, but it did not start: the message carries its stderr and log."""


@dataclass
class Bouncer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        return self.directory / "pgbouncer.log"


def _ini(directory: Path, pg_port: int, port: int, database: str, pool_size: int, max_clients: int) -> str:
    return f"""[databases]
{database} = host=127.0.0.1 port={pg_port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {directory / "userlist.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = {max_clients}
server_reset_query =
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
admin_users = postgres
"""


@contextmanager
def pgbouncer(server: EmbeddedPostgres, database: str, *, pool_size: int, max_clients: int = 500) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of ``server``'s ``database`` with ``pool_size`` server connections,
    listening on a free loopback port until the block ends."""
    if not os.path.exists(PGBOUNCER):
        raise PgBouncerMissing(f"{PGBOUNCER} is not installed (Debian package pgbouncer; scripts/test.sh installs it)")
    as_user: dict[str, object] = {}
    account = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(PGBOUNCER_USER)
        except KeyError:
            raise PgBouncerMissing(f"no system user {PGBOUNCER_USER!r} to run pgbouncer as (it refuses root)") from None
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    assert server.port is not None
    directory = Path(tempfile.mkdtemp(prefix="pgpulse-pgbouncer-"))
    port = free_port()
    (directory / "userlist.txt").write_text(f'"postgres" "{server.password}"\n')
    (directory / "pgbouncer.ini").write_text(_ini(directory, server.port, port, database, pool_size, max_clients))
    if account is not None:
        for path in (directory, *directory.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
    directory.chmod(0o700)
    # Its stderr goes to a file, never a pipe: PgBouncer logs every connection there too, and a pipe nobody
    # reads fills after a few thousand lines and stops it mid-benchmark (seen: the worker pair hung).
    stderr = (directory / "stderr.log").open("wb")
    process = subprocess.Popen(
        [PGBOUNCER, str(directory / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        cwd="/",
        **as_user,  # type: ignore[call-overload]
    )
    bouncer = Bouncer(port, directory, process)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = bouncer.log_path.read_text() if bouncer.log_path.exists() else ""
                said = (directory / "stderr.log").read_text(errors="replace")
                raise PgBouncerError(f"pgbouncer did not start: {said}{log}".strip())
            time.sleep(0.05)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        stderr.close()
        shutil.rmtree(directory, ignore_errors=True)
