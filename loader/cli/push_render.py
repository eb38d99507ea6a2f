"""How `loader push` shows a run: the plan, a progress bar while sending, the outcome."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from loader.build_settings import SuppressionList, sample_note, suppression_line
from loader.cli.common import err, esc, out, print_error
from loader.events_api.limits import MAX_EVENT_AGE_DAYS

if TYPE_CHECKING:
    from rich.progress import Progress as ProgressBar
    from rich.progress import TaskID

    from loader.push.ledger import FailureRow
    from loader.push.runner import Progress, PushReport
    from loader.push.send_plan import PlanSummary


def print_plan(report: PushReport) -> None:
    """What the run sends (or would send), then the warnings and notes about it."""
    from loader.push.destinations import EVENTS_API

    plan = report.plan
    where = "would go" if report.dry_run else "go"
    out.print(
        f"[bold]Plan:[/] {report.events_planned} events of {plan.users} users in "
        f"{report.batches_planned} batches, {report.requests_planned} requests "
        f"({report.body_bytes / 1e6:.2f} MB) {where} to {esc(report.url)}"
    )
    out.print(f"  replay set {plan.replay_events} events: {plan_parts(plan)}", markup=False)
    if report.retargeted:
        err.print(f"[yellow]note:[/] {esc(report.retargeted)}")
    _print_sample(plan)
    _print_integration_limits(plan)
    _print_integration_eta(plan)
    if plan.stale_build is not None:
        err.print(f"[red]warning:[/] {esc(plan.stale_build)}")
    if plan.sample_users_pct is not None:
        err.print(f"[red]warning:[/] {esc(sample_note(plan.sample_users_pct))}")
    _print_suppression(plan)
    _print_triggers(plan)
    if plan.events_by_type:
        types = ", ".join(f"{name} {count}" for name, count in plan.events_by_type.items())
        out.print(f"  by type: {types}", markup=False)
    if plan.oldest_event_days is not None:
        out.print(f"  oldest event: {plan.oldest_event_days:g} days old", markup=False)
    _print_age_warnings(plan)
    for note, count in plan.data_plan_notes.items():
        out.print(f"  data plan: {count} events: {note}", markup=False)
    _print_identity_risk(plan, mparticle=report.destination == EVENTS_API)
    _print_skipped(plan)
    if report.events_rejected_locally:
        err.print(
            f"[red]{report.events_rejected_locally} events fail the local batch checks[/] "
            "and are not sent (refused locally before sending):"
        )
        groups = sorted(report.local_rejections.values(), key=lambda g: (-g.events, g.code))
        for group in groups[:10]:
            err.print(
                f"  {group.events} events [{group.code}] {group.reason} (e.g. {group.example})",
                markup=False,
            )
    if report.reviewed_plan is not None:
        checked = "" if report.dry_run else " (the reviewed plan's, checked)"
        out.print(f"  plan hash: {report.reviewed_plan.hash}{checked}", markup=False)
    if report.out_dir:
        out.print(
            f"  request bodies, plan.json and rejected.ndjson written to {report.out_dir}; "
            f"`loader push --plan {report.out_dir}/plan.json` sends exactly this plan",
            markup=False,
        )


def plan_parts(plan: PlanSummary) -> str:
    """Every class of replay event, so that the parts add up to the replay set."""
    resent = plan.changed + plan.in_doubt if plan.resend_changed else 0
    changed = "sent again" if plan.resend_changed else "not sent"
    return (
        f"{plan.new - resent} new, {plan.resumed} resumed "
        f"({plan.resumed_batches} unfinished batches sent again with their ids), "
        f"{plan.acknowledged_before} already acknowledged, {plan.changed} changed after "
        f"acknowledgement and {plan.in_doubt} in doubt ({changed}), "
        f"{plan.rejected_before} refused before"
        + (
            f", {plan.held_back} held back for the full send"
            if plan.sample_users is not None
            else ""
        )
    )


def _print_integration_limits(plan: PlanSummary) -> None:
    """Per integration of var integrations: events older than it accepts, at send time."""
    for item in plan.integration_limits:
        name, days, over = (
            item["integration"],
            item["max_event_age_days"],
            item["events_over_limit"],
        )
        if days is None:
            out.print(
                f"  integration {name}: limit on event age unknown (seed integration_limits); "
                "check its documentation before the full send",
                markup=False,
            )
        elif over:
            err.print(
                f"[yellow]warning:[/] {over} events are older than {esc(name)} accepts "
                f"({days} days): it may drop or refuse them (model integration_age_limit_events)"
            )
        else:
            out.print(f"  integration {name}: no event older than {days} days", markup=False)


VERDICT_WORDS = (
    ("lands", "land"),
    ("dropped_as_duplicate", "dropped as duplicates"),
    ("duplicated", "duplicated"),
    ("too_old_at_send", "too old at the build's expected send"),
    ("unknown", "unknown"),
)


def window_text(days: int) -> str:
    """An age limit as its documentation states it: '72-hour' up to 3 days, else 'N-day'."""
    return f"{days * 24}-hour" if days <= 3 else f"{days}-day"


def _print_integration_eta(plan: PlanSummary) -> None:
    """Per integration: the build's verdicts of the events this run sends, and how many
    pass the integration's window before they can be sent at the run's rate."""
    for item in plan.integration_eta:
        name, days = item["integration"], item["max_event_age_days"]
        parts = []
        verdicts = item.get("verdicts")
        if verdicts is not None:
            counts = ", ".join(f"{verdicts.get(key, 0):,} {words}" for key, words in VERDICT_WORDS)
            parts.append(f"{counts} (replay_integration_outcomes)")
        if days is not None:
            late, already = item["events_too_old_at_send"], item["events_too_old_now"]
            parts.append(
                f"{late:,} events pass the {window_text(days)} window before they can be sent "
                f"at {plan.rate:g} batches/s"
                + (f" ({already:,} of them are past it already)" if already else "")
            )
        else:
            parts.append("its age limit is unknown (seed integration_limits): no ETA")
        line = f"  {name}: " + "; ".join(parts)
        if days is not None and item["events_too_old_at_send"]:
            err.print(f"[yellow]warning:[/]{esc(line[1:])}")
        else:
            out.print(line, markup=False)


def _print_sample(plan: PlanSummary) -> None:
    """A test send: its users, what they cover, and what to check before the full send."""
    if plan.sample_users is None:
        return
    users = plan.sample_user_identities or plan.sample_users
    shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
    out.print(
        f"  test send: {len(users)} users cover {plan.sample_pairs_covered} of "
        f"{plan.sample_pairs_total} event names (event type and name pairs still to send): "
        f"{shown}",
        markup=False,
    )
    out.print(
        "  before the full send, check: mParticle's Live Stream shows these users' events "
        "as intended (names, attributes, original timestamps); each connected integration's "
        "UI shows them (historical events accepted, not dropped, not counted as new "
        "sessions); no data plan violations. Then `loader push` without --sample-users / "
        "--user-key sends the rest, nothing twice.",
        markup=False,
    )


def _print_age_warnings(plan: PlanSummary) -> None:
    from loader.build_settings import PARQUET_HAS_NO_AGE_CHECKS, REBUILD_FOR_AGE_CHECKS, AgeLimits
    from loader.push.age_warnings import age_warnings

    if plan.warn_age_days is None or plan.max_age_days is None:
        why = PARQUET_HAS_NO_AGE_CHECKS if plan.replay_set_parquet else REBUILD_FOR_AGE_CHECKS
        err.print(f"[yellow]note:[/] {esc(why)}")
        return
    limits = AgeLimits(warn_days=plan.warn_age_days, max_days=plan.max_age_days)
    older_than = {
        plan.warn_age_days: plan.older_than_warn_days,
        plan.max_age_days: plan.older_than_max_days,
        MAX_EVENT_AGE_DAYS: plan.older_than_api_days,
    }
    for warning in age_warnings(limits, older_than):
        err.print(f"[yellow]warning:[/] {esc(warning)}")


def _print_identity_risk(plan: PlanSummary, *, mparticle: bool) -> None:
    if plan.events_by_identity_risk:
        risks = ", ".join(f"{name} {count}" for name, count in plan.events_by_identity_risk.items())
        out.print(f"  identity risk: {risks} (events)", markup=False)
    high_risk = plan.events_by_identity_risk.get("high", 0)
    if high_risk and mparticle:  # profiles (MTUs) are mParticle's
        err.print(
            f"[yellow]warning:[/] {high_risk} events belong to users with neither an MPID nor a "
            "login identity: mParticle may create new profiles for them (extra MTUs). "
            "Build with --vars '{exclude_high_risk_users: true}' to skip them."
        )
    _print_user_attributes(plan)
    if mparticle:
        _print_blocked_identities(plan)


def _print_blocked_identities(plan: PlanSummary) -> None:
    """The blocked identities the build sends (var replay_blocked_identities), and their risk."""
    if plan.blocked_identities_sent:
        err.print(
            f"[yellow]warning:[/] {plan.blocked_identities_sent} blocked user and device "
            f"identities go in the batches of {plan.with_blocked_identities} events (var "
            "replay_blocked_identities): mParticle resolves each batch's user from the "
            "identities it carries, so a blocked login identity it never stored may create a "
            "new profile (an extra MTU) or match another user's profile. Each one: "
            "blocked_identities__outcomes."
        )


def _print_user_attributes(plan: PlanSummary) -> None:
    """Events that set user attributes: their users' blocked ones (as the build decided,
    `replay_user_attributes`), and others (a fix put there, or unknown for a Parquet set)."""
    blocked = plan.with_blocked_user_attributes
    if blocked:
        err.print(
            f"[yellow]warning:[/] {blocked} events carry their users' blocked user attributes "
            "(var replay_blocked_user_attributes): they overwrite the profile's current "
            "values, which may be newer"
        )
    others = plan.with_user_attributes - (blocked or 0)
    if others and blocked is None:
        err.print(
            f"[yellow]warning:[/] {others} events set user attributes (blocked ones when "
            "built with var replay_blocked_user_attributes, or ones a fix put there): they "
            "overwrite the profile's current values, which may be newer"
        )
    elif others:
        err.print(
            f"[yellow]warning:[/] {others} {'more ' if blocked else ''}events set user "
            "attributes a fix put there: they overwrite the profile's current values, which "
            "may be newer"
        )


def _print_suppression(plan: PlanSummary) -> None:
    """Which suppression list the build used; a warning when it had none."""
    listed = plan.suppression_list
    if listed is None:
        err.print(f"[yellow]warning:[/] {esc(suppression_line(None))}")
        return
    suppression = SuppressionList(listed["path"], listed["sha256"], listed["rows"])
    out.print(f"  {suppression_line(suppression)}", markup=False)


def _print_triggers(plan: PlanSummary) -> None:
    """Events to send that would trigger messages downstream, and integrations that can
    trigger with none of their events listed (seed trigger_events)."""
    from loader.push.trigger_events import (
        ALLOW_TRIGGERS_HINT,
        UNCHECKED_HINT,
        describe,
        unlisted_line,
    )

    for item in plan.triggers_unlisted:
        line = unlisted_line(item["integration"], item["messages_source_url"])
        err.print(f"[yellow]warning:[/] {esc(line)}")
    if plan.triggers_checked_against is not None:
        out.print(
            "  events that trigger messages: the replay set has no replay_trigger_events; its "
            f"rows were checked against {plan.triggers_checked_against}",
            markup=False,
        )
    if plan.trigger_events is None:
        hint = "they are sent (--allow-triggers)" if plan.allow_triggers else UNCHECKED_HINT
        color = "yellow" if plan.allow_triggers else "red"
        err.print(f"[{color}]warning:[/] {esc(plan.triggers_unchecked or '')}. {esc(hint)}")
    elif not plan.trigger_events_total:
        out.print("  events that trigger messages (seed trigger_events): none", markup=False)
    elif plan.allow_triggers:
        err.print(
            f"[yellow]warning:[/] {plan.trigger_events_total} events trigger messages "
            f"downstream and are sent (--allow-triggers): {esc(describe(plan.trigger_events))}"
        )
    else:
        err.print(
            f"[red]warning:[/] {plan.trigger_events_total} events would trigger messages "
            f"downstream: {esc(describe(plan.trigger_events))}. `loader push` refuses to send "
            f"them: {esc(ALLOW_TRIGGERS_HINT)}"
        )


def _print_skipped(plan: PlanSummary) -> None:
    changed = plan.changed + plan.in_doubt
    if changed:
        examples = ", ".join(plan.changed_examples)
        if plan.resend_changed:
            err.print(
                f"[yellow]warning:[/] sending {changed} events again whose content changed "
                f"after they were sent (e.g. {esc(examples)}): downstream sees them twice"
            )
        else:
            err.print(
                f"[yellow]note:[/] {plan.changed} events changed after they were acknowledged"
                f" and {plan.in_doubt} after an unanswered send (e.g. {esc(examples)}); not sent. "
                "--resend-changed sends them again (downstream then sees them twice)."
            )
        _print_changed_vars(plan)
    if plan.rejected_before:
        err.print(
            f"[yellow]note:[/] {plan.rejected_before} events were refused before with the same "
            "content; not sent (see `loader status`)"
        )


def _print_changed_vars(plan: PlanSummary) -> None:
    """What differs between this build and the build of the run that acknowledged the
    changed events: the vars by name, or that none did (then a fix's SQL or the data did)."""
    run = plan.changed_since_run
    if run is None:
        return
    if plan.changed_vars_unknown is not None:
        why = f"which var changed them is unknown: {plan.changed_vars_unknown}"
    elif plan.changed_vars:
        why = f"this build's vars differ from run {run}'s build: " + "; ".join(plan.changed_vars)
    else:
        why = (
            f"this build's vars are those of run {run}'s build: the SQL of a fix, or the "
            "ingested data, changed them"
        )
    err.print(f"[yellow]note:[/] {esc(why)}")


def print_outcome(report: PushReport) -> None:
    """What the run did: counts, the main failure reasons, and how to go on."""
    if report.dry_run:
        return
    from loader.push.destinations import route

    p = report.progress
    out.print(
        f"[bold]Run {report.run_id} {report.status}:[/] {p.events_acknowledged} events in "
        f"{p.batches_acknowledged} batches acknowledged, {p.batches_failed} batches failed, "
        f"{p.batches_rejected} refused by {route(report.destination).service}, "
        f"{report.events_rejected_locally} events "
        f"refused locally"
        + (
            f", {p.events_not_sent} events not sent (the run stopped first)"
            if p.events_not_sent
            else ""
        )
        + f"; {p.http_requests} HTTP requests in {report.elapsed_s:.1f} s"
    )
    if report.batches_per_second is not None:
        out.print(
            f"  {report.batches_per_second:.1f} batches/s accepted over the send phase "
            "(first request to last answer)"
        )
    for failure in report.failures[:10]:
        err.print(f"  {failure_line(failure)}", markup=False)
    if report.message:
        if report.status == "stopped":
            print_error(report.message)
        else:
            err.print(report.message, markup=False)
    if p.batches_failed:
        err.print("Failed batches are sent again, with the same ids, by the next `loader push`.")


def failure_line(failure: FailureRow) -> str:
    """One reason events failed or were refused: who, how many, code, reason, an example."""
    return (
        f"{failure.side}: {failure.events} events in {failure.batches} batches "
        f"[{failure.code}] {failure.reason} (e.g. {failure.example_error})"
    )


class PushDisplay:
    """The plan, then a progress bar while sending (on a terminal only)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: ProgressBar | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> PushDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def planned(self, report: PushReport) -> None:
        print_plan(report)
        if not self.enabled or not report.batches_planned:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as ProgressBar

        self.progress = ProgressBar(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events, {task.fields[batches]} batches, {task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=out,
        )
        self.task = self.progress.add_task(
            "send", total=report.events_planned, batches="0", rate="0 batches/s"
        )
        self.progress.start()

    def update(self, progress: Progress) -> None:
        if self.progress is None or self.task is None:
            return
        elapsed = max(time.monotonic() - progress.started, 1e-6)
        done = progress.batches_acknowledged + progress.batches_failed + progress.batches_rejected
        self.progress.update(
            self.task,
            completed=progress.events_acknowledged
            + progress.events_failed
            + progress.events_rejected,
            batches=f"{done}/{progress.batches_total}",
            rate=f"{progress.batches_acknowledged / elapsed:.0f} batches/s",
        )
