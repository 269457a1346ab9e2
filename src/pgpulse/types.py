"""Shared type aliases. The ASGI ones are spelled out here (the ASGI spec's shapes) rather than imported from
Starlette, so the profiler's middleware works in any ASGI app without pulling a web framework into the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
