"""CitizenApp as a many-worker test serves it: each response names the worker process that answered
(``x-worker-pid``), so a test can wait until every worker is up and see that more than one served."""

from __future__ import annotations

import os

from pgpulse.demo.app import create_app as create_citizen_app
from pgpulse.types import ASGIApp, Message, Receive, Scope, Send

PID_HEADER = "x-worker-pid"


def create_app() -> ASGIApp:
    app = create_citizen_app()

    async def with_pid(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)  # the lifespan: CitizenApp's start-up and shutdown
            return

        async def send_with_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                # asked per response: gunicorn --preload builds the app once, then forks the workers
                pid = str(os.getpid()).encode()
                message["headers"] = [*message.get("headers", ()), (PID_HEADER.encode(), pid)]
            await send(message)

        await app(scope, receive, send_with_pid)

    return with_pid
