"""CitizenApp under uvicorn in a child process: one worker, loopback, configured only through PGPULSE_ env.

A real server process, not an in-process ASGI call: the numbers then include HTTP parsing, the event loop
and the pool exactly as a user's deployment would have them, and the load generator's CPU is not counted
as the app's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pgpulse.bench.loadgen import _read_response
from pgpulse.demo.embedded import free_port


@dataclass
class AppServer:
    name: str
    port: int
    process: subprocess.Popen[bytes]


async def _get(port: int, path: str) -> tuple[int, dict[bytes, bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        return await _read_response(reader)
    finally:
        writer.close()


async def fetch_header(port: int, path: str, header: str) -> str | None:
    _, headers = await _get(port, path)
    value = headers.get(header.lower().encode())
    return value.decode() if value is not None else None


async def asgi_get(app: Any, path: str) -> int:
    """One GET through the app in this process (no server): enough to let the profiler see a request."""
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # never: the request has no more body and the client stays
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    await app(scope, receive, send)
    return status


@asynccontextmanager
async def serve_app(
    name: str, database_url: str, env: Mapping[str, str], timeout: float = 30.0, workers: int = 1
) -> AsyncIterator[AppServer]:
    """Start CitizenApp with ``env`` (e.g. ``PGPULSE_POOL=null``); yield once /health/db answers 200.

    With ``workers`` > 1 uvicorn forks that many processes behind one socket; ``process`` is their parent."""
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PGPULSE_") and k != "DATABASE_URL"}
    child_env.update({"PGPULSE_DATABASE_URL": database_url, **env})
    workdir = tempfile.mkdtemp(prefix="pgpulse-bench-app-")  # no stray .env file gets read
    log = open(os.path.join(workdir, "uvicorn.log"), "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "pgpulse.demo.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=child_env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.flush()
                with open(os.path.join(workdir, "uvicorn.log"), errors="replace") as f:
                    tail = f.read().strip().splitlines()[-1:]
                raise RuntimeError(f"CitizenApp ({name}) exited at start-up: {tail[0] if tail else 'no output'}")
            try:
                status, _ = await _get(port, "/health/db")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"CitizenApp ({name}) did not answer /health/db within {timeout:.0f} s")
            await asyncio.sleep(0.1)
        yield AppServer(name, port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
