"""Fuzz CitizenApp's HTTP API from its own OpenAPI schema: whatever a client sends, never a 500.

Schemathesis generates valid and invalid requests (wrong types, out-of-range ids up to 2**63, odd strings,
missing fields) for every operation and calls the app in process against the real database. Bounded to a
few dozen examples per operation and mode so it runs in seconds.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from pgpulse.demo.app import create_app

EXAMPLES = 15
# Every status a route can answer (404/409, and 503/504 on database faults) is declared in its schema.
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def _fuzzer(operation: Any, mode: GenerationMode, calls: dict[str, int]) -> Any:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)
        calls[operation.label] = calls.get(operation.label, 0) + 1

    return fuzz


def test_no_request_makes_citizenapp_answer_500(citizen_db: Any, settings_for: Any) -> None:
    # NullPool: schemathesis calls the app through Starlette's TestClient, which runs each call on an event
    # loop of its own; pooled asyncpg connections cannot move between loops, fresh ones can.
    app = create_app(citizen_db.url, settings_for(pool="null", profiler_enabled=False))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /users/{user_id}", "POST /users", "POST /posts", "POST /comments"}
    calls: dict[str, int] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz = _fuzzer(operation, mode, calls)

            try:
                fuzz()
            except Unsatisfiable:
                # nothing to make invalid (no parameters, no body): only the positive run applies
                assert mode is GenerationMode.NEGATIVE and not operation.path_parameters and not operation.body
    assert len(calls) == len(operations) and sum(calls.values()) >= EXAMPLES * len(operations), calls
    print(f"\nschemathesis: {sum(calls.values())} calls over {len(calls)} operations, no 500")


async def test_what_the_fuzzer_found_is_a_422_not_a_500(citizen_db: Any, citizen_app: Any) -> None:
    """Regressions found by the run above: values PostgreSQL or asyncpg cannot store. The schemas now refuse
    them, naming the field; the database-error mapping stays as the backstop (tested in tests/demo)."""
    async with citizen_app(citizen_db.url) as running:
        client = running.client
        nul = await client.post("/users", json={"name": "a\u0000b", "email": "nul-byte@example.org"})
        huge = await client.post("/posts", json={"user_id": 10**25, "title": "t"})
        huge_comment = await client.post("/comments", json={"post_id": 1, "user_id": 2**64, "text": "t"})
        ok = await client.post("/users", json={"name": "after", "email": "after-nul@example.org"})
    for response, field in ((nul, "name"), (huge, "user_id"), (huge_comment, "user_id")):
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", field]
    assert ok.status_code == 201
