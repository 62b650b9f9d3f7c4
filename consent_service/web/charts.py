"""Decisions over time as a server-rendered SVG: one stacked bar per day, permits and denies.

Drawn here rather than by a charting library so the page needs no script, and with
presentation attributes and classes only (the Content-Security-Policy forbids inline styles).
The same numbers are always given as a table next to the chart, for screen readers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 40
OUTCOMES = {"permit": "allowed", "deny": "refused"}


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def timeline_svg(series: Sequence[dict[str, Any]], *, title: str, t: Callable[[str], str]) -> Markup:
    """``series`` is ``[{"day": date, "permit": n, "deny": n}, ...]`` oldest first."""
    top = _nice_ceiling(max((d["permit"] + d["deny"] for d in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(series), 1)
    bar = max(slot * 0.8, 1.0)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="chart-title"><title id="chart-title">{escape(title)}</title>'
    ]
    for tick in (0, top // 2, top) if top > 1 else (0, top):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for i, day in enumerate(series):
        x = LEFT + i * slot + (slot - bar) / 2
        base = TOP + plot_h
        for outcome in ("permit", "deny"):
            count = day[outcome]
            if not count:
                continue
            h = plot_h * count / top
            base -= h
            label = escape(f"{day['day'].isoformat()}: {count} {t(OUTCOMES[outcome])}")
            parts.append(
                f'<rect class="bar-{outcome}" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}"><title>{label}</title></rect>'
            )
        if i % max(len(series) // 6, 1) == 0 or i == len(series) - 1:
            parts.append(
                f'<text class="tick" x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{day["day"]:%d/%m}</text>'
            )
    legend_y = HEIGHT - 8
    parts.append(
        f'<rect class="bar-permit" x="{LEFT}" y="{legend_y - 10}" width="12" height="12"/>'
        f'<text class="legend" x="{LEFT + 18}" y="{legend_y}">{escape(t("allowed"))}</text>'
        f'<rect class="bar-deny" x="{LEFT + 120}" y="{legend_y - 10}" width="12" height="12"/>'
        f'<text class="legend" x="{LEFT + 138}" y="{legend_y}">{escape(t("refused"))}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))
