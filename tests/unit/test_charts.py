"""The report's SVG charts: what their axes say."""

from __future__ import annotations

import re

from loader.audit import charts


def axis_labels(svg: str) -> list[str]:
    return re.findall(r'text-anchor="middle" fill="[^"]+">([^<]+)</text>', svg)


def test_a_column_chart_labels_its_last_column_however_many_there_are():
    labels = [str(day) for day in range(45)] + ["45+"]  # the event-age chart's overflow
    svg = charts.columns(labels, [("events", charts.BLUE, [1] * 46)], "Ages")
    shown = axis_labels(svg)
    assert shown[0] == "0" and shown[-1] == "45+"
    assert "44" not in shown  # no label crowds the last one
