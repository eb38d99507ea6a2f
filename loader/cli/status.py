"""`loader status`: what the ledger recorded, and what the next push would send."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from loader import settings
from loader.cli.common import JsonOption, cell, err, handles_loader_errors, out
from loader.cli.push_render import failure_line

if TYPE_CHECKING:
    from rich.table import Table

    from loader.push.status import LedgerStatus, ReplaySetOutlook


@handles_loader_errors
def status_command(as_json: JsonOption = False) -> None:
    """What the ledger recorded: per run, and events sent, pending, failed (with reasons).

    Also says what the next `loader push` would send, when the warehouse can be read.
    """
    from loader.push.status import status

    result = status(settings.ledger_path(), settings.warehouse_path())
    if as_json:
        out.print_json(json.dumps(result.as_dict(), default=str))
    else:
        print_status(result)


def print_status(result: LedgerStatus) -> None:
    """Runs, event counts, failure reasons and the replay set."""
    if not result.runs:
        out.print(f"no push recorded in {settings.ledger_path().absolute()} yet", markup=False)
    else:
        out.print(runs_table(result))
        out.print("(events per run; HTTP: requests made, retries included)", style="dim")
        print_targets(result)
        for run in result.runs:
            if run.sample_users is not None:
                out.print(f"run {run.run_id}: {run.kind}, a test send", markup=False)
    events = result.events
    out.print(
        f"events: {events.acknowledged} acknowledged, {events.pending} not sent yet, "
        f"{events.failed} failed (sent again by the next push), {events.rejected} refused",
        markup=False,
    )
    for failure in result.failures:
        err.print(f"  {failure_line(failure)}", markup=False)
    _print_outlook("replay set", result.replay_set, result.replay_set_unavailable)
    for name, direct in result.destinations.items():  # the direct destinations
        counts = direct.events
        out.print(
            f"{name}: {counts.acknowledged} events acknowledged, {counts.pending} not sent yet, "
            f"{counts.failed} failed, {counts.rejected} refused",
            markup=False,
        )
        _print_outlook(f"{name} replay set", direct.replay_set, direct.replay_set_unavailable)


def _print_outlook(label: str, replay: ReplaySetOutlook | None, unavailable: str | None) -> None:
    if unavailable is not None:
        err.print(f"{label}: not read ({unavailable})", markup=False)
    elif replay is not None:
        out.print(
            f"{label}: {replay.events} events; next push sends {replay.to_send} "
            f"({replay.new} new, {replay.resumed} resumed); "
            f"{replay.changed_after_acknowledgement} changed after acknowledgement, "
            f"{replay.in_doubt} in doubt, {replay.rejected_before} refused before",
            markup=False,
        )


def runs_table(result: LedgerStatus) -> Table:
    """One row a run with its counts (`print_targets` says where each run sent)."""
    from rich.table import Table

    table = Table(title=cell(f"Runs in {result.ledger}"))
    columns = ("run", "started (UTC)", "status", "acked", "failed", "refused", "not sent", "HTTP")
    for column in columns:
        table.add_column(column, justify="left" if column == "status" else "right")
    for run in result.runs:
        table.add_row(
            *map(
                cell,
                (
                    run.run_id,
                    str(run.started_at)[:16],
                    run.status,
                    run.events_acknowledged,
                    run.events_failed,
                    run.events_rejected,
                    run.events_not_sent,
                    run.http_requests,
                ),
            )
        )
    return table


def print_targets(result: LedgerStatus) -> None:
    """Where the runs sent: one line per destination and endpoint, with its runs."""
    targets: dict[tuple[str, str], list[int]] = {}
    for run in result.runs:
        targets.setdefault((run.destination, run.endpoint), []).append(run.run_id)
    for (destination, endpoint), runs in targets.items():
        listed = ", ".join(map(str, runs))
        out.print(
            f"run{'s' * (len(runs) > 1)} {listed}: to {destination} at {endpoint}",
            markup=False,
            highlight=False,
        )
