"""The report page put together (headline tiles, warnings, sections) and written."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from loader.audit.report.html import fmt, html_page, html_tiles, plain_text
from loader.audit.report.integrations import not_landing_warnings, outcomes_section
from loader.audit.report.privacy import privacy_section
from loader.audit.report.push import push_section
from loader.audit.report.reading import attached, exists, query
from loader.audit.report.replay_set import (
    ages_section,
    blocked_identities_section,
    data_plan_section,
    fixes_section,
    integration_limits_section,
    replay_set_section,
    risk_section,
    skipped_section,
    user_attributes_section,
)
from loader.audit.sql_session import LedgerUnavailable, open_session
from loader.build_settings import REBUILD_FOR_AGE_CHECKS, AgeLimits, read_age_limits
from loader.errors import LoaderError, MissingReplaySet
from loader.push.age_warnings import age_warnings
from loader.push.build_freshness import stale_reason


class ReportError(LoaderError):
    """The report cannot be written."""


@dataclass
class ReportSummary:
    path: Path
    events_to_replay: int
    sections: list[str]
    warnings: list[str] = field(default_factory=list)
    has_push: bool = False
    overwrote: bool = False
    push_running: str | None = None  # a push holds the ledger: what to say about it


def _warnings(
    facts: dict[str, Any],
    limits: AgeLimits | None,
    high_events: int,
    attribute_users: int,
    plan_notes: int,
    push: dict[str, Any] | None,
) -> list[str]:
    """What could go wrong, most urgent first (HTML fragments)."""
    warnings = []
    if push and push["changed"]:
        warnings.append(
            f"{fmt(push['changed'])} acknowledged events changed since (a fix changed them): "
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
            f"{fmt(high_events)} events belong to users without MPID or login identity: they "
            "may create new profiles (extra MTUs). See <a href='#risk'>Identity risk</a>."
        )
    if facts["duplicates"]:
        warnings.append(
            f"{fmt(facts['duplicates'])} events only lost attributes and are re-sent whole: "
            "downstream sees them twice."
        )
    if attribute_users:
        warnings.append(
            f"Blocked user attributes of {fmt(attribute_users)} users are sent and may "
            "overwrite newer values."
        )
    if plan_notes:
        warnings.append(
            f"{fmt(plan_notes)} events keep their original data plan version and may be "
            "blocked again unless that version now allows them: run "
            "<code>loader plan-check</code>."
        )
    return warnings


def _refusal_warnings(push: dict[str, Any] | None) -> list[str]:
    """One warning per side that refused events, with its main reasons."""
    warnings = []
    for side, groups in (push or {}).get("refusals", {}).items():
        reasons = "; ".join(
            f"{fmt(events)}: {escape(reason)} (<code>{escape(code)}</code>)"
            for code, reason, events in groups[:3]
        )
        more = f"; and {len(groups) - 3} more reasons" if len(groups) > 3 else ""
        warnings.append(
            f"{fmt(sum(g[2] for g in groups))} events were {escape(side)}: {reasons}{more}. "
            "They are not sent again until a fix changes them; see "
            "<a href='#push'>Failures by reason</a>."
        )
    return warnings


def _headline(
    facts: dict[str, Any],
    limits: AgeLimits | None,
    skipped_total: int,
    high_events: int,
    push: dict[str, Any] | None,
) -> list[tuple[str, str, str]]:
    """The tiles at the top: the ledger's state after a push, then the replay set."""
    tiles = []
    if push:
        tiles = [
            (fmt(push["acknowledged"]), "events acknowledged", ""),
            (fmt(push["failed"]), "failed (sent again)", "bad" if push["failed"] else ""),
            (fmt(push["refused"]), "refused", "bad" if push["refused"] else ""),
            (fmt(push["pending"]), "not sent yet", "warn" if push["pending"] else ""),
        ]
    oldest = facts["oldest_days"] or 0
    age_tone = ""
    if limits is not None:
        too_old, old = oldest > limits.max_days, oldest > limits.warn_days
        age_tone = "bad" if too_old else "warn" if old else ""
    return tiles + [
        (fmt(facts["events"]), "events to replay", ""),
        (fmt(facts["users"]), "users", ""),
        (fmt(skipped_total), "blocked events skipped", ""),
        (
            fmt(round(oldest, 1)) if facts["oldest_days"] is not None else "–",
            "oldest event, days",
            age_tone,
        ),
        (fmt(high_events), "events of high-risk users", "warn" if high_events else ""),
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
        has_ledger = attached(con, "ledger")
        if not exists(con, "replay_events"):
            raise MissingReplaySet(
                f"{warehouse.absolute()} has no replay_events table. Run `dbt build` first."
            )
        limits = read_age_limits(con)
        [(catalog,)] = query(con, "select current_database()")
        stale = stale_reason(con, catalog)
        if stale is not None:
            notes.insert(0, f"<b>{escape(stale[0].upper() + stale[1:])}</b>")
        replay, facts = replay_set_section(con, limits)
        skipped, skipped_total = skipped_section(con)
        risk, high_events = risk_section(con)
        attributes, attribute_users = user_attributes_section(con)
        sections = [replay, ages_section(con, limits), skipped, fixes_section(con), risk]
        sections += [attributes] if attributes else []
        identities, identities_sent = blocked_identities_section(con)
        sections += [identities] if identities else []
        sections.append(data_plan_section(con))
        privacy, privacy_warnings = privacy_section(con)
        sections.append(privacy)
        notes += privacy_warnings
        integrations = integration_limits_section(con)
        sections += [integrations] if integrations else []
        outcomes = outcomes_section(con)
        sections += [outcomes] if outcomes else []
        landing_warnings = not_landing_warnings(con)
        push = None
        if has_ledger and exists(con, "runs", "ledger"):
            ledger_section, push = push_section(con)
            sections.insert(0, ledger_section)
        [(plan_notes,)] = query(
            con, "select count(*) from replay_events where data_plan_note like '%blocked again%'"
        )
        if exists(con, "rejected_lines"):
            [(rejected_lines,)] = query(con, "select count(*) from raw.rejected_lines")
            if rejected_lines:
                notes.append(
                    f"{fmt(rejected_lines)} quarantine lines could not be read at ingest "
                    "(<code>raw.rejected_lines</code>): their batches are not in this report. "
                    "Fix or re-download those files and ingest them again."
                )

    warnings = notes + _warnings(facts, limits, high_events, attribute_users, plan_notes, push)
    if identities_sent:
        warnings.append(
            f"{fmt(identities_sent)} blocked user and device identities are sent: they may "
            "create new profiles (extra MTUs) or match other users' profiles. See "
            "<a href='#blocked-identities'>Blocked identities</a>."
        )
    warnings += landing_warnings
    tiles = _headline(facts, limits, skipped_total, high_events, push)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"Generated {generated} from <code>{escape(str(warehouse))}</code>"
    if push is not None and ledger is not None:
        meta += f" and the ledger <code>{escape(str(ledger))}</code>"
    html = html_page(
        "Backfill report",
        meta,
        html_tiles(tiles),
        warnings,
        [s for s in sections if s is not None],
        "Warnings" if push or running else "Before you send",
    )
    summary = ReportSummary(
        path=Path(),
        events_to_replay=facts["events"],
        sections=[s.anchor for s in sections],
        warnings=[plain_text(w) for w in warnings],
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
