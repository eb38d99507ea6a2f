"""`loader report`: the HTML page, parsed and compared with the warehouse, and rendered
in headless Chromium when it is installed."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loader.audit.report import write_report
from loader.cli import app
from tests.conftest import held_open, query, run_dbt
from tests.html_tables import Tables
from tests.pushed import API_KEY, API_SECRET, Pushed, pushed_backfill
from tests.quarantine import example_batch, write_file

runner = CliRunner()


class Page(HTMLParser):
    """Every element's tag and attributes, and the text of the page."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def charts(self) -> list[list[dict]]:
        """The marks (rect/polyline with data-value) of each svg, in page order."""
        result, current = [], None
        for tag, attrs in self.elements:
            if tag == "svg":
                current = []
                result.append(current)
            elif current is not None and "data-value" in attrs:
                current.append(attrs)
        return result


@pytest.fixture(scope="module")
def pushed(tmp_path_factory) -> Pushed:
    """Sample data over 35 days (some events past 14 and 30 days), user attributes on,
    pushed to the emulator: the ledger holds every outcome."""
    return pushed_backfill(
        tmp_path_factory.mktemp("report"),
        days=35,
        dbt_vars={"replay_blocked_user_attributes": True},
    )


@pytest.fixture(scope="module")
def built(pushed) -> Path:
    return pushed.warehouse


@pytest.fixture(scope="module")
def report(built, tmp_path_factory) -> tuple[Path, Page, object]:
    """The report before a push: no ledger given."""
    out = tmp_path_factory.mktemp("out") / "report.html"
    summary = write_report(built, None, out)
    return out, Page(out.read_text(encoding="utf-8")), summary


def marks(chart: list[dict], series: str | None = None) -> dict[str, float]:
    return {
        m["data-label"]: float(m["data-value"])
        for m in chart
        if series is None or m.get("data-series") == series
    }


def test_the_page_is_self_contained(report):
    path, page, _ = report
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert not page.find("script") and not page.find("link") and not page.find("img")
    assert not page.find("iframe") and "@import" not in html and "url(" not in html
    for _, attrs in page.elements:
        for name in ("href", "src"):
            assert not attrs.get(name) or attrs[name].startswith("#"), attrs
    # the only URL is the SVG namespace, which is never fetched
    assert set(html.replace('xmlns="http://www.w3.org/2000/svg"', "").split("http")[1:]) == set()


def test_sections_and_warnings(report):
    _, page, summary = report
    ids = [a["id"] for t, a in page.elements if t == "section"]
    assert ids == [
        "warnings",
        "replay-set",
        "ages",
        "skipped",
        "fixes",
        "risk",
        "user-attributes",
        "data-plan",
        "privacy",
    ]
    text = " ".join(summary.warnings)
    assert "older than 14 days" in text
    assert "may overwrite newer values" in text
    assert "may be blocked again" in text
    assert not any("<" in warning for warning in summary.warnings)


def test_the_report_and_the_dry_run_tell_one_truth_of_blocked_user_attributes(
    built, report, tmp_path
):
    """Both read the build's replay_user_attributes: the users whose blocked user
    attributes are sent, and the events that carry them."""
    [(users, events)] = query(
        built,
        "select (select count(*) from replay_user_attributes where will_send), "
        "(select count(*) from replay_events where user_key in "
        "(select user_key from replay_user_attributes where will_send))",
    )
    assert users and events  # built with var replay_blocked_user_attributes
    path, _, _ = report
    page = " ".join(path.read_text(encoding="utf-8").split())
    assert f"{users:,} users get their blocked user attributes" in page
    env = {
        "BACKFILL_DUCKDB": str(built),
        "BACKFILL_LEDGER": str(tmp_path / "fresh.ledger.duckdb"),  # nothing sent yet
        "MPARTICLE_API_KEY": API_KEY,
        "MPARTICLE_API_SECRET": API_SECRET,
    }
    result = runner.invoke(
        app, ["push", "--dry-run", "--endpoint", "http://127.0.0.1:9/v2"], env=env
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert f"{events} events carry their users' blocked user attributes" in said
    assert "events set user attributes a fix put there" not in said


def test_charts_show_the_warehouse_numbers(built, report):
    _, page, _ = report
    charts = page.charts()
    by_name, by_day, ages, skipped, fixes, risk = charts[:6]

    expected = query(
        built,
        "select coalesce(event_name, event_json->>'$.data.screen_name') || ' (' || event_type "
        "|| ')', count(*) from replay_events group by all order by 2 desc, 1 limit 15",
    )
    assert marks(by_name) == {label: float(n) for label, n in expected}

    [(total,)] = query(built, "select count(*) from replay_events")
    assert sum(marks(by_day).values()) == total
    assert sum(marks(ages, "replayed").values()) == total

    reasons = query(
        built,
        "select skip_reason, count(*) from blocked_events__outcomes where outcome = 'skipped' "
        "group by all",
    )
    assert marks(skipped) == {reason: float(n) for reason, n in reasons}
    assert "older_than_max_age" in marks(skipped)

    per_fix = query(built, "select fix_name, rows_changed from fix_summary")
    assert marks(fixes) == {name: float(n) for name, n in per_fix}

    per_class = query(
        built,
        "select identity_class || ' (' || identity_risk || ')', events_to_replay "
        "from replay_summary__risk",
    )
    assert marks(risk) == {label: float(n) for label, n in per_class}
    assert {m["fill"] for m in risk if m["data-label"].endswith("(high)") and m["width"] != "0.0"}


def test_age_chart_marks_the_14_and_30_day_limits(report):
    _, page, _ = report
    markers = [a["data-marker"] for t, a in page.elements if "data-marker" in a]
    assert markers == ["14 d: replay advised within", "30 d: Events API limit"]
    ages = page.charts()[2]
    skipped_days = {int(m["data-label"]) for m in ages if m["data-series"] == "skipped"}
    replayed_days = {int(m["data-label"]) for m in ages if m["data-series"] == "replayed"}
    assert max(replayed_days) < 30 <= max(skipped_days)


def test_cli_writes_the_report(built, tmp_path):
    out = tmp_path / "sub" / "r.html"
    env = {"BACKFILL_DUCKDB": str(built), "BACKFILL_LEDGER": str(tmp_path / "none.duckdb")}
    result = runner.invoke(app, ["report", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout and "no push recorded yet" in result.stdout
    assert "warning: " in result.stderr
    assert out.stat().st_size > 5_000

    missing = runner.invoke(
        app, ["report", "--out", str(out)], env={"BACKFILL_DUCKDB": str(tmp_path / "x.duckdb")}
    )
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


# --- headless Chromium --------------------------------------------------------------------


def png_colors(data: bytes) -> Counter:
    """How many pixels of each RGB color an 8-bit RGB(A) non-interlaced PNG has."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, color_type, _, _, interlace = header
    assert depth == 8 and color_type in (2, 6) and interlace == 0
    bpp = 3 if color_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    colors: Counter = Counter()
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + (left + previous[x]) // 2) & 0xFF
        elif kind == 4:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                up, corner = previous[x], previous[x - bpp] if x >= bpp else 0
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[x] = (
                    line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)
                ) & 0xFF
        colors.update(bytes(line[x : x + 3]) for x in range(0, stride, bpp))
        previous = line
    assert sum(colors.values()) == width * height
    return colors


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI installs Chromium (.ci/run) and sets REQUIRE_CHROMIUM=1, so these never skip there.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("REQUIRE_CHROMIUM") != "1",
    reason="chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
# What Chromium needs here: no sandbox as root, no GPU, and no network of its own.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "REQUIRE_CHROMIUM=1 but chromium is not installed"
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class Rendered:
    """A page as headless Chromium rendered it: its DOM and what it logged to the console."""

    dom: str
    page: Page
    console: list[str]
    visible_text: str  # text nodes of the body outside style, script and svg titles


def render(path: Path, tmp_path: Path) -> Rendered:
    result = chromium(
        tmp_path,
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        path.as_uri(),
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(result.stdout, Page(result.stdout), console, body_text(result.stdout))


def body_text(html: str) -> str:
    """The text a reader sees: text nodes in the body, not in style, script or title."""

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack: list[str] = []
            self.parts: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in VOID:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            if tag in self.stack:
                del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag) :]

        def handle_data(self, data):
            hidden = {"head", "style", "script", "title", "template", "noscript"}
            if "body" in self.stack and not hidden & set(self.stack):
                self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def charts_of(page: Page) -> list[str]:
    return [attrs.get("data-chart", "") for tag, attrs in page.elements if tag == "svg"]


@needs_chromium
def test_headless_chromium_draws_the_charts(report, tmp_path):
    path, page, _ = report
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--hide-scrollbars", "--window-size=1000,2600", f"--screenshot={shot}",
             path.as_uri())  # fmt: skip
    colors = png_colors(shot.read_bytes())
    blue, low, high = bytes((47, 111, 176)), bytes((61, 139, 95)), bytes((194, 65, 12))
    assert colors[blue] > 2_000, "bar charts drawn in the chart blue"
    assert colors[low] > 200 and colors[high] > 50, "risk classes drawn in their colors"

    rendered = render(path, tmp_path)
    assert rendered.console == []
    assert charts_of(rendered.page) == charts_of(page)
    assert len(charts_of(page)) >= 6 and "hbar" in charts_of(page)
    assert rendered.page.charts() == page.charts()  # every mark of every chart


# --- after a push ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def after_push(pushed) -> tuple[Pushed, Page, object, str]:
    out = pushed.warehouse.parent / "report-after-push.html"
    summary = write_report(pushed.warehouse, pushed.ledger, out)
    html = out.read_text(encoding="utf-8")
    return pushed, Page(html), summary, html


def test_push_section_comes_first_with_the_send_states(after_push):
    pushed, page, summary, _ = after_push
    assert summary.has_push
    ids = [a["id"] for t, a in page.elements if t == "section"]
    assert ids[:3] == ["warnings", "push", "replay-set"]
    progress = pushed.report.progress
    states = marks(page.charts()[0])
    assert states["acknowledged"] == progress.events_acknowledged > 0
    assert states["failed"] == progress.events_failed > 0
    # one batch refused by mParticle (the scripted 400s isolate it); its events are rejected
    assert progress.batches_rejected == 1
    assert states["rejected"] == progress.events_rejected > 0
    [(total,)] = query(pushed.warehouse, "select count(*) from replay_events")
    assert (
        states["not sent yet"]
        == total - sum(states[s] for s in ("acknowledged", "failed", "rejected"))
        > 0
    )


def test_timeline_ends_where_the_ledger_stands(after_push):
    pushed, page, _, _ = after_push
    lines = {m["data-series"]: float(m["data-value"]) for m in page.charts()[1]}
    progress = pushed.report.progress
    assert lines["acknowledged"] == progress.events_acknowledged
    assert lines["failed or refused"] == progress.events_failed + progress.events_rejected
    states = marks(page.charts()[0])
    assert lines["not sent yet"] == states["not sent yet"]


def test_failures_show_mparticles_messages_and_no_secret(after_push):
    pushed, page, _, html = after_push
    text = " ".join(page.text)
    assert 'HTTP 400: Required event field "event_type" is missing or empty.' in text
    assert "HTTP 503" in text and "401 Unauthorized" in text
    assert API_SECRET not in html and API_KEY not in html
    throughput = [
        c for c in page.charts() if c and c[0].get("data-series", "").startswith("batches")
    ]
    # the line ends at the rate over the last window: batches accepted in it per second
    samples = query(
        pushed.ledger,
        "select epoch(sent_at), batch_count from requests where outcome = 'accepted' order by 1",
    )
    start, span = samples[0][0], max(samples[-1][0] - samples[0][0], 1.0)
    window = max(span / 12, 1.0)
    last = sum(n for at, n in samples if span - window < at - start <= span) / window
    assert len(throughput) == 1 and float(throughput[0][0]["data-value"]) == last > 0
    assert "batches/s" in text


def test_runs_tiles_and_warnings_keep_failed_refused_and_not_sent_apart(after_push):
    pushed, _, summary, html = after_push
    progress = pushed.report.progress
    assert progress.events_failed > 0 and progress.events_rejected > 0
    page = Tables(html)
    [run] = page.table("run", "started (UTC)")
    assert int(run["not sent (the run stopped first)"].replace(",", "")) == progress.events_not_sent
    assert int(run["failed"].replace(",", "")) == progress.events_failed
    assert int(run["refused"].replace(",", "")) == progress.events_rejected
    assert int(page.tiles["failed (sent again)"].replace(",", "")) == progress.events_failed
    assert int(page.tiles["refused"].replace(",", "")) == progress.events_rejected
    failures = page.table("outcome", "code")
    refused = [row for row in failures if row["outcome"] == "refused by mParticle (HTTP 400)"]
    assert [(row["code"], row["reason"]) for row in refused] == [
        ("missing_field", "a required field is missing or empty")
    ]
    assert refused[0]["example message"] == (
        'HTTP 400: Required event field "event_type" is missing or empty.'
    )
    assert {row["code"] for row in failures if row["outcome"].startswith("failed")} == {
        "gave_up",
        "credentials_refused",
    }
    assert (
        f"{progress.events_rejected:,} events were refused by mParticle (HTTP 400): "
        f"{progress.events_rejected:,}: a required field is missing or empty (missing_field). "
        "They are not sent again until a fix changes them; see Failures by reason."
    ) in summary.warnings


def test_a_ledger_held_by_a_running_push_leaves_out_the_push_section(after_push, tmp_path):
    pushed, _, _, _ = after_push
    with held_open(pushed.ledger) as holder:
        summary = write_report(pushed.warehouse, pushed.ledger, tmp_path / "r.html")
        html = (tmp_path / "r.html").read_text()
        result = runner.invoke(
            app,
            ["report", "--out", str(tmp_path / "cli.html")],
            env={"BACKFILL_DUCKDB": str(pushed.warehouse), "BACKFILL_LEDGER": str(pushed.ledger)},
        )
    assert not summary.has_push
    running = (
        f"a push is running (process {holder.pid} (python -c)) and holds the ledger "
        f"{pushed.ledger}; its results are not in this report"
    )
    assert any(running in warning.lower() for warning in summary.warnings)
    assert "--no-ledger" not in html and "Before you send" not in html
    assert "<h2>Warnings</h2>" in html
    assert result.exit_code == 0 and running in " ".join(result.stdout.split())
    assert "no push recorded yet" not in result.stdout


@needs_chromium
def test_the_page_after_a_push_renders_every_chart_without_console_errors(after_push, tmp_path):
    pushed, page, _, html = after_push
    path = tmp_path / "after-push.html"
    path.write_text(html, encoding="utf-8")
    rendered = render(path, tmp_path)
    assert rendered.console == []
    assert charts_of(rendered.page) == charts_of(page)
    assert {"lines", "hbar"} <= set(charts_of(page)), charts_of(page)
    assert rendered.page.charts() == page.charts()


# Event names and a user attribute name holding HTML and JavaScript: the page must show
# them as text, with no element or script of theirs in the rendered DOM.
HOSTILE = {
    "script": '<script>console.error("injected script")</script>',
    "img": '"><img src=x onerror=console.error("injected img")>',
    "style": '</style><b id="injected-style">not bold</b><style>',
    "attribute": '\'><svg onload=console.error("injected svg")><title>x</title></svg>',
}


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> tuple[Path, Page]:
    """A replay set whose event names and blocked user attribute name are HTML/JS."""
    folder = tmp_path_factory.mktemp("hostile")
    now_ms = int(time.time() * 1000)
    names = [HOSTILE["script"], HOSTILE["img"], HOSTILE["style"], HOSTILE["script"] + " 2"]
    batches = []
    for number in range(2):
        batch = example_batch(
            now_ms - 86_400_000,
            batch_id=str(1000 + number),
            user_attributes={HOSTILE["attribute"]: "gold"},
            user_identities={"customer_id": f"c{number}"},
        )
        for index, event in enumerate(batch["events"][:2]):
            event["data"]["event_name"] = names[2 * number + index]
            event["data"]["event_id"] = str(10 * number + index + 1)
        batch["events"] = batch["events"][:2]
        metadata = batch["context"]["data_plan"]["block_metadata"]
        metadata["blocked_event_ids"] = [e["data"]["event_id"] for e in batch["events"]]
        metadata["blocked_event_attributes"] = []
        metadata["blocked_user_attributes"] = [HOSTILE["attribute"]]
        batches.append(batch)
    write_file(folder / "q" / "hostile.txt", batches)
    warehouse = folder / "backfill.duckdb"
    result = runner.invoke(
        app, ["ingest", str(folder / "q")], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    assert result.exit_code == 0, result.output
    run_dbt(
        warehouse,
        "build",
        dbt_vars={"replay_reference_time_ms": now_ms, "replay_blocked_user_attributes": True},
    )
    assert sorted(n for (n,) in query(warehouse, "select event_name from replay_events")) == (
        sorted(names)
    )
    out = folder / "report.html"
    write_report(warehouse, None, out)
    return out, Page(out.read_text(encoding="utf-8"))


@needs_chromium
def test_html_in_event_names_and_attributes_is_shown_as_text(hostile_report, tmp_path):
    path, page = hostile_report
    rendered = render(path, tmp_path)

    assert rendered.console == [], "a payload ran or the page has errors"
    tags = {tag for tag, _ in rendered.page.elements}
    assert not tags & {"script", "img", "iframe", "object", "embed"}, tags
    assert not [a for _, a in rendered.page.elements if any(k.startswith("on") for k in a)]
    assert not rendered.page.find("b", id="injected-style")
    assert charts_of(rendered.page) == charts_of(page)
    assert rendered.page.charts() == page.charts()
    for payload in HOSTILE.values():
        assert payload in rendered.visible_text, payload
