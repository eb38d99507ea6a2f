"""The report's section after a push: what the ledger recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

import duckdb

from loader.audit import charts
from loader.audit.report.html import GRAY, Section, fmt, html_details, html_table
from loader.audit.report.reading import query
from loader.push.ledger import EVENTS_API, outcome_label
from loader.push.send_plan import content_hash_sql

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
        left join (
            select * from ledger.event_states where destination = '{EVENTS_API}'
        ) as known using (replay_key)
    )
"""
BUCKETS = 48


def _ticks(start_s: float, span_s: float, xs: list[float], every: int) -> list[tuple[Any, ...]]:
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


TIMELINE_SQL = f"""
    with batch_events as (  -- events of each batch that are in the replay set now
        select source_request_id, count(*) as events
        from ledger.event_batches
        semi join replay_events using (replay_key)
        where destination = '{EVENTS_API}'
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
    transitions = query(con, TIMELINE_SQL)
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


def throughput(con: duckdb.DuckDBPyConnection) -> tuple[str, list[tuple[Any, ...]]]:
    per_run = query(
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
    samples = query(
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
    states = dict(query(con, EVENT_STATES_SQL + "select state, count(*) from states group by all"))
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
        for status, refused_by, code, reason, batches, events, example, sid in query(
            con,
            """
            select status, refused_by, code, coalesce(reason, '(no message)'), batches,
                events, example_error, example_source_request_id
            from ledger.failures
            order by events desc, code, reason
            """,
        )
    ]
    responses = query(
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
        html_table(
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
        html_details(
            f"{sum(r[2] for r in responses)} HTTP answers other than 2xx, retried or split",
            html_table(
                ["outcome", "HTTP status", "answers", "example message"], responses, numeric={2}
            ),
        )
        if responses
        else ""
    )
    return failure_html + retried


def _runs_html(con: duckdb.DuckDBPyConnection) -> str:
    """Throughput (chart and per run), then every run."""
    throughput_chart, per_run = throughput(con)
    runs = query(
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
        + html_table(per_run_headers, per_run, numeric={1, 2, 3, 4, 5, 6, 7})
        + "<h3>Runs</h3>"
        + html_table(run_headers, runs, numeric={4, 5, 6, 7, 8, 9})
        + "<p>Events per run. Failed: sent, not acknowledged (sent again by the next push); "
        "refused: locally before sending or by mParticle (HTTP 400); not sent: handed over "
        "for sending when the run stopped (Ctrl-C, refused credentials, too many failures), "
        "so never sent by it.</p>"
    )


def _direct_destinations_html(con: duckdb.DuckDBPyConnection) -> str:
    """Events of direct destinations, by state: the figures above are the
    Events API's; the failures and runs below hold both."""
    rows = query(
        con,
        "select destination, state, count(*) "
        f"from ledger.event_states where destination <> '{EVENTS_API}' "
        "group by all order by all",
    )
    if not rows:
        return ""
    by_destination: dict[str, dict[str, int]] = {}
    for destination, state, count in rows:
        by_destination.setdefault(destination, {})[state] = count
    return "".join(
        f"<p>{escape(name)} (a direct destination): {fmt(states.get('acknowledged', 0))} events "
        f"acknowledged, {fmt(states.get('failed', 0) + states.get('rejected', 0))} failed or "
        f"refused, {fmt(states.get('pending', 0))} not sent yet (failures and runs below "
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


def push_section(con: duckdb.DuckDBPyConnection) -> tuple[Section, dict[str, Any]]:
    states, state_chart = _send_states(con)
    total = sum(states.values())
    [(gone,)] = query(
        con,
        "select count(*) from ledger.acknowledged_events "
        "anti join replay_events using (replay_key) "
        f"where destination = '{EVENTS_API}'",
    )
    gone_note = (
        f"<p>{fmt(gone)} acknowledged events are no longer in the replay set.</p>" if gone else ""
    )
    html = (
        f"<p>{fmt(states.get('acknowledged', 0))} of {fmt(total)} replay events acknowledged "
        f"(HTTP 2xx), {fmt(states.get('failed', 0))} failed, {fmt(states.get('rejected', 0))} "
        f"refused, {fmt(states.get('pending', 0))} not sent yet.</p>"
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
    for refused_by, code, reason, events, example in query(
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
