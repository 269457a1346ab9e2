"""A light closed-loop HTTP load generator: raw HTTP/1.1 keep-alive over asyncio streams, one process.

On 2 cores the load generator competes with the server it measures. httpx spends more CPU per request than
a small FastAPI endpoint does, so at 32-way concurrency it would measure itself. This one writes a
pre-built request and parses just the status line and ``Content-Length``: a few µs per request. It runs
as its own process (``python -m pgpulse.bench.loadgen``) so it never shares an event loop or GIL with the
server or the orchestrator, and prints one JSON object: every request's latency in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pgpulse.bench.stats import Round


@dataclass
class _Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    total: int = 0  # every response, warm-up included: what the server's CPU time was spent on
    statuses: dict[str, int] = field(default_factory=dict)
    server_timing: str | None = None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers


async def _worker(host: str, port: int, request: bytes, stop_at: float, record_from: float, tally: _Tally) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    try:
        while True:
            began = clock()
            if began >= stop_at:
                return
            writer.write(request)
            try:
                status, headers = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                tally.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            ended = clock()
            tally.total += 1
            if began >= record_from:
                if status == 200:
                    tally.latencies_ms.append((ended - began) * 1000.0)
                else:
                    tally.errors += 1
                key = str(status)
                tally.statuses[key] = tally.statuses.get(key, 0) + 1
                if tally.server_timing is None and b"server-timing" in headers:
                    tally.server_timing = headers[b"server-timing"].decode()
    finally:
        writer.close()


async def generate(host: str, port: int, path: str, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
    tally = _Tally()
    now = time.perf_counter()
    record_from = now + warmup
    stop_at = record_from + seconds
    await asyncio.gather(*(_worker(host, port, request, stop_at, record_from, tally) for _ in range(concurrency)))
    # Requests in flight at stop_at finish late; the window is what the recorded requests occupied.
    elapsed = max(time.perf_counter(), stop_at) - record_from
    return {
        "latencies_ms": [round(x, 4) for x in tally.latencies_ms],
        "seconds": elapsed,
        "errors": tally.errors,
        "total": tally.total,
        "statuses": tally.statuses,
        "server_timing": tally.server_timing,
    }


@dataclass
class LoadResult:
    round: Round
    server_timing: str | None
    statuses: dict[str, int]
    total: int = 0
    server_cpu_s: float | None = None  # CPU the server process used during the run, when its pid is known


async def run_load(
    port: int, path: str, concurrency: int, seconds: float, warmup: float = 0.5, host: str = "127.0.0.1"
) -> LoadResult:
    """Run the load generator in a child process and collect its JSON."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pgpulse.bench.loadgen",
        "--host",
        host,
        "--port",
        str(port),
        "--path",
        path,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"load generator failed on {path}: {last[0]}")
    data = json.loads(out)
    return LoadResult(
        Round(data["latencies_ms"], data["seconds"], data["errors"]),
        data["server_timing"],
        data["statuses"],
        data["total"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="closed-loop HTTP/1.1 keep-alive load generator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    result = asyncio.run(generate(args.host, args.port, args.path, args.concurrency, args.seconds, args.warmup))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
