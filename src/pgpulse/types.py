"""Shared type aliases. The ASGI ones are spelled out here (the ASGI spec's shapes) rather than imported from
Starlette, so the profiler's middleware works in any ASGI app without pulling a web framework into the core; the
WSGI ones likewise (PEP 3333), rather than from Werkzeug or typeshed's ``_typeshed.wsgi``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
