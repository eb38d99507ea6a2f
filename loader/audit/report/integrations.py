"""The report's section on what will land where: per integration of var integrations, the
verdicts of `replay_integration_outcomes` and the fixes whose changes will not land there."""

from __future__ import annotations

from html import escape
from typing import Any

import duckdb

from loader.audit.report.html import Section, fmt, html_details, html_table
from loader.audit.report.reading import exists, query

VERDICTS = ("lands", "dropped_as_duplicate", "duplicated", "too_old_at_send", "unknown")
NOT_LANDING = ("dropped_as_duplicate", "too_old_at_send")


def verdict_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Per integration, in var order: events per verdict (VERDICTS order)."""
    counts = ", ".join(f"count(*) filter (where verdict = '{v}')" for v in VERDICTS)
    return query(
        con,
        f"select integration, {counts} from replay_integration_outcomes "
        "group by integration order by min(integration_position)",
    )


def fixes_not_landing(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Per fix and integration: events the fix changed that will not land there (dropped as
    duplicates, too old at send) or whose fate is unknown."""
    if not exists(con, "int_events__fix_changes"):
        return []
    return query(
        con,
        """select changes.fix_name, outcomes.integration, count(*),
            count(*) filter (where outcomes.verdict = 'dropped_as_duplicate'),
            count(*) filter (where outcomes.verdict = 'too_old_at_send'),
            count(*) filter (where outcomes.verdict = 'unknown')
        from int_events__fix_changes as changes
        join replay_integration_outcomes as outcomes using (replay_key)
        group by all
        having count(*) filter (where outcomes.verdict in ('dropped_as_duplicate',
            'too_old_at_send', 'unknown')) > 0
        order by min(changes.fix_position), min(outcomes.integration_position)""",
    )


def example_reasons(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """One reason per integration and verdict (the first replay key's), with its source."""
    return query(
        con,
        """select integration, verdict, arg_min(reason, replay_key),
            arg_min(coalesce(source_url, ''), replay_key)
        from replay_integration_outcomes
        group by integration, verdict
        order by min(integration_position), verdict""",
    )


def not_landing_warnings(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Report warnings (HTML): per integration, replay events that will not land there."""
    if not exists(con, "replay_integration_outcomes"):
        return []
    warnings = []
    for integration, _, dropped, _, too_old, _ in verdict_counts(con):
        if dropped:
            warnings.append(
                f"{fmt(dropped)} attribute-only replays will be dropped as duplicates by "
                f"{escape(integration)}: their blocked attributes will not land there. See "
                "<a href='#what-lands-where'>What will land where</a>."
            )
        if too_old:
            warnings.append(
                f"{fmt(too_old)} replay events will be too old for {escape(integration)} by "
                "their expected send time. See <a href='#what-lands-where'>What will land "
                "where</a>."
            )
    return warnings


def outcomes_section(con: duckdb.DuckDBPyConnection) -> Section | None:
    """Verdict counts per integration, the fixes whose changes will not land, an example
    reason per verdict. None for a build without the model or without integrations."""
    if not exists(con, "replay_integration_outcomes"):
        return None
    counts = verdict_counts(con)
    if not counts:
        return None
    fixes = fixes_not_landing(con)
    html = (
        "<p>What each integration this backfill feeds (dbt var <code>integrations</code>) "
        "will do with each replay event once mParticle forwards it, by the facts of seed "
        "<code>integration_limits</code>, at the event's expected send time (deadline-first "
        "order at var <code>expected_send_rate_batches_per_s</code>, model "
        "<code>replay_send_order</code>). <i>Dropped as duplicate</i>: an attribute-only "
        "replay with its original's dedup key inside the window, so its blocked attributes "
        "will not land. <i>Duplicated</i>: kept beside the copy delivered before. "
        "<i>Unknown</i>: no public page states a fact the verdict needs; never guessed. "
        "Every event: <code>replay_integration_outcomes</code> "
        "(<code>loader sql analyses/what_lands_where.sql</code>).</p>"
        + html_table(
            ["integration", "lands", "dropped as duplicate", "duplicated", "too old", "unknown"],
            counts,
            numeric={1, 2, 3, 4, 5},
        )
    )
    if fixes:
        html += "<h3>Fixes whose changes will not land everywhere</h3>" + html_table(
            ["fix", "integration", "events changed", "dropped as duplicate", "too old", "unknown"],
            fixes,
            numeric={2, 3, 4, 5},
        )
    html += html_details(
        "Why: one reason per integration and verdict",
        html_table(["integration", "verdict", "reason (example)", "source"], example_reasons(con)),
    )
    return Section("What will land where", html, "what-lands-where")
