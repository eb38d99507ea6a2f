"""`loader report`: one self-contained HTML page about a backfill, for a data lead.

Before a push it shows what would be sent and what could go wrong (age, skipped events,
fixes, identity risk, user attributes, the data plan); after a push, what the ledger
recorded. Charts are inline SVG (loader.audit.charts): no scripts, no network, works offline.
The warehouse and the ledger are opened read-only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape, unescape
from pathlib import Path

import duckdb

from loader.audit import charts
from loader.audit.sql_session import LedgerUnavailable, open_session
from loader.build_settings import REBUILD_FOR_AGE_CHECKS, AgeLimits, read_age_limits
from loader.errors import LoaderError, MissingReplaySet
from loader.push.age_warnings import MAX_EVENT_AGE_DAYS, age_thresholds, age_warnings
from loader.push.build_freshness import stale_reason
from loader.push.ledger import DESTINATION_OF_KEY_SQL, outcome_label
from loader.push.send_plan import content_hash_sql

AGE_BINS = 45
RISK_COLORS = {"low": "#3d8b5f", "high": "#c2410c"}
GRAY = "#a0aab4"


class ReportError(LoaderError):
    """The report cannot be written."""


@dataclass
class Section:
    title: str
    html: str
    anchor: str


@dataclass
class ReportSummary:
    path: Path
    events_to_replay: int
    sections: list[str]
    warnings: list[str] = field(default_factory=list)
    has_push: bool = False
    overwrote: bool = False
    push_running: str | None = None  # a push holds the ledger: what to say about it


# --- reading ---------------------------------------------------------------------------


def _exists(con: duckdb.DuckDBPyConnection, table: str, catalog: str | None = None) -> bool:
    sql = "select count(*) from duckdb_tables() where table_name = ?"
    params: list = [table]
    if catalog:
        sql += " and database_name = ?"
        params.append(catalog)
    views = "select count(*) from duckdb_views() where view_name = ?"
    [(found,)] = con.execute(sql, params).fetchall()
    [(views_found,)] = con.execute(views, [table]).fetchall()
    return bool(found or views_found)


def _attached(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    sql = "select count(*) from duckdb_databases() where database_name = ?"
    [(found,)] = con.execute(sql, [name]).fetchall()
    return bool(found)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


# --- HTML helpers ----------------------------------------------------------------------


def _n(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def _table(headers: list[str], rows: list[tuple], *, numeric: set[int] | None = None) -> str:
    numeric = numeric if numeric is not None else set()
    head = "".join(
        f'<th class="{"num" if i in numeric else ""}">{escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i in numeric else ""}">{_n(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tiles(items: list[tuple[str, str, str]]) -> str:
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


def _plain(html: str) -> str:
    """Text of an HTML fragment (for terminal messages)."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def _details(summary: str, inner: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{inner}</details>"


# --- sections --------------------------------------------------------------------------


def _replay_set(con: duckdb.DuckDBPyConnection, limits: AgeLimits | None) -> tuple[Section, dict]:
    thresholds = [] if limits is None else age_thresholds(limits)
    older = "".join(f"count(*) filter (where event_age_days > {days}), " for days in thresholds)
    [(events, users, first, last, oldest, duplicates, *older_counts)] = _rows(
        con,
        f"""
        select
            count(*),
            count(distinct user_key),
            min(event_time)::date,
            max(event_time)::date,
            max(event_age_days),
            count(*) filter (where replay_reason = 'blocked_attributes'),
            {older}
        from replay_events
        """,
    )
    by_name = _rows(
        con,
        """
        select
            event_type,
            coalesce(event_name, event_json->>'$.data.screen_name', '(no name)') as name,
            count(*) as events,
            count(distinct user_key) as users,
        from replay_events
        group by all
        order by events desc, event_type, name
        """,
    )
    by_day = dict(
        _rows(con, "select event_time::date, count(*) from replay_events group by 1 order by 1")
    )
    top = by_name[:15]
    chart_by_name = charts.hbar(
        [(f"{name} ({kind})", count) for kind, name, count, _ in top],
        "Events to replay by name and type",
    )
    days: list[date] = []
    if by_day:
        day = min(by_day)
        while day <= max(by_day):
            days.append(day)
            day += timedelta(days=1)
    chart_by_day = charts.columns(
        [d.strftime("%m-%d") for d in days],
        [("events", charts.BLUE, [by_day.get(d, 0) for d in days])],
        "Events to replay by day of the event (UTC)",
    )
    facts = {
        "events": events,
        "users": users,
        "oldest_days": oldest,
        "older_than": dict(zip(thresholds, older_counts, strict=True)),
        "duplicates": duplicates,
    }
    html = (
        f"<p>{_n(events)} events of {_n(users)} users, from {_n(first)} to {_n(last)} "
        f"(event time, UTC).</p>"
        f"<h3>By name and type</h3>{chart_by_name}"
        + _details(
            f"All {len(by_name)} event names",
            _table(["type", "name", "events", "users"], by_name, numeric={2, 3}),
        )
        + f"<h3>By day</h3>{chart_by_day}"
    )
    return Section("The replay set", html, "replay-set"), facts


def _ages(con: duckdb.DuckDBPyConnection, limits: AgeLimits | None) -> Section:
    rows = _rows(
        con,
        """
        select
            least(floor(classified.event_age_days)::integer, ?) as age_day,
            outcomes.outcome = 'replay' as replayed,
            count(*),
        from int_events__classified as classified
        inner join blocked_events__outcomes as outcomes using (replay_key)
        where classified.event_age_days is not null
            and (classified.is_blocked_event or outcomes.outcome = 'replay')
        group by all
        """,
        [AGE_BINS],
    )
    oldest = max((day for day, _, _ in rows), default=0)
    shown = oldest if limits is None else max(oldest, limits.max_days + 1)
    bins = list(range(0, min(shown, AGE_BINS) + 1))
    counts = {(max(day, 0), replayed): n for day, replayed, n in rows}
    replay = [counts.get((b, True), 0) for b in bins]
    skipped = [counts.get((b, False), 0) for b in bins]
    labels = [f"{b}+" if b == AGE_BINS else str(b) for b in bins]
    markers = (
        []
        if limits is None
        else [
            (limits.warn_days, f"{limits.warn_days} d: replay advised within"),
            (limits.max_days, f"{limits.max_days} d: Events API limit"),
        ]
    )
    chart = charts.columns(
        labels,
        [("replayed", charts.BLUE, replay), ("skipped", GRAY, skipped)],
        "Blocked events by age in days at build time",
        markers=markers,
    )
    intro = (
        "<p>Age at build time (dbt var <code>replay_reference_time_ms</code>, else when "
        "<code>dbt build</code> ran); events age further until they are sent. "
    )
    if limits is None:
        html = f"{intro}No age checks: {escape(REBUILD_FOR_AGE_CHECKS)}.</p>{chart}"
        return Section("Event age", html, "ages")
    over_advised = sum(n for b, n in zip(bins, replay, strict=True) if b >= limits.warn_days)
    over_max = sum(n for b, n in zip(bins, replay, strict=True) if b >= limits.max_days)
    html = (
        f"{intro}Limits of this build (dbt vars <code>warn_event_age_days</code> and "
        f"<code>max_event_age_days</code>): replay advised within {limits.warn_days} days "
        f"(many downstream tools drop older data); skipped past {limits.max_days} days "
        f"(<code>/bulkevents</code> takes data up to {MAX_EVENT_AGE_DAYS} days old). Replayed: "
        f"{_n(over_advised)} older than {limits.warn_days} days, "
        f"{_n(over_max)} older than {limits.max_days}.</p>{chart}"
    )
    return Section("Event age", html, "ages")


def _skipped(con: duckdb.DuckDBPyConnection) -> tuple[Section, int]:
    rows = _rows(
        con,
        """
        select skip_reason, count(*) as events
        from blocked_events__outcomes
        where outcome = 'skipped'
        group by all
        order by events desc, skip_reason
        """,
    )
    total = sum(n for _, n in rows)
    html = (
        f"<p>{_n(total)} blocked events are not replayed. Each has a reason "
        f"(<code>blocked_events__outcomes</code>); a test fails the build if one has none.</p>"
        + charts.hbar(rows, "Skipped events by reason")
    )
    return Section("Skipped events", html, "skipped"), total


def _fixes(con: duckdb.DuckDBPyConnection) -> Section:
    if _exists(con, "fix_summary"):
        rows = _rows(
            con,
            "select fix_name, rows_changed, rows_changed_replayed, rows_skipped "
            "from fix_summary order by fix_position",
        )
    else:
        rows = _rows(
            con,
            """
            select fix_name, count(*), count(replay.replay_key), 0
            from int_events__fix_changes
            left join replay_events as replay using (replay_key)
            group by fix_name, fix_position
            order by fix_position
            """,
        )
    if not rows:
        return Section("Fixes", "<p>No fix in the chain (dbt var <code>fixes</code>).</p>", "fixes")
    html = (
        "<p>Events each fix changed, in chain order (dbt var <code>fixes</code>). A fix that "
        "changes nothing is usually a bug.</p>"
        + charts.hbar([(name, changed) for name, changed, _, _ in rows], "Events changed per fix")
        + _table(
            ["fix", "events changed", "of them replayed", "skipped by the fix"],
            rows,
            numeric={1, 2, 3},
        )
    )
    return Section("Fixes", html, "fixes")


def _risk(con: duckdb.DuckDBPyConnection) -> tuple[Section, int]:
    if not _exists(con, "replay_summary__risk"):
        return Section("Identity risk", "<p>Model replay_summary__risk not built.</p>", "risk"), 0
    rows = _rows(
        con,
        "select identity_class, identity_risk, users, events_to_replay, "
        "events_excluded_for_risk, meaning from replay_summary__risk order by sort_order",
    )
    high_events = sum(r[3] for r in rows if r[1] == "high")
    chart = charts.hbar(
        [(f"{cls} ({risk})", events) for cls, risk, _, events, _, _ in rows],
        "Events to replay by identity class",
        colors=[RISK_COLORS.get(risk, GRAY) for _, risk, *_ in rows],
    )
    excluded = sum(r[4] for r in rows)
    advice = (
        f"{_n(excluded)} events of high-risk users are excluded (dbt var "
        "<code>exclude_high_risk_users</code>)."
        if excluded
        else "To leave high-risk users out, build with "
        "<code>--vars '{exclude_high_risk_users: true}'</code>."
    )
    html = (
        "<p>A batch without an MPID is matched to a profile by its identities. Without a login "
        "identity (dbt var <code>login_identity_types</code>) mParticle may create a new "
        "profile: an extra MTU on the bill, and the data on the wrong user. "
        f"{advice}</p>{chart}"
        + _table(
            ["class", "risk", "users", "events to replay", "excluded", "what mParticle does"],
            rows,
            numeric={2, 3, 4},
        )
    )
    return Section("Identity risk", html, "risk"), high_events


def _user_attributes(con: duckdb.DuckDBPyConnection) -> tuple[Section | None, int]:
    if not _exists(con, "replay_user_attributes"):
        return None, 0
    rows = _rows(
        con,
        """
        select
            count(*) filter (where will_send),
            count(*) filter (where not will_send),
            coalesce(any_value(not_sent_reason) filter (where not will_send), ''),
            list_distinct(flatten(list(attribute_names) filter (where will_send))),
        from replay_user_attributes
        """,
    )
    sent, held, reason, names = rows[0]
    if not sent and not held:
        return None, 0
    if sent:
        html = (
            f'<p class="warn">{_n(sent)} users get their blocked user attributes '
            f"({escape(', '.join(sorted(names or [])))}) with their replay batches, at the "
            "latest blocked value. <b>They overwrite the profile's current values, which may "
            "be newer.</b> See <code>replay_user_attributes</code>.</p>"
        )
        if held:
            html += f"<p>{_n(held)} more users have blocked user attributes not sent.</p>"
    else:
        html = (
            f"<p>{_n(held)} users have blocked user attributes that are not sent ({escape(reason)}"
            "). Build with <code>--vars '{replay_blocked_user_attributes: true}'</code> to send "
            "them with each user's replay batches.</p>"
        )
    return Section("User attributes", html, "user-attributes"), sent


def _integration_limits(con: duckdb.DuckDBPyConnection) -> Section | None:
    """Per integration of var integrations: its age limit and the events past it, by day."""
    if not _exists(con, "integration_age_limit_events"):
        return None
    totals = _rows(
        con,
        """select i.integration, coalesce(i.max_event_age_days::varchar, 'unknown'),
            coalesce(sum(e.events), 0), sum(e.events_over_limit), i.source_url
        from replay_integrations i
        left join integration_age_limit_events e using (integration)
        group by all order by min(i.position)""",
    )
    if not totals:
        return None
    by_day = _rows(
        con,
        "select integration, event_date::varchar, events, events_over_limit "
        "from integration_age_limit_events where events_over_limit > 0 "
        "order by integration, event_date",
    )
    html = (
        "<p>Each integration this backfill feeds (dbt var <code>integrations</code>) and "
        "the replay events older than it accepts at the build's reference time (an unknown "
        "limit shows as unknown, never guessed: seed <code>integration_limits</code>).</p>"
        + _table(
            ["integration", "max age (days)", "events", "older than accepted", "source"],
            totals,
            numeric={2, 3},
        )
        + (
            _details(
                "Events older than accepted, by day",
                _table(
                    ["integration", "day", "events", "older than accepted"], by_day, numeric={2, 3}
                ),
            )
            if by_day
            else ""
        )
    )
    return Section("Integration limits", html, "integration-limits")


def _data_plan(con: duckdb.DuckDBPyConnection) -> Section:
    rows = _rows(
        con,
        "select coalesce(data_plan_note, 'no data plan'), count(*) from replay_events "
        "group by all order by 2 desc",
    )
    html = (
        _table(["data plan sent with the replay", "events"], rows, numeric={1})
        + "<p>Check the replay set against the plan version it will meet: "
        "<code>loader plan-check PLAN.json</code>.</p>"
    )
    return Section("Data plan", html, "data-plan")


# --- after a push: the ledger ----------------------------------------------------------

STATE_COLORS = {
    "acknowledged": "#3d8b5f",
    "acknowledged, changed since": "#8bbf9f",
    "failed": "#c2410c",
    "rejected": "#9b1c1c",
    "pending": GRAY,
}
# where each replay event of the replay set stands: the ledger's `event_states` (its latest
# batch, as `loader status` counts), and whether what was acknowledged is still its content
EVENT_STATES_SQL = f"""
    with states as (
        select
            replay.replay_key,
            case
                when known.acknowledged_hash = {content_hash_sql("replay")} then 'acknowledged'
                when known.ever_acknowledged then 'acknowledged, changed since'
                when known.state in ('failed', 'rejected') then known.state
                else 'pending'
            end as state,
            known.acknowledged_at,
        from replay_events as replay
        left join ledger.event_states as known using (replay_key)
    )
"""
BUCKETS = 48


def _ticks(start_s: float, span_s: float, xs: list[float], every: int) -> list[tuple]:
    """Axis labels: clock times (UTC); seconds after the first tick for a short span."""
    ticks = []
    for i in range(0, len(xs), every):
        moment = datetime.fromtimestamp(start_s + xs[i], UTC)
        if span_s > 86_400:
            label = moment.strftime("%m-%d %H:%M")
        elif span_s >= 600:
            label = moment.strftime("%H:%M")
        elif span_s >= 120 or i == 0:
            label = moment.strftime("%H:%M:%S")
        else:
            label = f"+{xs[i] - xs[0]:.1f} s"
        ticks.append((xs[i], label))
    return ticks


TIMELINE_SQL = """
    with batch_events as (  -- events of each batch that are in the replay set now
        select source_request_id, count(*) as events
        from ledger.batch_events
        semi join replay_events using (replay_key)
        group by all
    ),
    attempts as (
        select
            run_id,
            request_id,
            unnest(source_request_ids) as source_request_id,
            epoch(sent_at) + coalesce(latency_ms, 0) / 1000 as happened_at,
            outcome,
            batch_count,
        from ledger.requests
    ),
    marked as (
        select
            *,
            row_number() over (
                partition by run_id, source_request_id order by request_id desc
            ) = 1 as last_in_run,
        from attempts
    ),
    transitions as (
        select
            source_request_id,
            happened_at,
            case
                when outcome = 'accepted' then 'acknowledged'
                when outcome = 'bad_request' and batch_count = 1 then 'failed'
                when last_in_run then 'failed'
            end as state,
            request_id,
        from marked
        union all
        -- refused before sending (local checks): rejected when planned
        select source_request_id, epoch(planned_at), 'failed', 0
        from ledger.batches
        where status = 'rejected' and first_sent_at is null
    )
    select
        transitions.happened_at,
        transitions.source_request_id,
        transitions.state,
        batch_events.events,
    from transitions
    inner join batch_events using (source_request_id)
    inner join ledger.batches using (source_request_id)
    where transitions.state is not null and batches.status <> 'superseded'
    order by transitions.happened_at, transitions.request_id
"""


def _timeline(con: duckdb.DuckDBPyConnection, total: int) -> str:
    """Replay events acknowledged, failed and not yet acknowledged, over wall-clock time.

    Rebuilt from every HTTP attempt: a batch is failed from the attempt its run gave up on
    (or a 400 on it alone) until an attempt of a later run is accepted."""
    transitions = _rows(con, TIMELINE_SQL)
    if not transitions:
        return "<p>No request sent yet.</p>"
    start = transitions[0][0]
    end = max(transitions[-1][0], start + 1.0)
    span = end - start
    xs = [start + span * i / BUCKETS for i in range(BUCKETS + 1)]
    state: dict[str, tuple[str, int]] = {}
    counts = {"acknowledged": 0, "failed": 0}
    sent, failed = [], []
    position = 0
    for x in xs:
        while position < len(transitions) and transitions[position][0] <= x + 1e-9:
            _, batch, new_state, events = transitions[position]
            previous = state.get(batch)
            if previous:
                counts[previous[0]] -= previous[1]
            state[batch] = (new_state, events)
            counts[new_state] += events
            position += 1
        sent.append(counts["acknowledged"])
        failed.append(counts["failed"])
    pending = [max(total - a - f, 0) for a, f in zip(sent, failed, strict=True)]
    offsets = [x - start for x in xs]
    return charts.lines(
        offsets,
        [
            ("acknowledged", STATE_COLORS["acknowledged"], sent),
            ("failed or refused", STATE_COLORS["failed"], failed),
            ("not sent yet", GRAY, pending),
        ],
        "Replay events acknowledged, failed and not sent yet, over time (UTC)",
        x_labels=_ticks(start, span, offsets, BUCKETS // 4),
    )


def _throughput(con: duckdb.DuckDBPyConnection) -> tuple[str, list[tuple]]:
    per_run = _rows(
        con,
        """
        select
            runs.run_id,
            runs.events_acknowledged,
            coalesce(t.batches_accepted, 0) as batches_accepted,
            coalesce(t.http_requests, 0),
            coalesce(t.rate_limited, 0),
            round(t.send_seconds, 1) as send_s,
            round(runs.events_acknowledged / t.send_seconds, 1) as events_per_s,
            round(t.batches_per_second, 1) as batches_per_s,
        from ledger.runs as runs
        left join ledger.run_throughput as t using (run_id)
        order by runs.run_id
        """,
    )
    samples = _rows(
        con,
        "select epoch(sent_at), batch_count from ledger.requests where outcome = 'accepted' "
        "order by 1",
    )
    if len(samples) < 2:
        return "<p>Fewer than two accepted requests: no rate to chart.</p>", per_run
    start, end = samples[0][0], samples[-1][0]
    span = max(end - start, 1.0)
    window = max(span / 12, 1.0)  # a moving window smooths single requests into a rate
    xs = [span * i / BUCKETS for i in range(BUCKETS + 1)]
    rate = [sum(n for at, n in samples if x - window < at - start <= x) / window for x in xs]
    chart = charts.lines(
        xs,
        [("batches accepted per second", charts.BLUE, rate)],
        f"Throughput: batches accepted per second, over {window:.0f} s windows "
        "(mParticle's default limit is 270)",
        x_labels=_ticks(start, span, xs, BUCKETS // 4),
        y_unit="/s",
    )
    return chart, per_run


STATE_ORDER = ["acknowledged", "acknowledged, changed since", "failed", "rejected", "pending"]


def _send_states(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], str]:
    """Replay events by send state, and their chart."""
    states = dict(_rows(con, EVENT_STATES_SQL + "select state, count(*) from states group by all"))
    bars = [
        (state, states.get(state, 0))
        for state in STATE_ORDER
        if states.get(state, 0) or state in ("acknowledged", "failed", "pending")
    ]
    chart = charts.hbar(
        [("not sent yet" if state == "pending" else state, n) for state, n in bars],
        "Replay events by send state",
        colors=[STATE_COLORS[state] for state, _ in bars],
    )
    return states, chart


def _failures_html(con: duckdb.DuckDBPyConnection) -> str:
    """Failures that still matter, by reason (the ledger's `failures`), and other answers."""
    failures = [
        (outcome_label(status, refused_by, example), code, reason, batches, events, example, sid)
        for status, refused_by, code, reason, batches, events, example, sid in _rows(
            con,
            """
            select status, refused_by, code, coalesce(reason, '(no message)'), batches,
                events, example_error, example_source_request_id
            from ledger.failures
            order by events desc, code, reason
            """,
        )
    ]
    responses = _rows(
        con,
        """
        select outcome, coalesce(status_code::varchar, '-'), count(*),
            coalesce(any_value(error), '')
        from ledger.requests
        where outcome <> 'accepted'
        group by all
        order by 3 desc
        """,
    )
    failure_html = (
        _table(
            ["outcome", "code", "reason", "batches", "events", "example message", "example batch"],
            failures,
            numeric={3, 4},
        )
        + "<p>Failed batches are sent again by the next <code>loader push</code> (same "
        "<code>source_request_id</code>); refused ones (refused locally before sending, or "
        "by mParticle with HTTP 400) only once their content changes. Reasons are grouped by "
        "code; each example message gives the details (batch, event, field, size). "
        "<code>loader sql analyses/failures.sql</code> lists every event.</p>"
        if failures
        else "<p>No failed or refused batch.</p>"
    )
    retried = (
        _details(
            f"{sum(r[2] for r in responses)} HTTP answers other than 2xx, retried or split",
            _table(
                ["outcome", "HTTP status", "answers", "example message"], responses, numeric={2}
            ),
        )
        if responses
        else ""
    )
    return failure_html + retried


def _runs_html(con: duckdb.DuckDBPyConnection) -> str:
    """Throughput (chart and per run), then every run."""
    throughput_chart, per_run = _throughput(con)
    runs = _rows(
        con,
        f"""
        select run_id, strftime(started_at, '%Y-%m-%d %H:%M:%S'), status,
            {_run_kind_sql(con)} as kind, events_planned,
            events_acknowledged, events_failed, events_rejected, events_not_sent,
            http_requests, message
        from ledger.runs order by run_id
        """,
    )
    per_run_headers = [
        "run",
        "events acknowledged",
        "batches accepted",
        "HTTP requests",
        "429s",
        "send seconds",
        "events/s",
        "batches/s",
    ]
    run_headers = [
        "run",
        "started (UTC)",
        "status",
        "kind",
        "planned",
        "acknowledged",
        "failed",
        "refused",
        "not sent (the run stopped first)",
        "HTTP requests",
        "message",
    ]
    return (
        f"<h3>Throughput</h3>{throughput_chart}"
        + "<p>Per run: batches accepted over the send phase, from the first request sent "
        "to the last answer.</p>"
        + _table(per_run_headers, per_run, numeric={1, 2, 3, 4, 5, 6, 7})
        + "<h3>Runs</h3>"
        + _table(run_headers, runs, numeric={4, 5, 6, 7, 8, 9})
        + "<p>Events per run. Failed: sent, not acknowledged (sent again by the next push); "
        "refused: locally before sending or by mParticle (HTTP 400); not sent: handed over "
        "for sending when the run stopped (Ctrl-C, refused credentials, too many failures), "
        "so never sent by it.</p>"
    )


def _direct_destinations_html(con: duckdb.DuckDBPyConnection) -> str:
    """Events of direct destinations (Amplitude), by state: the figures above are the
    Events API's; the failures and runs below hold both."""
    rows = _rows(
        con,
        f"select {DESTINATION_OF_KEY_SQL} as destination, state, count(*) "
        f"from ledger.event_states where {DESTINATION_OF_KEY_SQL} <> 'events_api' "
        "group by all order by all",
    )
    if not rows:
        return ""
    by_destination: dict[str, dict[str, int]] = {}
    for destination, state, count in rows:
        by_destination.setdefault(destination, {})[state] = count
    return "".join(
        f"<p>{escape(name)} (a direct destination): {_n(states.get('acknowledged', 0))} events "
        f"acknowledged, {_n(states.get('failed', 0) + states.get('rejected', 0))} failed or "
        f"refused, {_n(states.get('pending', 0))} not sent yet (failures and runs below "
        "include them).</p>"
        for name, states in by_destination.items()
    )


def _run_kind_sql(con: duckdb.DuckDBPyConnection) -> str:
    """SQL for a run's kind: "full", or "sample (N users)" for a test send (ledgers written
    before sample runs existed hold full runs only)."""
    [(has_column,)] = con.execute(
        "select count(*) > 0 from duckdb_columns() where database_name = 'ledger' "
        "and table_name = 'runs' and column_name = 'sample_users'"
    ).fetchall()
    if not has_column:
        return "'full'"
    return "coalesce('sample (' || sample_users || ' users)', 'full')"


def _push(con: duckdb.DuckDBPyConnection) -> tuple[Section, dict]:
    states, state_chart = _send_states(con)
    total = sum(states.values())
    [(gone,)] = _rows(
        con,
        "select count(*) from ledger.acknowledged_events "
        "anti join replay_events using (replay_key) "
        f"where {DESTINATION_OF_KEY_SQL} = 'events_api'",
    )
    gone_note = (
        f"<p>{_n(gone)} acknowledged events are no longer in the replay set.</p>" if gone else ""
    )
    html = (
        f"<p>{_n(states.get('acknowledged', 0))} of {_n(total)} replay events acknowledged "
        f"(HTTP 2xx), {_n(states.get('failed', 0))} failed, {_n(states.get('rejected', 0))} "
        f"refused, {_n(states.get('pending', 0))} not sent yet.</p>"
        f"{state_chart}{gone_note}{_direct_destinations_html(con)}"
        f"<h3>Over time</h3>{_timeline(con, total)}"
        f"<h3>Failures by reason</h3>{_failures_html(con)}" + _runs_html(con)
    )
    facts = {
        "acknowledged": states.get("acknowledged", 0),
        "failed": states.get("failed", 0),
        "refused": states.get("rejected", 0),
        "pending": states.get("pending", 0),
        "changed": states.get("acknowledged, changed since", 0),
        "refusals": _refusals(con),
    }
    return Section("After the push", html, "push"), facts


def _refusals(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str, int]]]:
    """Refused events by side (outcome label), then (code, reason, events), most first."""
    by_side: dict[str, list[tuple[str, str, int]]] = {}
    for refused_by, code, reason, events, example in _rows(
        con,
        """
        select refused_by, code, coalesce(reason, '(no message)'), events, example_error
        from ledger.failures
        where status = 'rejected'
        order by events desc, code, reason
        """,
    ):
        side = outcome_label("rejected", refused_by, example)
        by_side.setdefault(side, []).append((code, reason, events))
    return by_side


# --- the page --------------------------------------------------------------------------

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


def _page(
    title: str,
    meta: str,
    tiles: str,
    warnings: list[str],
    sections: list[Section],
    warnings_title: str = "Before you send",
) -> str:
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


def _warnings(
    facts: dict,
    limits: AgeLimits | None,
    high_events: int,
    attribute_users: int,
    plan_notes: int,
    push: dict | None,
) -> list[str]:
    """What could go wrong, most urgent first (HTML fragments)."""
    warnings = []
    if push and push["changed"]:
        warnings.append(
            f"{_n(push['changed'])} acknowledged events changed since (a fix changed them): "
            "<code>loader push</code> skips them unless told to resend (downstream would see "
            "them twice)."
        )
    warnings += _refusal_warnings(push)
    if limits is None:
        warnings.append(f"No age checks: {escape(REBUILD_FOR_AGE_CHECKS)}.")
    else:
        warnings += [
            escape(warning) + " (age at build time)."
            for warning in age_warnings(limits, facts["older_than"])
        ]
    if high_events:
        warnings.append(
            f"{_n(high_events)} events belong to users without MPID or login identity: they "
            "may create new profiles (extra MTUs). See <a href='#risk'>Identity risk</a>."
        )
    if facts["duplicates"]:
        warnings.append(
            f"{_n(facts['duplicates'])} events only lost attributes and are re-sent whole: "
            "downstream sees them twice."
        )
    if attribute_users:
        warnings.append(
            f"Blocked user attributes of {_n(attribute_users)} users are sent and may "
            "overwrite newer values."
        )
    if plan_notes:
        warnings.append(
            f"{_n(plan_notes)} events keep their original data plan version and may be "
            "blocked again unless that version now allows them: run "
            "<code>loader plan-check</code>."
        )
    return warnings


def _refusal_warnings(push: dict | None) -> list[str]:
    """One warning per side that refused events, with its main reasons."""
    warnings = []
    for side, groups in (push or {}).get("refusals", {}).items():
        reasons = "; ".join(
            f"{_n(events)}: {escape(reason)} (<code>{escape(code)}</code>)"
            for code, reason, events in groups[:3]
        )
        more = f"; and {len(groups) - 3} more reasons" if len(groups) > 3 else ""
        warnings.append(
            f"{_n(sum(g[2] for g in groups))} events were {escape(side)}: {reasons}{more}. "
            "They are not sent again until a fix changes them; see "
            "<a href='#push'>Failures by reason</a>."
        )
    return warnings


def _headline(
    facts: dict,
    limits: AgeLimits | None,
    skipped_total: int,
    high_events: int,
    push: dict | None,
) -> list[tuple[str, str, str]]:
    """The tiles at the top: the ledger's state after a push, then the replay set."""
    tiles = []
    if push:
        tiles = [
            (_n(push["acknowledged"]), "events acknowledged", ""),
            (_n(push["failed"]), "failed (sent again)", "bad" if push["failed"] else ""),
            (_n(push["refused"]), "refused", "bad" if push["refused"] else ""),
            (_n(push["pending"]), "not sent yet", "warn" if push["pending"] else ""),
        ]
    oldest = facts["oldest_days"] or 0
    age_tone = ""
    if limits is not None:
        too_old, old = oldest > limits.max_days, oldest > limits.warn_days
        age_tone = "bad" if too_old else "warn" if old else ""
    return tiles + [
        (_n(facts["events"]), "events to replay", ""),
        (_n(facts["users"]), "users", ""),
        (_n(skipped_total), "blocked events skipped", ""),
        (
            _n(round(oldest, 1)) if facts["oldest_days"] is not None else "–",
            "oldest event, days",
            age_tone,
        ),
        (_n(high_events), "events of high-risk users", "warn" if high_events else ""),
    ]


def render(warehouse: Path, ledger: Path | None = None) -> tuple[str, ReportSummary]:
    """The report page for `warehouse` (and `ledger` when it exists), as HTML text."""
    notes = []
    running: str | None = None
    try:
        con = open_session(warehouse, ledger)
    except LedgerUnavailable as exc:
        running = (
            f"a push is running ({exc.holder}) and holds the ledger {ledger}; "
            "its results are not in this report"
        )
        notes.append(escape(running[0].upper() + running[1:]) + ": write it again once it ends.")
        con = open_session(warehouse)
    with con:
        has_ledger = _attached(con, "ledger")
        if not _exists(con, "replay_events"):
            raise MissingReplaySet(
                f"{warehouse} has no replay_events table. Run `dbt build` first."
            )
        limits = read_age_limits(con)
        [(catalog,)] = _rows(con, "select current_database()")
        stale = stale_reason(con, catalog)
        if stale is not None:
            notes.insert(0, f"<b>{escape(stale[0].upper() + stale[1:])}</b>")
        replay, facts = _replay_set(con, limits)
        skipped, skipped_total = _skipped(con)
        risk, high_events = _risk(con)
        attributes, attribute_users = _user_attributes(con)
        sections = [replay, _ages(con, limits), skipped, _fixes(con), risk]
        sections += [attributes] if attributes else []
        sections.append(_data_plan(con))
        integrations = _integration_limits(con)
        sections += [integrations] if integrations else []
        push = None
        if has_ledger and _exists(con, "runs", "ledger"):
            push_section, push = _push(con)
            sections.insert(0, push_section)
        [(plan_notes,)] = _rows(
            con, "select count(*) from replay_events where data_plan_note like '%blocked again%'"
        )
        if _exists(con, "rejected_lines"):
            [(rejected_lines,)] = _rows(con, "select count(*) from raw.rejected_lines")
            if rejected_lines:
                notes.append(
                    f"{_n(rejected_lines)} quarantine lines could not be read at ingest "
                    "(<code>raw.rejected_lines</code>): their batches are not in this report. "
                    "Fix or re-download those files and ingest them again."
                )

    warnings = notes + _warnings(facts, limits, high_events, attribute_users, plan_notes, push)
    tiles = _headline(facts, limits, skipped_total, high_events, push)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"Generated {generated} from <code>{escape(str(warehouse))}</code>"
    if push is not None and ledger is not None:
        meta += f" and the ledger <code>{escape(str(ledger))}</code>"
    html = _page(
        "Backfill report",
        meta,
        _tiles(tiles),
        warnings,
        [s for s in sections if s is not None],
        "Warnings" if push or running else "Before you send",
    )
    summary = ReportSummary(
        path=Path(),
        events_to_replay=facts["events"],
        sections=[s.anchor for s in sections],
        warnings=[_plain(w) for w in warnings],
        has_push=push is not None,
        push_running=running,
    )
    return html, summary


def write_report(warehouse: Path, ledger: Path | None, out: Path) -> ReportSummary:
    """Write the report page to `out`: a new file, or over a regular file (never through a
    symbolic link)."""
    if out.is_symlink():
        raise ReportError(f"{out} is a symbolic link: not followed; give another --out.")
    if out.exists() and not out.is_file():
        raise ReportError(f"{out} is not a regular file; give another --out.")
    html, summary = render(warehouse, ledger)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        summary.overwrote = out.exists()
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with open(fd, "w", encoding="utf-8") as file:
            file.write(html)
    except OSError as exc:
        raise ReportError(f"Cannot write {out}: {exc.strerror}.") from None
    summary.path = out
    return summary
