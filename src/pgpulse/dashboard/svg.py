"""Charts drawn on the server as inline SVG: nothing to vendor, nothing fetched at run time, no JavaScript.

Every number that reaches the markup is a float formatted here; labels go through :func:`html.escape`, so a
chart cannot carry markup from the data it plots.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime


def _scale(values: Sequence[float], low: float, high: float) -> list[float]:
    top = max(values, default=0.0)
    bottom = min(min(values, default=0.0), 0.0)
    span = top - bottom or 1.0
    return [high - (v - bottom) / span * (high - low) for v in values]


def _points(values: Sequence[float], width: float, height: float, pad: float) -> str:
    ys = _scale(values, pad, height - pad)
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    return " ".join(f"{pad + i * step:.1f},{y:.1f}" for i, y in enumerate(ys))


def sparkline(values: Sequence[float], label: str, width: int = 120, height: int = 28) -> str:
    """A small line of ``values`` (oldest first); an empty string when there is nothing to draw."""
    if len(values) < 2:
        return ""
    title = html.escape(label)
    return (
        f'<svg class="spark" role="img" aria-label="{title}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{title}</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" '
        f'points="{_points(values, width, height, 2)}"/></svg>'
    )


def line_chart(
    times: Sequence[datetime], values: Sequence[float], label: str, unit: str, width: int = 640, height: int = 180
) -> str:
    """A line chart with its maximum and its first and last times written out: readable, not interactive."""
    if len(values) < 2:
        return ""
    left, bottom, pad = 56, 22, 6
    plot_w, plot_h = width - left - pad, height - bottom - pad
    ys = _scale(values, pad, pad + plot_h)
    step = plot_w / max(len(values) - 1, 1)
    points = " ".join(f"{left + i * step:.1f},{y:.1f}" for i, y in enumerate(ys))
    title = html.escape(label)
    top = max(values)
    first, last = times[0].strftime("%Y-%m-%d %H:%M"), times[-1].strftime("%Y-%m-%d %H:%M")
    return (
        f'<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="none"><title>{title}</title>'
        f'<line x1="{left}" y1="{pad + plot_h}" x2="{width - pad}" y2="{pad + plot_h}" class="axis"/>'
        f'<line x1="{left}" y1="{pad}" x2="{left}" y2="{pad + plot_h}" class="axis"/>'
        f'<text x="{left - 4}" y="{pad + 10}" text-anchor="end">{top:,.4g}</text>'
        f'<text x="{left - 4}" y="{pad + plot_h}" text-anchor="end">0</text>'
        f'<text x="{left - 4}" y="{pad + plot_h / 2}" text-anchor="end">{html.escape(unit)}</text>'
        f'<text x="{left}" y="{height - 4}">{first}</text>'
        f'<text x="{width - pad}" y="{height - 4}" text-anchor="end">{last}</text>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/></svg>'
    )
