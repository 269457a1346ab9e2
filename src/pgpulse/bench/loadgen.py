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


async def _worker(
    host: str,
    port: int,
    requests: list[bytes],
    start: int,
    stop_at: float,
    record_from: float,
    tally: _Tally,
    min_requests: int = 0,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    turn = start
    try:
        while True:
            began = clock()
            # Past the window, go on only while the round has too few recorded requests to say anything:
            # requests slower than the window (a starved machine) would otherwise leave it empty.
            if began >= stop_at and len(tally.latencies_ms) + tally.errors >= min_requests:
                return
            request = requests[turn % len(requests)]
            turn += 1
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
                if 200 <= status < 300:  # 201 for a created post or comment in the whole-app mix
                    tally.latencies_ms.append((ended - began) * 1000.0)
                else:
                    tally.errors += 1
                key = str(status)
                tally.statuses[key] = tally.statuses.get(key, 0) + 1
                if tally.server_timing is None and b"server-timing" in headers:
                    tally.server_timing = headers[b"server-timing"].decode()
    finally:
        writer.close()


def build_request(host: str, port: int, method: str, path: str, body: Any = None) -> bytes:
    """One pre-built HTTP/1.1 keep-alive request; ``body`` (when given) is sent as JSON."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n"
    if body is None:
        return (head + "\r\n").encode()
    payload = json.dumps(body).encode()
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload


async def generate(
    host: str,
    port: int,
    mix: list[tuple[str, str, Any]],
    concurrency: int,
    seconds: float,
    warmup: float,
    min_requests: int = 0,
) -> dict[str, Any]:
    """``mix``: (method, path, JSON body or None) requests; worker ``i`` cycles through them from request
    ``i * len(mix) // concurrency``, so at any moment the workers are spread over the whole mix."""
    requests = [build_request(host, port, method, path, body) for method, path, body in mix]
    tally = _Tally()
    cpu_began = time.process_time()  # this process's own CPU over the run (warm-up included), not its start-up
    now = time.perf_counter()
    record_from = now + warmup
    stop_at = record_from + seconds
    await asyncio.gather(
        *(
            _worker(host, port, requests, i * len(requests) // concurrency, stop_at, record_from, tally, min_requests)
            for i in range(concurrency)
        )
    )
    # Requests in flight at stop_at finish late; the window is what the recorded requests occupied.
    elapsed = max(time.perf_counter(), stop_at) - record_from
    return {
        "latencies_ms": [round(x, 4) for x in tally.latencies_ms],
        "seconds": elapsed,
        "errors": tally.errors,
        "total": tally.total,
        "statuses": tally.statuses,
        "server_timing": tally.server_timing,
        "cpu_s": time.process_time() - cpu_began,
    }


@dataclass
class LoadResult:
    round: Round
    server_timing: str | None
    statuses: dict[str, int]
    total: int = 0
    server_cpu_s: float | None = None  # CPU the server process used during the run, when its pid is known
    db_cpu_s: float | None = None  # CPU the database server used during the run, when it runs here
    loadgen_cpu_s: float | None = None  # CPU this load generator used during the run
    machine_busy_s: float | None = None  # CPU every core of the machine spent busy during the run


async def run_load(
    port: int,
    path: str,
    concurrency: int,
    seconds: float,
    warmup: float = 0.5,
    host: str = "127.0.0.1",
    mix: list[tuple[str, str, Any]] | None = None,
    min_requests: int = 0,
) -> LoadResult:
    """Run the load generator in a child process and collect its JSON; ``mix`` replaces ``GET path``;
    ``min_requests``: keep going past ``seconds`` until that many requests were recorded."""
    where = ["--mix", json.dumps(mix)] if mix is not None else ["--path", path]
    where += ["--min-requests", str(min_requests)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pgpulse.bench.loadgen",
        "--host",
        host,
        "--port",
        str(port),
        *where,
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
        loadgen_cpu_s=data.get("cpu_s"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="closed-loop HTTP/1.1 keep-alive load generator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--path", help="GET this path")
    what.add_argument("--mix", help="JSON list of [method, path, body-or-null] requests to cycle through")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--min-requests", type=int, default=0, help="go on past --seconds until this many recorded")
    args = parser.parse_args()
    mix = [tuple(r) for r in json.loads(args.mix)] if args.mix else [("GET", args.path, None)]
    result = asyncio.run(
        generate(args.host, args.port, mix, args.concurrency, args.seconds, args.warmup, args.min_requests)
    )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
