"""The report's privacy section: the suppression list the build used and what it skipped,
the replay events that would trigger messages downstream, and consent as sent."""

from __future__ import annotations

from html import escape

import duckdb

from loader.audit.report.html import Section, fmt, html_table
from loader.audit.report.reading import query
from loader.build_settings import read_suppression_list, suppression_line
from loader.push.trigger_events import (
    ALLOW_TRIGGERS_HINT,
    UNCHECKED_HINT,
    integrations_without_triggers,
    trigger_counts,
    unchecked_line,
    unlisted_line,
)
from loader.push.trigger_list import TriggersUnchecked


def privacy_section(con: duckdb.DuckDBPyConnection) -> tuple[Section, list[str]]:
    """The section, and its warnings (HTML): no suppression list, events that trigger
    messages, integrations that can trigger with none of their events listed."""
    suppression = read_suppression_list(con)
    [(events,)] = query(
        con,
        "select count(*) from blocked_events__outcomes where skip_reason = 'suppressed_user'",
    )
    line = escape(suppression_line(suppression))
    triggers, trigger_warnings = _triggers(con)
    html = (
        f"<p>{line}.</p><p>{fmt(events)} blocked events of suppressed users are not replayed "
        "(<code>skip_reason = 'suppressed_user'</code> in "
        "<code>blocked_events__outcomes</code>).</p>"
        + triggers
        + "<p>Each batch's <code>consent_state</code> is sent as it was: mParticle's consent "
        "forwarding rules then apply downstream as to the original data.</p>"
    )
    warnings = ([] if suppression is not None else [line]) + trigger_warnings
    return Section("Privacy and side effects", html, "privacy"), warnings


def _triggers(con: duckdb.DuckDBPyConnection) -> tuple[str, list[str]]:
    """The replay events that would trigger messages, per integration and event name."""
    warnings = [escape(unlisted_line(*unlisted)) for unlisted in integrations_without_triggers(con)]
    try:
        checked = trigger_counts(con, replay="replay_events")
    except TriggersUnchecked as exc:
        line = unchecked_line(str(exc))
        warnings.append(escape(f"{line}. {UNCHECKED_HINT}"))
        return f"<p>{escape(line[0].upper() + line[1:])}.</p>", warnings
    total = checked.events
    where = (
        "<code>replay_trigger_events</code>"
        if checked.checked_against is None
        else f"the replay events matching {escape(checked.checked_against)} (this build, by "
        "an older version, has no <code>replay_trigger_events</code>: rebuild to list them)"
    )
    if not total:
        note = "" if checked.checked_against is None else f"; checked: {where}"
        return (
            "<p>No replay event triggers messages downstream (seed "
            f"<code>trigger_events</code>{note}).</p>",
            warnings,
        )
    warnings.append(
        f"{fmt(total)} replay events would trigger messages downstream (seed "
        f"<code>trigger_events</code>): <code>loader push</code> refuses to send them; "
        f"{escape(ALLOW_TRIGGERS_HINT)}."
    )
    rows = [(c.integration, c.event_type, c.event_name, c.events) for c in checked.counts]
    html = (
        f"<p>{fmt(total)} replay events would trigger messages downstream (campaigns, "
        "Canvases, journeys started by an event): <code>loader push</code> refuses to send "
        f"them; {escape(ALLOW_TRIGGERS_HINT)}. Every one: {where}.</p>"
        + html_table(["integration", "event type", "event name", "events"], rows, numeric={3})
    )
    return html, warnings
