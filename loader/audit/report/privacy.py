"""The report's privacy section: the suppression list the build used and what it skipped."""

from __future__ import annotations

from html import escape

import duckdb

from loader.audit.report.html import Section, fmt
from loader.audit.report.reading import query
from loader.build_settings import read_suppression_list, suppression_line


def privacy_section(con: duckdb.DuckDBPyConnection) -> tuple[Section, str | None]:
    """The section, and a warning (HTML) when the build had no suppression list."""
    suppression = read_suppression_list(con)
    [(events,)] = query(
        con,
        "select count(*) from blocked_events__outcomes where skip_reason = 'suppressed_user'",
    )
    line = escape(suppression_line(suppression))
    html = (
        f"<p>{line}.</p><p>{fmt(events)} blocked events of suppressed users are not replayed "
        "(<code>skip_reason = 'suppressed_user'</code> in "
        "<code>blocked_events__outcomes</code>). Each batch's <code>consent_state</code> is "
        "sent as it was.</p>"
    )
    warning = None if suppression is not None else line
    return Section("Privacy and side effects", html, "privacy"), warning
