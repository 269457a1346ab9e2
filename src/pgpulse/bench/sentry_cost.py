"""What the Sentry exporter costs: CPU per request and per query, profiler on vs profiler on + SentryExporter.

Two measurements, both CPU time of this process (``time.process_time``: what the hook takes from the app's
workers, not wall time a shared machine stretches), in interleaved rounds so drift lands on every variant:

* the hook alone, called on real closed records of CitizenApp requests (the lazy feed: 52 queries and one N+1;
  the selectin feed: 3 queries, no finding) inside a real, sampled Sentry transaction, minus a no-op hook
  given the same record and transaction; with Sentry not initialised, too (the no-op path);
* the whole request through CitizenApp in this process (httpx's ASGI transport, Sentry's FastAPI and
  SQLAlchemy integrations opening the transaction and the ``db`` spans): Sentry off, Sentry's own tracing,
  and Sentry's tracing with the exporter — what a user sees when they turn it on, next to what Sentry's own
  per-query spans cost.

The exporter adds nothing to the per-query listeners (it runs once per request, when the record closes); its
per-query figure is the per-request cost spread over the request's queries.

    python -m pgpulse.bench.sentry_cost [DATABASE_URL] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import sentry_sdk
import structlog
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.tracing import Transaction
from sentry_sdk.transport import Transport

from pgpulse.bench.context import Sizes, create_bench_data, drop_bench_data
from pgpulse.demo.app import create_app
from pgpulse.demo.embedded import ephemeral_server
from pgpulse.profiler import Record
from pgpulse.profiler.sentry import SentryExporter
from pgpulse.settings import Settings

SIZES = Sizes(200, 4_000, 1.0, 1.0, 0.3, 1, 1, 0.5, 0, 0, 0, 0)  # the showcase user (50 posts) is what counts


class _DropTransport(Transport):
    """Sentry's client builds each envelope; nothing is sent (network time is not the hook's)."""

    def capture_envelope(self, envelope: Envelope) -> None:
        return None


def _init_sentry() -> None:
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=_DropTransport(),
        traces_sample_rate=1.0,
        auto_enabling_integrations=False,
        integrations=[StarletteIntegration(), FastApiIntegration(), SqlalchemyIntegration()],
    )


def _noop(record: Record) -> None:
    return None


def _hook_cpu_us(hook: Callable[[Record], None], record: Record, calls: int) -> float:
    """CPU µs per call of ``hook`` on ``record``, each in a fresh sampled transaction (never finished: no
    envelope per call), the transaction's creation included (the no-op baseline pays it too)."""
    scope = sentry_sdk.get_current_scope()
    began = time.process_time()
    for _ in range(calls):
        transaction = Transaction(name="/users/{user_id}/posts", op="http.server", sampled=True)
        transaction.init_span_recorder(1000)
        scope.span = transaction
        hook(record)
    spent = time.process_time() - began
    scope.span = None
    return spent / calls * 1e6


async def _records(url: str, uid: int) -> dict[str, Record]:
    kept: list[Record] = []
    app = create_app(url, Settings(), on_record=kept.append)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    async with app.router.lifespan_context(app), client:
        for strategy in ("lazy", "selectin"):
            (await client.get(f"/users/{uid}/posts", params={"strategy": strategy})).raise_for_status()
    lazy, selectin = kept
    return {"lazy": lazy, "selectin": selectin}


def hook_cost(records: dict[str, Record], rounds: int, calls: int) -> dict[str, Any]:
    """Per-request CPU of the exporter alone (median of rounds, no-op baseline removed)."""
    plain, with_events = SentryExporter(), SentryExporter(events=True)
    out: dict[str, Any] = {}
    for name, record in records.items():
        with_events(record)  # its fingerprint is sent once; the rounds measure the steady state (seen already)
        samples: dict[str, list[float]] = {"exporter": [], "exporter events=True": []}
        for _ in range(rounds):
            baseline = _hook_cpu_us(_noop, record, calls)
            samples["exporter"].append(_hook_cpu_us(plain, record, calls) - baseline)
            samples["exporter events=True"].append(_hook_cpu_us(with_events, record, calls) - baseline)
        out[name] = {
            "queries": record.query_count,
            "findings": len(record.findings),
            **{
                variant: {
                    "us_per_request": round(statistics.median(values), 2),
                    "us_per_query": round(statistics.median(values) / record.query_count, 3),
                    "rounds_us": [round(v, 2) for v in values],
                }
                for variant, values in samples.items()
            },
        }
    return out


def inactive_cost(records: dict[str, Record], calls: int) -> float:
    """CPU µs per call with Sentry not initialised (the hook's early return)."""
    exporter = SentryExporter(events=True)
    record = records["lazy"]
    began = time.process_time()
    for _ in range(calls):
        exporter(record)
    return round((time.process_time() - began) / calls * 1e6, 3)


async def request_cost(url: str, uid: int, rounds: int, requests: int) -> dict[str, Any]:
    """CPU ms per whole request: Sentry off (its client unbound, so its integrations pass straight through),
    Sentry's own tracing, and Sentry's tracing + the exporter — the last two differ by the exporter only."""
    client = sentry_sdk.get_client()
    plain, exporting = create_app(url, Settings()), create_app(url, Settings(), on_record=SentryExporter())
    variants = {
        "profiler on, Sentry off": (plain, None),
        "profiler on, Sentry tracing": (plain, client),
        "profiler on, Sentry tracing + SentryExporter": (exporting, client),
    }
    out: dict[str, Any] = {}
    for strategy in ("lazy", "selectin"):
        path = f"/users/{uid}/posts?strategy={strategy}"
        samples: dict[str, list[float]] = {name: [] for name in variants}
        http = {
            app: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
            for app in (plain, exporting)
        }
        for app, sentry_client in variants.values():
            sentry_sdk.get_global_scope().set_client(sentry_client)
            for _ in range(3):  # warm-up: pool connections, prepared statements, code paths
                (await http[app].get(path)).raise_for_status()
        for _ in range(rounds):
            for name, (app, sentry_client) in variants.items():
                sentry_sdk.get_global_scope().set_client(sentry_client)
                began = time.process_time()
                for _ in range(requests):
                    (await http[app].get(path)).raise_for_status()
                samples[name].append((time.process_time() - began) / requests * 1e3)
        for session in http.values():
            await session.aclose()
        tracing, exporter = (statistics.median(samples[name]) for name in list(variants)[1:])
        out[strategy] = {
            **{
                name: {"cpu_ms_per_request": round(statistics.median(v), 3), "rounds_ms": [round(x, 3) for x in v]}
                for name, v in samples.items()
            },
            "exporter_added_ms_per_request": round(exporter - tracing, 3),
        }
    sentry_sdk.get_global_scope().set_client(client)
    for app in (plain, exporting):
        await app.state.engine.dispose()
    return out


async def measure(url: str, rounds: int) -> dict[str, Any]:
    data = await create_bench_data(url, SIZES)
    try:
        uid = data.showcase_user_id
        records = await _records(data.url, uid)
        result: dict[str, Any] = {"sentry_sdk": sentry_sdk.VERSION}
        result["inactive_us_per_call"] = inactive_cost(records, 20_000)
        _init_sentry()
        try:
            result["hook"] = hook_cost(records, rounds, 2_000)
            result["request"] = await request_cost(data.url, uid, rounds, 10)
        finally:
            sentry_sdk.get_client().close()
        return result
    finally:
        await drop_bench_data(data)


def _print(result: dict[str, Any]) -> None:
    print(f"sentry-sdk {result['sentry_sdk']}; CPU time (process_time), medians of interleaved rounds")
    print(f"Sentry not initialised: {result['inactive_us_per_call']} µs per request (the hook returns at once)")
    for name, r in result["hook"].items():
        for variant in ("exporter", "exporter events=True"):
            v = r[variant]
            print(
                f"hook alone, {name} ({r['queries']} queries, {r['findings']} N+1): {variant}: "
                f"{v['us_per_request']} µs per request = {v['us_per_query']} µs per query  rounds {v['rounds_us']}"
            )
    for strategy, r in result["request"].items():
        cells = ", ".join(f"{name} {v['cpu_ms_per_request']} ms" for name, v in r.items() if isinstance(v, dict))
        print(f"whole request, {strategy}: {cells}; the exporter added {r['exporter_added_ms_per_request']} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("database_url", nargs="?", default=None, help="a server to create a throw-away database on")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    # This process is the bench's own app: the N+1 warning of every timed lazy request would flood the terminal
    # (and cost the same in every variant), so its structlog drops them.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    if args.database_url:
        result = asyncio.run(measure(args.database_url, args.rounds))
    else:
        with ephemeral_server() as server:
            result = asyncio.run(measure(server.url(), args.rounds))
    _print(result)


if __name__ == "__main__":
    main()
