"""The report's sections about the replay set: what would be sent and what could go wrong."""

from __future__ import annotations

from datetime import date, timedelta
from html import escape
from typing import Any

import duckdb

from loader.audit import charts
from loader.audit.report.html import GRAY, Section, fmt, html_details, html_table
from loader.audit.report.reading import exists, query
from loader.build_settings import REBUILD_FOR_AGE_CHECKS, AgeLimits
from loader.push.age_warnings import MAX_EVENT_AGE_DAYS, age_thresholds

AGE_BINS = 45
RISK_COLORS = {"low": "#3d8b5f", "high": "#c2410c"}


def replay_set_section(
    con: duckdb.DuckDBPyConnection, limits: AgeLimits | None
) -> tuple[Section, dict[str, Any]]:
    thresholds = [] if limits is None else age_thresholds(limits)
    older = "".join(f"count(*) filter (where event_age_days > {days}), " for days in thresholds)
    [(events, users, first, last, oldest, duplicates, *older_counts)] = query(
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
    by_name = query(
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
        query(con, "select event_time::date, count(*) from replay_events group by 1 order by 1")
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
        f"<p>{fmt(events)} events of {fmt(users)} users, from {fmt(first)} to {fmt(last)} "
        f"(event time, UTC).</p>"
        f"<h3>By name and type</h3>{chart_by_name}"
        + html_details(
            f"All {len(by_name)} event names",
            html_table(["type", "name", "events", "users"], by_name, numeric={2, 3}),
        )
        + f"<h3>By day</h3>{chart_by_day}"
    )
    return Section("The replay set", html, "replay-set"), facts


def ages_section(con: duckdb.DuckDBPyConnection, limits: AgeLimits | None) -> Section:
    rows = query(
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
        f"{fmt(over_advised)} older than {limits.warn_days} days, "
        f"{fmt(over_max)} older than {limits.max_days}.</p>{chart}"
    )
    return Section("Event age", html, "ages")


def skipped_section(con: duckdb.DuckDBPyConnection) -> tuple[Section, int]:
    rows = query(
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
        f"<p>{fmt(total)} blocked events are not replayed. Each has a reason "
        f"(<code>blocked_events__outcomes</code>); a test fails the build if one has none.</p>"
        + charts.hbar(rows, "Skipped events by reason")
    )
    return Section("Skipped events", html, "skipped"), total


def fixes_section(con: duckdb.DuckDBPyConnection) -> Section:
    if exists(con, "fix_summary"):
        rows = query(
            con,
            "select fix_name, rows_changed, rows_changed_replayed, rows_skipped "
            "from fix_summary order by fix_position",
        )
    else:
        rows = query(
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
        + html_table(
            ["fix", "events changed", "of them replayed", "skipped by the fix"],
            rows,
            numeric={1, 2, 3},
        )
    )
    return Section("Fixes", html, "fixes")


def risk_section(con: duckdb.DuckDBPyConnection) -> tuple[Section, int]:
    if not exists(con, "replay_summary__risk"):
        return Section("Identity risk", "<p>Model replay_summary__risk not built.</p>", "risk"), 0
    rows = query(
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
        f"{fmt(excluded)} events of high-risk users are excluded (dbt var "
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
        + html_table(
            ["class", "risk", "users", "events to replay", "excluded", "what mParticle does"],
            rows,
            numeric={2, 3, 4},
        )
    )
    return Section("Identity risk", html, "risk"), high_events


def user_attributes_section(con: duckdb.DuckDBPyConnection) -> tuple[Section | None, int]:
    if not exists(con, "replay_user_attributes"):
        return None, 0
    rows = query(
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
            f'<p class="warn">{fmt(sent)} users get their blocked user attributes '
            f"({escape(', '.join(sorted(names or [])))}) with their replay batches, at the "
            "latest blocked value. <b>They overwrite the profile's current values, which may "
            "be newer.</b> See <code>replay_user_attributes</code>.</p>"
        )
        if held:
            html += f"<p>{fmt(held)} more users have blocked user attributes not sent.</p>"
    else:
        html = (
            f"<p>{fmt(held)} users have blocked user attributes that are not sent ({escape(reason)}"
            "). Build with <code>--vars '{replay_blocked_user_attributes: true}'</code> to send "
            "them with each user's replay batches.</p>"
        )
    return Section("User attributes", html, "user-attributes"), sent


def blocked_identities_section(con: duckdb.DuckDBPyConnection) -> tuple[Section | None, int]:
    """Blocked user and device identities: sent with their batches' events (var
    replay_blocked_identities), or why not; and how many are sent."""
    if not exists(con, "blocked_identities__outcomes"):
        return None, 0
    rows = query(
        con,
        """
        select identity_kind, identity_type, count(*) filter (where outcome = 'replay'),
            count(*) filter (where outcome = 'skipped'),
            coalesce(string_agg(distinct skip_reason, ', ' order by skip_reason), '')
        from blocked_identities__outcomes
        group by all
        order by 3 + 4 desc, 1, 2
        """,
    )
    if not rows:
        return None, 0
    sent = sum(r[2] for r in rows)
    [(held_by_var, not_carried)] = query(
        con,
        "select count(*) filter (where skip_reason = 'var replay_blocked_identities is false'), "
        "count(*) filter (where skip_reason = 'no_event_of_the_batch_replayed') "
        "from blocked_identities__outcomes",
    )
    risk = (
        "mParticle resolves a batch's user from the identities it carries: a blocked login "
        "identity it never stored may create a new profile (an extra MTU) or match another "
        "user's profile"
    )
    if sent:
        html = (
            f'<p class="warn">{fmt(sent)} blocked identities go with their batches\' replay '
            "events (var <code>replay_blocked_identities</code>). <b>"
            f"{risk}.</b> A replay naming the same data plan version may have them blocked "
            "again.</p>"
        )
    else:
        html = ""
    if held_by_var:
        html += (
            f"<p>{fmt(held_by_var)} blocked identities are left out of their batches' replay "
            "events, as the data plan left them out. Build with <code>--vars "
            "'{replay_blocked_identities: true}'</code> to send them; then " + risk + ". Left "
            "out, a batch without an MPID is matched by its other identities and may land on "
            'another profile than the original (see <a href="#risk">Identity risk</a>).</p>'
        )
    if not_carried:
        html += (
            f"<p>{fmt(not_carried)} not sent: no event of its batch is replayed (a batch that "
            "blocked only identities or attributes, or whose events were all skipped), and an "
            "identity is never moved to another batch.</p>"
        )
    html += "<p>Every one: <code>blocked_identities__outcomes</code>.</p>" + html_table(
        ["kind", "identity", "sent", "not sent", "why not"], rows, numeric={2, 3}
    )
    return Section("Blocked identities", html, "blocked-identities"), sent


def integration_limits_section(con: duckdb.DuckDBPyConnection) -> Section | None:
    """Per integration of var integrations: its age limit and the events past it, by day."""
    if not exists(con, "integration_age_limit_events"):
        return None
    totals = query(
        con,
        """select i.integration, coalesce(i.max_event_age_days::varchar, 'unknown'),
            coalesce(sum(e.events), 0), sum(e.events_over_limit), i.source_url
        from replay_integrations i
        left join integration_age_limit_events e using (integration)
        group by all order by min(i.position)""",
    )
    if not totals:
        return None
    by_day = query(
        con,
        "select integration, event_date::varchar, events, events_over_limit "
        "from integration_age_limit_events where events_over_limit > 0 "
        "order by integration, event_date",
    )
    html = (
        "<p>Each integration this backfill feeds (dbt var <code>integrations</code>) and "
        "the replay events older than it accepts at the build's reference time (an unknown "
        "limit shows as unknown, never guessed: seed <code>integration_limits</code>).</p>"
        + html_table(
            ["integration", "max age (days)", "events", "older than accepted", "source"],
            totals,
            numeric={2, 3},
        )
        + (
            html_details(
                "Events older than accepted, by day",
                html_table(
                    ["integration", "day", "events", "older than accepted"], by_day, numeric={2, 3}
                ),
            )
            if by_day
            else ""
        )
    )
    return Section("Integration limits", html, "integration-limits")


def data_plan_section(con: duckdb.DuckDBPyConnection) -> Section:
    rows = query(
        con,
        "select coalesce(data_plan_note, 'no data plan'), count(*) from replay_events "
        "group by all order by 2 desc",
    )
    html = (
        html_table(["data plan sent with the replay", "events"], rows, numeric={1})
        + "<p>Check the replay set against the plan version it will meet: "
        "<code>loader plan-check PLAN.json</code>.</p>"
    )
    return Section("Data plan", html, "data-plan")
