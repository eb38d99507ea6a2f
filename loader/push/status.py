"""`loader status`: what the ledger recorded, and what the next push would send.

Event states and failures come from the ledger's views (`event_states`, `failures`), the
same ones `loader report` and analyses/ read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loader.errors import LoaderError
from loader.push.destinations import EVENTS_API, ROUTES, Route
from loader.push.ledger import BatchCount, EventCounts, FailureRow, Ledger, RunRow
from loader.push.send_plan import planning_session


@dataclass
class ReplaySetOutlook:
    """What the next `loader push` would do with the replay set (events)."""

    events: int
    acknowledged: int
    to_send: int
    new: int
    resumed: int
    changed_after_acknowledgement: int
    in_doubt: int
    rejected_before: int


@dataclass
class DestinationStatus:
    events: EventCounts
    replay_set: ReplaySetOutlook | None = None
    replay_set_unavailable: str | None = None


@dataclass
class LedgerStatus:
    ledger: str | None
    events: EventCounts
    batches: dict[str, BatchCount]
    failures: list[FailureRow]
    runs: list[RunRow]
    replay_set: ReplaySetOutlook | None = None
    replay_set_unavailable: str | None = None  # why the replay set was not read
    # a direct destination's events, when the ledger holds some: its counts
    # and what the next push to it would send; the fields above are the Events API's
    destinations: dict[str, DestinationStatus] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The `loader status --json` document."""
        result = asdict(self)
        del result["replay_set_unavailable"]
        if self.replay_set_unavailable is not None:
            result["replay_set"] = {"unavailable": self.replay_set_unavailable}
        return result


def status(ledger_path: Path, warehouse_path: Path, failure_limit: int = 20) -> LedgerStatus:
    """The ledger's runs and outcomes, and what the next push would send from the replay set."""
    with Ledger.open(ledger_path, read_only=True) as ledger:
        result = LedgerStatus(
            ledger=str(ledger_path) if ledger_path.exists() else None,
            events=ledger.event_counts(EVENTS_API),
            batches=ledger.batch_counts(),
            failures=ledger.failures(limit=failure_limit),
            runs=ledger.runs(),
        )
        result.replay_set, result.replay_set_unavailable = _outlook(
            ledger, warehouse_path, ROUTES[EVENTS_API]
        )
        for name in ledger.destinations():
            if name != EVENTS_API:
                outlook, why = _outlook(ledger, warehouse_path, ROUTES[name])
                result.destinations[name] = DestinationStatus(
                    ledger.event_counts(name), outlook, why
                )
    return result


def _outlook(
    ledger: Ledger, warehouse_path: Path, route: Route
) -> tuple[ReplaySetOutlook | None, str | None]:
    """What the next push to `route` would send, or why the replay set was not read."""
    try:
        with planning_session(
            ledger,
            warehouse_path,
            resend_changed=False,
            replay_table=route.replay_table,
            destination=route.name,
        ) as planner:
            plan = planner.classify()
    except LoaderError as exc:
        return None, str(exc)
    return (
        ReplaySetOutlook(
            events=plan.replay_events,
            acknowledged=plan.acknowledged_before,
            to_send=plan.to_send,
            new=plan.new,
            resumed=plan.resumed,
            changed_after_acknowledgement=plan.changed,
            in_doubt=plan.in_doubt,
            rejected_before=plan.rejected_before,
        ),
        None,
    )
