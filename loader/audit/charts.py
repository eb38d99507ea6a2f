"""Small inline SVG charts for the HTML report: no scripts, no network, readable offline.

Each function returns one `<svg>` element as text. Every chart carries
`data-chart="<kind>"` and one `data-value` per mark, so tests can read what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH = 680
FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12"'
INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e4e7eb"
BLUE = "#2f6fb0"


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _svg(kind: str, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg data-chart="{kind}" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" style="max-width:{WIDTH}px" xmlns="http://www.w3.org/2000/svg" {FONT}>'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _clip(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def hbar(
    items: Sequence[tuple[str, float]],
    title: str,
    *,
    colors: Sequence[str] | None = None,
    label_width: int = 230,
) -> str:
    """Horizontal bars, one per (label, value), in the given order."""
    row, top = 24, 6
    height = top + row * max(len(items), 1) + 6
    peak = max((value for _, value in items), default=0) or 1
    span = WIDTH - label_width - 70
    body = []
    for index, (label, value) in enumerate(items):
        y = top + index * row
        width = max(span * value / peak, 1 if value else 0)
        color = colors[index] if colors else BLUE
        body.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" fill="{INK}">'
            f"<title>{escape(label)}</title>{escape(_clip(label, 34))}</text>"
            f'<rect data-value="{value}" data-label="{escape(label)}" x="{label_width}" '
            f'y="{y + 3}" width="{width:.1f}" height="{row - 8}" rx="2" fill="{color}"/>'
            f'<text x="{label_width + width + 6:.1f}" y="{y + 15}" fill="{MUTED}">'
            f"{_fmt(value)}</text>"
        )
    if not items:
        body.append(f'<text x="{label_width}" y="20" fill="{MUTED}">nothing to show</text>')
    return _svg("hbar", height, title, body)


def _legend(
    series: Sequence[tuple[str, str, Sequence[float]]], left: int, height: int
) -> list[str]:
    """A colour swatch and name per series, in a row along the chart's bottom edge."""
    items, x = [], left
    for name, color, _ in series:
        items.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{height - 5}" fill="{INK}">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return items


def _axis(left: int, right: int, top: int, plot_h: int, peak: float, unit: str = "") -> list[str]:
    """The x axis line, and gridlines with their values at half and all of `peak`."""
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{WIDTH - right}" y2="{top + plot_h}" '
        f'stroke="{MUTED}"/>'
    ]
    for fraction in (0.5, 1):
        y = top + plot_h * (1 - fraction)
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{MUTED}">'
            f"{_fmt(peak * fraction)}{escape(unit)}</text>"
        )
    return body


def columns(
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    title: str,
    *,
    markers: Sequence[tuple[float, str]] = (),
    height: int = 220,
) -> str:
    """Stacked columns: one per label; series are (name, color, values). Markers are
    dashed vertical lines at a column position (0 = left edge of the first column)."""
    left, right, top, bottom = 52, 12, 14, 40
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    count = max(len(labels), 1)
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    peak = _nice_max(max(totals, default=0))
    slot = plot_w / count
    body = _axis(left, right, top, plot_h, peak)
    every = max(1, math.ceil(count / 12))
    for i, label in enumerate(labels):
        x = left + i * slot
        base: float = top + plot_h
        for name, color, values in series:
            value = values[i]
            h = plot_h * value / peak
            if value:
                body.append(
                    f'<rect data-value="{value}" data-label="{escape(label)}" '
                    f'data-series="{escape(name)}" x="{x + slot * 0.12:.1f}" y="{base - h:.1f}" '
                    f'width="{slot * 0.76:.1f}" height="{h:.1f}" fill="{color}">'
                    f"<title>{escape(label)}: {_fmt(value)} {escape(name)}</title></rect>"
                )
            base -= h
        # every `every`th label, and always the last one (an overflow bucket says so),
        # without one crowding it
        last = i == count - 1
        if last or (i % every == 0 and count - 1 - i >= every / 2):
            body.append(
                f'<text x="{x + slot / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                f'fill="{MUTED}">{escape(label)}</text>'
            )
    for position, text in markers:
        x = left + position * slot
        body.append(
            f'<line data-marker="{escape(text)}" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" '
            f'y2="{top + plot_h}" stroke="#b42318" stroke-dasharray="4 3"/>'
            + (
                f'<text x="{x - 4:.1f}" y="{top + 8}" text-anchor="end" fill="#b42318">'
                if x > WIDTH * 0.7
                else f'<text x="{x + 4:.1f}" y="{top + 8}" fill="#b42318">'
            )
            + f"{escape(text)}</text>"
        )
    if len(series) > 1:
        body.extend(_legend(series, left, height))
    return _svg("columns", height, title, body)


def lines(
    xs: Sequence[float],
    series: Sequence[tuple[str, str, Sequence[float]]],
    title: str,
    *,
    x_labels: Sequence[tuple[float, str]] = (),
    height: int = 220,
    y_unit: str = "",
) -> str:
    """Line chart over a numeric x axis; x_labels are (x, text) ticks."""
    left, right, top, bottom = 60, 14, 14, 40
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    low, high = (min(xs), max(xs)) if xs else (0, 1)
    span = (high - low) or 1
    peak = _nice_max(max((max(v, default=0) for _, _, v in series), default=0))

    def px(x: float) -> float:
        return left + plot_w * (x - low) / span

    def py(y: float) -> float:
        return top + plot_h * (1 - y / peak)

    body = _axis(left, right, top, plot_h, peak, y_unit)
    for x, text in x_labels:
        at = px(x)
        anchor = "start" if at < left + 30 else "end" if at > WIDTH - right - 30 else "middle"
        body.append(
            f'<text x="{at:.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}" '
            f'fill="{MUTED}">{escape(text)}</text>'
        )
    for name, color, values in series:
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, values, strict=True))
        body.append(
            f'<polyline data-series="{escape(name)}" data-value="{values[-1] if values else 0}" '
            f'points="{points}" fill="none" stroke="{color}" stroke-width="2"/>'
        )
    body.extend(_legend(series, left, height))
    return _svg("lines", height, title, body)
