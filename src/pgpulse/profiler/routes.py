"""The route label of a request: its full path template, whatever the router nesting.

Why not ``scope["route"].path``: current FastAPI hands the scope the route object of the router it was
declared on, without the ``include_router(prefix=…)`` prefixes; a mounted sub-app's routes know nothing of the
mount; ``root_path`` (an app behind a proxy) is outside the router altogether. The template is rebuilt from
what is reliable in every version: the request path (which includes ``root_path`` and every prefix), the
matched route's own template (the tail of the path) and the path parameters the routers collected on the
way (prefix parameters such as ``/orgs/{org_id}`` become placeholders again).

Requests that matched no route all get :data:`UNMATCHED`, never their path: a scanner probing ten thousand
URLs must not create ten thousand metric series.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UNMATCHED = "<unmatched>"


def _fill(template: str, params: Mapping[str, Any]) -> list[str] | None:
    """The template's segments with parameters filled in (None when a ``{x:path}`` parameter spans segments)."""
    out = []
    for segment in template.split("/")[1:]:  # templates start with "/": drop the empty first segment
        if segment.startswith("{") and segment.endswith("}"):
            name, _, convertor = segment[1:-1].partition(":")
            if convertor == "path":
                return None
            out.append(str(params.get(name, segment)))
        else:
            out.append(segment)
    return out


def _placeholders(segments: list[str], params: Mapping[str, Any], used: set[str]) -> list[str]:
    """Prefix segments equal to a path parameter the tail did not use become ``{name}`` again."""
    by_value = {str(v): k for k, v in params.items() if k not in used}
    return ["{" + by_value[s] + "}" if s in by_value else s for s in segments]


def public_path(scope: Mapping[str, Any]) -> str:
    """The request path including ``root_path``: servers differ on whether ``path`` already carries it."""
    path: str = scope.get("path") or ""
    root: str = scope.get("root_path") or ""
    return path if not root or path.startswith(root) else root.rstrip("/") + path


def route_template(scope: Mapping[str, Any], path: str | None = None) -> str:
    """The full path template of the request's matched route (``/api/v1/users/{user_id}/items``); ``path`` is
    :func:`public_path` taken before routing (default: the scope's)."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    params: Mapping[str, Any] = scope.get("path_params") or {}
    path = path if path is not None else public_path(scope)
    own = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(own, str):
        return UNMATCHED
    if hasattr(route, "routes") and not hasattr(route, "endpoint"):
        # A Mount of an app with no router of its own (metrics, static files): label the mount point.
        root: str = scope.get("root_path") or ""
        return "/".join(_placeholders(root.split("/"), params, set())) or own
    tail = _fill(own, params)
    used = {s[1:-1].partition(":")[0] for s in own.split("/") if s.startswith("{")}
    segments = path.split("/")
    if tail is None or len(tail) > len(segments) or segments[len(segments) - len(tail) :] != tail:
        # A path parameter spanning segments, or a redirect-slash mismatch: the prefix is unknown, keep the tail.
        return own
    prefix = _placeholders(segments[: len(segments) - len(tail)], params, used)
    return "/".join(prefix) + own
