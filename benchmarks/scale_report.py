"""The table and chart of `make bench-scale` results (benchmarks/results/scale-<N>.json):
benchmarks/results/scale.md, docs/performance-scale.svg, and the part of
docs/performance.md between its `bench-scale` markers."""

from __future__ import annotations

import json
from pathlib import Path

BEGIN, END = "<!-- bench-scale:begin -->", "<!-- bench-scale:end -->"
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def load(results: Path) -> list[dict]:
    runs = [json.loads(p.read_text()) for p in results.glob("scale-*.json")]
    return sorted(runs, key=lambda run: run["events"])


def table(runs: list[dict]) -> str:
    """One row per size: each step's wall time, CPU time and peak RSS; the two ratios."""
    steps = list(runs[0]["steps"])
    head = (
        "| events | " + " | ".join(steps) + " | ceiling / ingest (wall; CPU) "
        "| fix loop / build (wall; CPU) |"
    )
    lines = [head, "|" + "---|" * (len(steps) + 3)]
    for run in runs:
        cells = [
            f"{s['wall_s']:.1f} s ({s['cpu_s']:.0f} s CPU), {s['peak_mib'] / 1024:.2f} GiB"
            for s in run["steps"].values()
        ]
        got = run["steps"]
        speed = [got["duckdb read (ceiling)"][k] / got["ingest"][k] for k in ("wall_s", "cpu_s")]
        loop = [got["fix loop"][k] / got["dbt build"][k] for k in ("wall_s", "cpu_s")]
        lines.append(
            f"| {run['events'] / 1e6:g}M | "
            + " | ".join(cells)
            + f" | {speed[0]:.2f}x; {speed[1]:.2f}x | {loop[0]:.0%}; {loop[1]:.0%} |"
        )
    loads = ", ".join(
        f"{run['events'] / 1e6:g}M: {min(s['load_before'] for s in run['steps'].values()):.1f}-"
        f"{max(s['load_before'] for s in run['steps'].values()):.1f}"
        for run in runs
    )
    return "\n".join(lines) + f"\n\nLoad average (1 min) when each step started: {loads}.\n"


def panel(runs: list[dict], key: str, x0: int, title: str, scale: float) -> list[str]:
    """One chart: `key` of every step against the number of events."""
    width, height, pad = 420, 260, 45
    xs = [run["events"] for run in runs]
    steps = list(runs[0]["steps"])
    top = max(run["steps"][s][key] * scale for run in runs for s in steps) or 1
    right = max(xs)

    def point(events: float, value: float) -> str:
        x = x0 + pad + (width - 2 * pad) * events / right
        y = height - pad - (height - 2 * pad) * value / top
        return f"{x:.1f},{y:.1f}"

    out = [
        f'<text x="{x0 + width / 2}" y="20" text-anchor="middle">{title}</text>',
        f'<polyline fill="none" stroke="#999" points="{point(0, top)} {point(0, 0)} '
        f'{point(right, 0)}"/>',
        f'<text x="{x0 + pad - 4}" y="{pad + 4}" text-anchor="end">{top:.0f}</text>',
        f'<text x="{x0 + width - pad}" y="{height - pad + 16}" text-anchor="end">'
        f"{right / 1e6:g}M events</text>",
    ]
    for colour, step in zip(COLOURS, steps, strict=False):
        points = " ".join(point(run["events"], run["steps"][step][key] * scale) for run in runs)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
    return out


def chart(runs: list[dict]) -> str:
    steps = list(runs[0]["steps"])
    body = panel(runs, "wall_s", 0, "wall time (s)", 1.0)
    body += panel(runs, "peak_mib", 430, "peak RSS (MiB)", 1.0)
    for i, (colour, step) in enumerate(zip(COLOURS, steps, strict=False)):
        x = 20 + 120 * i
        body.append(f'<rect x="{x}" y="272" width="12" height="12" fill="{colour}"/>')
        body.append(f'<text x="{x + 16}" y="283">{step}</text>')
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="860" height="295" '
        'font-family="sans-serif" font-size="11">\n' + "\n".join(body) + "\n</svg>\n"
    )


def render(results: Path, docs: Path) -> None:
    runs = load(results)
    if not runs:
        return
    text = table(runs)
    (results / "scale.md").write_text("# make bench-scale\n\n" + text)
    (docs / "performance-scale.svg").write_text(chart(runs))
    page = docs / "performance.md"
    if page.exists() and BEGIN in page.read_text():
        before, rest = page.read_text().split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        section = f"{BEGIN}\n{text}\n![time and memory per step](performance-scale.svg)\n{END}"
        page.write_text(before + section + after)
