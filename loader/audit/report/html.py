"""The report page's HTML: its sections, building blocks (tables, tiles, details) and style."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape, unescape
from typing import Any

GRAY = "#a0aab4"  # what is not sent, in the charts


@dataclass
class Section:
    """One section of the page: its heading, HTML body and anchor."""

    title: str
    html: str
    anchor: str


def fmt(value: object) -> str:
    """A value as page text: thousands separators, "–" for none, escaped."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def html_table(
    headers: list[str], rows: list[tuple[Any, ...]], *, numeric: set[int] | None = None
) -> str:
    numeric = numeric if numeric is not None else set()
    head = "".join(
        f'<th class="{"num" if i in numeric else ""}">{escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i in numeric else ""}">{fmt(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_tiles(items: list[tuple[str, str, str]]) -> str:
    """(value, label, tone) tiles; tone is '', 'warn' or 'bad'."""
    return (
        '<div class="tiles">'
        + "".join(
            f'<div class="tile {tone}"><div class="value">{value}</div>'
            f'<div class="label">{escape(label)}</div></div>'
            for value, label, tone in items
        )
        + "</div>"
    )


def plain_text(html: str) -> str:
    """Text of an HTML fragment (for terminal messages)."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def html_details(summary: str, inner: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{inner}</details>"


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933;
       margin: 0; background: #f5f7fa; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 16px 0 4px; color: #52606d; }
section { background: #fff; border: 1px solid #e4e7eb; border-radius: 8px; padding: 16px 20px;
          margin: 16px 0; }
.meta { color: #6b7785; margin: 0 0 12px; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; }
.tile { background: #fff; border: 1px solid #e4e7eb; border-radius: 8px; padding: 10px 14px;
        min-width: 120px; }
.tile .value { font-size: 22px; font-weight: 600; }
.tile .label { color: #6b7785; font-size: 12px; }
.tile.warn { border-color: #f0b429; background: #fffbea; }
.tile.bad { border-color: #e12d39; background: #ffeeee; }
ul.warnings { margin: 0; padding-left: 20px; }
ul.warnings li { margin: 4px 0; }
p.warn, .callout { background: #fffbea; border-left: 4px solid #f0b429; padding: 8px 12px; }
table { border-collapse: collapse; margin: 8px 0; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e4e7eb;
         vertical-align: top; }
th { color: #52606d; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
details summary { cursor: pointer; color: #2f6fb0; margin: 6px 0; }
code { background: #f0f4f8; padding: 1px 4px; border-radius: 3px; font-size: 12px; }
nav a { margin-right: 12px; color: #2f6fb0; text-decoration: none; }
"""


def html_page(
    title: str,
    meta: str,
    tiles: str,
    warnings: list[str],
    sections: list[Section],
    warnings_title: str = "Before you send",
) -> str:
    """The whole page: headline tiles, navigation, warnings, then the sections."""
    nav = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in sections)
    warn = (
        f'<section id="warnings"><h2>{escape(warnings_title)}</h2><ul class="warnings">'
        + "".join(f"<li>{w}</li>" for w in warnings)
        + "</ul></section>"
        if warnings
        else ""
    )
    body = "".join(
        f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>{s.html}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main><h1>{escape(title)}</h1><p class='meta'>{meta}</p>"
        f"{tiles}<nav>{nav}</nav>{warn}{body}</main></body></html>\n"
    )
