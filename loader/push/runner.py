"""`loader push`: plan the run from the replay set and the ledger, then send it.

1. Plan (the warehouse attached read-only for this step only): classify every replay
   event against the ledger (`loader.push.send_plan`), pack what is to be sent into batches and
   requests, check each batch locally (`loader.events_api.batch_rules`), and record every new batch
   (its events, content hashes and `source_request_id`) in the ledger, committed, before
   anything is sent. Requests go to the outbox file.
2. Send: worker threads post the outbox's requests under one shared rate limit; the
   main thread marks batches in flight before handing them over and records every
   attempt and outcome as it comes back.

A dry run does step 1 without touching the ledger and writes the request bodies to a
folder instead of an outbox.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from loader import settings
from loader.build_settings import (
    NO_SUPPRESSION_LIST,
    NoSuppressionList,
    SampleReplaySet,
    sample_note,
)
from loader.events_api.reasons import classify
from loader.push import ledger as ledger_mod
from loader.push.build_freshness import StaleReplaySet
from loader.push.destination import Secrets
from loader.push.destinations import DEFAULT_RATE, EVENTS_API, ROUTES, Route, route
from loader.push.ledger import FailureRow, Holdings, Ledger, LedgerError, api_key_fingerprint
from loader.push.outbox import Outbox
from loader.push.packing import (
    PackedBatch,
    PackingLimits,
    Validator,
    group_requests,
    pack_and_validate,
)
from loader.push.replay_reader import ALIAS, is_parquet_location
from loader.push.reviewed_plan import (
    LEDGER_CLASSES,
    BatchDigest,
    PlanFingerprint,
    build_identity,
    check_plan,
    read_plan,
)
from loader.push.send_plan import Planner, PlanSummary, SampleRequest, planning_session
from loader.push.transport import Outgoing, RateLimiter, SendResult, Transport
from loader.push.trigger_events import ALLOW_TRIGGERS_HINT, UNCHECKED_HINT, TriggerEventsRefused
from loader.push.trigger_events import describe as describe_triggers

LEDGER_CHUNK = 5_000  # batches recorded per transaction while planning
POSITIONS_CHUNK = 50_000  # send positions of groups recorded at once (for the ETA)
TURN_SECONDS = 0.1  # the main loop records outcomes at least this often
MIN_TURN_SECONDS = 0.02  # and at most every 20 ms


@dataclass
class PushOptions:
    endpoint: str
    workers: int = 8
    rate: float = DEFAULT_RATE
    max_retries: int = 8
    timeout_s: float = 30.0
    backoff_s: float = 0.5
    give_up_after: int = 3  # requests in a row that used every retry: the run stops
    resend_changed: bool = False
    validate: bool = True
    destination: str = EVENTS_API  # a name of `loader.push.destinations.ROUTES`
    # the destination's own settings, as given (`Route.settings`; no secret among them)
    destination_settings: dict[str, Any] = field(default_factory=dict)
    batches_per_request: int | None = None  # fewer than the destination allows
    sample: SampleRequest | None = None  # a test send of a few users' events
    plan_hash: str | None = None  # a reviewed plan's hash (`loader push --plan`), as checked
    at_ms: int | None = None  # plan as of this Unix time in ms (default: now): ages, ETA
    allow_triggers: bool = False  # send events that trigger messages (seed trigger_events)

    @property
    def limits(self) -> PackingLimits:
        """The destination's packing limits, with `batches_per_request` when lower, and at
        most a second of the rate in a request (at a low rate, one request is no burst)."""
        limits = self.route.limits
        fewer = min(limits.max_batches_per_request, max(1, int(self.rate)))
        setting = self.route.batches_per_request  # the destination's own name for it
        for cap in (self.batches_per_request, self.destination_settings.get(setting or "")):
            if cap is not None:
                fewer = min(fewer, int(cap))
        if fewer == limits.max_batches_per_request:
            return limits
        return dataclasses.replace(limits, max_batches_per_request=fewer)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def route(self) -> Route:
        return route(self.destination)


@dataclass
class Progress:
    """Counts the progress display reads; updated by the main thread only."""

    events_total: int = 0
    batches_total: int = 0
    requests_total: int = 0
    events_acknowledged: int = 0
    batches_acknowledged: int = 0
    events_failed: int = 0
    batches_failed: int = 0
    events_rejected: int = 0
    batches_rejected: int = 0
    events_not_sent: int = 0  # handed over, never sent: the run stopped first
    batches_not_sent: int = 0
    http_requests: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class LocalRejections:
    """Events refused locally for one reason (loader.events_api.reasons), one example."""

    code: str
    reason: str
    events: int = 0
    batches: int = 0
    example: str = ""


@dataclass
class PushReport:
    """What a run planned and did; `as_dict` is the `--json` output."""

    dry_run: bool
    endpoint: str
    plan: PlanSummary
    destination: str = EVENTS_API
    run_id: int | None = None
    status: str = "planned"
    message: str | None = None
    events_planned: int = 0
    batches_planned: int = 0
    requests_planned: int = 0
    body_bytes: int = 0
    largest_batch_bytes: int = 0
    largest_request_bytes: int = 0
    local_rejections: dict[str, LocalRejections] = field(default_factory=dict)  # by code
    events_rejected_locally: int = 0
    batches_rejected_locally: int = 0
    progress: Progress = field(default_factory=Progress)
    failures: list[FailureRow] = field(default_factory=list)
    out_dir: str | None = None
    elapsed_s: float = 0.0
    batches_per_second: float | None = None  # the ledger's `run_throughput`
    reviewed_plan: PlanFingerprint | None = None  # what `loader push --plan` compares
    retargeted: str | None = None  # the ledger's refused target replaced by this run's

    @property
    def url(self) -> str:
        """Where the requests go (an Events API endpoint is a base URL)."""
        return self.endpoint if self.destination != EVENTS_API else self.endpoint + "/bulkevents"

    @property
    def ok(self) -> bool:
        """Nothing failed or was refused in this run, and nothing refused earlier remains."""
        p = self.progress
        return (
            self.status in ("planned", "completed")
            and not self.events_rejected_locally
            and not (p.batches_failed or p.batches_rejected)
            and not self.plan.rejected_before
        )

    def as_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "status": self.status,
            "ok": self.ok,
            "message": self.message,
            "endpoint": self.endpoint,
            "destination": self.destination,
            "retargeted": self.retargeted,
            "plan": self.plan.as_dict(),
            "planned": {
                "events": self.events_planned,
                "batches": self.batches_planned,
                "requests": self.requests_planned,
                "body_bytes": self.body_bytes,
                "largest_batch_bytes": self.largest_batch_bytes,
                "largest_request_bytes": self.largest_request_bytes,
                "events_rejected_locally": self.events_rejected_locally,
                "local_rejections": [asdict(group) for group in self.local_rejections.values()],
            },
            "sent": {
                "events_acknowledged": p.events_acknowledged,
                "batches_acknowledged": p.batches_acknowledged,
                "events_failed": p.events_failed,
                "batches_failed": p.batches_failed,
                "events_rejected": p.events_rejected,
                "batches_rejected": p.batches_rejected,
                "events_not_sent": p.events_not_sent,
                "batches_not_sent": p.batches_not_sent,
                "http_requests": p.http_requests,
                "batches_per_second": self.batches_per_second,
            },
            "failures": [asdict(failure) for failure in self.failures],
            "reviewed_plan": None if self.reviewed_plan is None else self.reviewed_plan.as_dict(),
            "out_dir": self.out_dir,
            "elapsed_s": round(self.elapsed_s, 3),
        }


class _Plan:
    """Step 1: the batches and requests of a run, into an outbox (push) or a folder (dry run)."""

    def __init__(
        self,
        report: PushReport,
        validator: Validator | None,
        on_rejected: Callable[[PackedBatch], None] | None = None,
        route: Route | None = None,
        limits: PackingLimits | None = None,
    ) -> None:
        self.report = report
        self.validator = validator
        self.on_rejected = on_rejected
        self.route = route or ROUTES[EVENTS_API]
        self.limits = limits or self.route.limits

    def batches(self, planner: Planner, *, with_hashes: bool) -> Iterator[PackedBatch]:
        """The run's batches in send order (resumed ones first); with integrations to
        forecast, each group's last batch position goes to `planner.add_send_positions`."""
        route = self.route
        positions: list[tuple[str, str, int]] = []
        position = 0
        for source_request_id, group in planner.resumed_groups():
            position += 1
            yield route.assemble(group, source_request_id)
            positions.append((group.user_key, group.context_key, position))
        validator, max_bytes = self.validator, route.limits.max_batch_bytes
        for group in planner.new_groups(with_hashes=with_hashes):
            for batch in pack_and_validate(group, route.pack, validator, max_bytes):
                position += 1
                yield batch
            if planner.integrations:
                positions.append((group.user_key, group.context_key, position))
                if len(positions) >= POSITIONS_CHUNK:
                    planner.add_send_positions(positions)
                    positions.clear()
        if planner.integrations:
            planner.add_send_positions(positions)

    def rejected(self, batch: PackedBatch) -> None:
        """A batch not sent (too big, or failing the local checks): counted by reason."""
        report = self.report
        report.events_rejected_locally += batch.event_count
        report.batches_rejected_locally += 1
        refusal = classify(batch.error or "")
        assert refusal is not None
        group = report.local_rejections.setdefault(
            refusal.code, LocalRejections(refusal.code, refusal.reason, example=refusal.detail)
        )
        group.events += batch.event_count
        group.batches += 1
        if self.on_rejected is not None:
            self.on_rejected(batch)

    def requests(self, batches: Iterator[PackedBatch]) -> Iterator[list[PackedBatch]]:
        report = self.report
        for request in group_requests(batches, self.limits, on_rejected=self.rejected):
            sizes = [len(b.body) for b in request]
            report.requests_planned += 1
            report.batches_planned += len(request)
            report.events_planned += sum(b.event_count for b in request)
            report.body_bytes += sum(sizes)
            report.largest_batch_bytes = max(report.largest_batch_bytes, *sizes)
            report.largest_request_bytes = max(
                report.largest_request_bytes, 1 + sum(sizes) + len(sizes)
            )
            yield request


def dry_run(
    warehouse_path: Path | str,
    ledger_path: Path,
    options: PushOptions,
    out_dir: Path | None = None,
    validator: Validator | None = None,
    *,
    force: bool = False,
) -> PushReport:
    """Everything but HTTP: the plan and, with `out_dir`, the exact request bodies.

    `out_dir` is a new or empty folder (with `force`, an earlier dry run's files in it are
    replaced); files are created in it, never through a symbolic link.
    """
    from loader.push.out_folder import OutFolder

    started = time.monotonic()
    report = PushReport(
        dry_run=True,
        endpoint=options.endpoint,
        plan=PlanSummary(),
        destination=options.destination,
    )
    route = options.route
    validator = validator if validator is not None else route.validator
    rejected_file = None
    folder: OutFolder | None = None
    if out_dir is not None:
        folder = OutFolder.fresh(out_dir, force=force)
        report.out_dir = str(out_dir)
        rejected_file = folder.create("rejected.ndjson")

    def note_rejection(batch: PackedBatch) -> None:
        if rejected_file is not None:
            _write_rejection(rejected_file, batch)

    planning = _Plan(
        report, validator if options.validate else None, note_rejection, route, options.limits
    )
    try:
        with (
            Ledger.open(ledger_path, read_only=True) as ledger,
            _planning(ledger, warehouse_path, options) as planner,
        ):
            report.plan = planner.classify()
            report.plan.allow_triggers = options.allow_triggers
            report.plan.replay_set_parquet = is_parquet_location(warehouse_path)
            digest = BatchDigest()
            batches = _digested(planning.batches(planner, with_hashes=False), digest)
            for number, request in enumerate(planning.requests(batches), 1):
                if folder is not None:
                    with folder.create(f"request-{number:06d}.json") as file:
                        file.write(route.dry_run_body(b.body for b in request))
            report.reviewed_plan = _fingerprint(planner, report.plan, options, digest)
            _forecast(planner, report.plan, options)
        report.elapsed_s = time.monotonic() - started
        if folder is not None:
            with folder.create("plan.json") as file:
                file.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
    finally:
        if rejected_file is not None:
            rejected_file.close()
        if folder is not None:
            folder.close()
    return report


def _forecast(planner: Planner, plan: PlanSummary, options: PushOptions) -> None:
    """The ETA per integration at the run's rate, once every batch has its position."""
    plan.rate = options.rate
    plan.integration_eta = planner.integration_eta(options.rate)


def _digested(batches: Iterator[PackedBatch], digest: BatchDigest) -> Iterator[PackedBatch]:
    for batch in batches:
        digest.add(batch)
        yield batch


def _fingerprint(
    planner: Planner, plan: PlanSummary, options: PushOptions, digest: BatchDigest
) -> PlanFingerprint:
    """The reviewed-plan fingerprint of a classified plan whose batches `digest` saw."""
    return PlanFingerprint.of(
        options.destination,
        digest,
        planner.ledger_digest(),
        events_by_name=plan.events_by_name,
        ledger={name: getattr(plan, name) for name in LEDGER_CLASSES},
        options={
            "resend_changed": options.resend_changed,
            "sample": None if options.sample is None else asdict(options.sample),
        },
        build=build_identity(planner.con),
    )


def _check_reviewed_plan(
    planner: Planner,
    options: PushOptions,
    validator: Validator | None,
    report: PushReport,
    plan_path: Path,
) -> None:
    """Pack the classified plan once without recording it; refuse (`PlanChanged`) unless
    it gives the hash of the reviewed plan at `plan_path`."""
    planned = read_plan(plan_path)
    digest = BatchDigest()
    planning = _Plan(
        report, validator if options.validate else None, route=options.route, limits=options.limits
    )
    for batch in planning.batches(planner, with_hashes=False):
        digest.add(batch)
    now = _fingerprint(planner, report.plan, options, digest)
    check_plan(plan_path, planned, now)
    report.reviewed_plan = now
    options.plan_hash = now.hash


def _planning(
    ledger: Ledger, warehouse_path: Path | str, options: PushOptions
) -> AbstractContextManager[Planner]:
    """The planning session on the replay set of the run's destination."""
    route = options.route
    return planning_session(
        ledger,
        warehouse_path,
        resend_changed=options.resend_changed,
        sample=options.sample,
        at_ms=options.at_ms,
        replay_table=route.replay_table,
        destination=route.name,
    )


def _settings_of_the_build(ledger: Ledger, options: PushOptions) -> None:
    """The destination's settings the build decided, unless given."""
    for name, value in options.route.build_settings(ledger.con, ALIAS).items():
        options.destination_settings.setdefault(name, value)


def _write_rejection(file: IO[bytes], batch: PackedBatch) -> None:
    refusal = classify(batch.error)
    for key in batch.replay_keys:
        file.write(
            orjson.dumps(
                {
                    "replay_key": key,
                    "source_request_id": batch.source_request_id,
                    "code": refusal.code if refusal else None,
                    "reason": refusal.reason if refusal else None,
                    "error": batch.error,
                }
            )
            + b"\n"
        )


def push(
    warehouse_path: Path | str,
    ledger_path: Path,
    options: PushOptions,
    credentials: Secrets,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_planned: Callable[[PushReport], None] | None = None,
    validator: Validator | None = None,
    plan_path: Path | None = None,
) -> PushReport:
    """Plan, record and send a run. See the module docstring; the report says what happened.

    With `plan_path` (a dry run's plan.json), the run is sent only when its plan has that
    plan's hash (`loader.push.reviewed_plan`); otherwise `PlanChanged` is raised before
    anything is recorded or sent.

    Raises `LedgerLocked` when another push holds the ledger. A 401/403 stops the run:
    the report's status is "stopped" with the reason in `message`. Ctrl-C stops it too
    (status "interrupted", then KeyboardInterrupt is raised again).
    """
    started = time.monotonic()
    report = PushReport(
        dry_run=False,
        endpoint=options.endpoint,
        plan=PlanSummary(),
        destination=options.destination,
    )
    validator = validator if validator is not None else options.route.validator
    fingerprint = api_key_fingerprint(credentials.api_key)
    with Ledger.open(ledger_path) as ledger:
        ledger.close_stale_runs()
        report.retargeted = _check_destination(
            ledger, ledger_path, options.endpoint, fingerprint, options.destination
        )
        for stale in ledger_path.parent.glob(ledger_path.name + ".outbox-*"):
            stale.unlink(missing_ok=True)  # left by a killed run (this process holds the lock)
        outbox = Outbox(ledger_path.with_name(ledger_path.name + f".outbox-{os.getpid()}"))
        run_id: int | None = None
        try:
            # the run is recorded once the replay set is open and fit to send: a locked or
            # missing warehouse, or a stale replay set, leaves no run behind
            with _planning(ledger, warehouse_path, options) as planner:
                if planner.stale_build is not None:
                    raise StaleReplaySet(f"not pushing: {planner.stale_build}")
                if planner.sample_users_pct is not None:
                    raise SampleReplaySet(f"not pushing: {sample_note(planner.sample_users_pct)}")
                if planner.suppression_list is None and settings.require_suppression_list():
                    raise NoSuppressionList(
                        f"not pushing ({settings.REQUIRE_SUPPRESSION_LIST_ENV} is set): "
                        f"{NO_SUPPRESSION_LIST}"
                    )
                _settings_of_the_build(ledger, options)
                report.plan = planner.classify()
                report.plan.replay_set_parquet = is_parquet_location(warehouse_path)
                if plan_path is not None:
                    _check_reviewed_plan(planner, options, validator, report, plan_path)
                _check_triggers(report.plan, options)
                # the run's options, the suppression list of the build it sends, and the
                # events it sends that trigger messages (with --allow-triggers)
                listed = planner.suppression_list
                recorded = options.as_dict() | {
                    "suppression_list": None if listed is None else listed.as_dict(),
                    "trigger_events": report.plan.trigger_events,
                    # the build's vars: a later push names the var that changed an event
                    "build_settings": planner.build_vars,
                }
                report.run_id = run_id = ledger.start_run(
                    options.endpoint, fingerprint, recorded, options.destination
                )
                _plan_into_ledger(ledger, run_id, planner, options, validator, report, outbox)
            if on_planned is not None:
                on_planned(report)
            _send(ledger, run_id, outbox, options, credentials, report, on_progress)
        except KeyboardInterrupt:
            report.status = "interrupted"
            report.message = "interrupted; run `loader push` again to resume"
            raise
        except BaseException as exc:
            report.status = "failed"
            report.message = f"{type(exc).__name__}: {credentials.redact(str(exc))}"
            raise
        finally:
            outbox.remove()
            report.elapsed_s = time.monotonic() - started
            if run_id is not None:
                report.failures = ledger.failures(run_id=run_id)
                report.batches_per_second = ledger.throughput(run_id)
                ledger.finish_run(run_id, report.status, _run_counts(report), report.message)
    return report


def _check_triggers(plan: PlanSummary, options: PushOptions) -> None:
    """Refuse a run that would send events that trigger messages, unless allowed."""
    plan.allow_triggers = options.allow_triggers
    if plan.trigger_events is None and plan.to_send and not options.allow_triggers:
        raise TriggerEventsRefused(
            f"not pushing: {plan.triggers_unchecked}. Events that trigger messages can "
            f"message real users about what they did days ago: {UNCHECKED_HINT}."
        )
    total = plan.trigger_events_total
    if total and not options.allow_triggers:
        raise TriggerEventsRefused(
            f"not pushing: {total} {'event' if total == 1 else 'events'} of this run would trigger "
            f"messages downstream (seed trigger_events): "
            f"{describe_triggers(plan.trigger_events or [])}. Sending them can message real "
            f"users about what they did days ago: {ALLOW_TRIGGERS_HINT}."
        )


def _check_destination(
    ledger: Ledger, path: Path, endpoint: str, fingerprint: str, destination: str = EVENTS_API
) -> str | None:
    """One endpoint and API key per destination in a ledger (another destination, a direct
    one next to the Events API, is independent: its keys are its own).

    When the recorded target refused every send before reading it (a wrong API key, a URL
    without /v2), so that it acknowledged nothing and nothing may have arrived, the new
    target replaces it, and the returned note says so. Otherwise another target is
    refused with the way forward."""
    earlier = ledger.destination(destination)
    if earlier is None or earlier == (endpoint, fingerprint):
        return None
    held = ledger.holdings(destination)
    if not held:
        return (
            f"the ledger {path} recorded sends to {earlier[0]} (API key {earlier[1]}) that "
            "were refused before they were read; nothing was acknowledged and nothing is in "
            f"flight, so this run's target, {endpoint} (API key {fingerprint}), replaces it"
        )
    raise LedgerError(_other_target_refusal(path, earlier, endpoint, fingerprint, held))


def _other_target_refusal(
    path: Path, earlier: tuple[str, str], endpoint: str, fingerprint: str, held: Holdings
) -> str:
    """Why a ledger refuses another target, how to go on, and when a new ledger is safe."""
    from urllib.parse import urlsplit

    facts = []
    if held.acknowledged:
        facts.append(f"{held.events_acknowledged} events acknowledged")
    if held.unanswered:
        facts.append(f"{held.unanswered} batches sent without an answer (they may have arrived)")
    if held.refused:
        facts.append(f"{held.refused} batches refused after it read them")
    message = (
        f"the ledger {path} records sends to {earlier[0]} (API key {earlier[1]}): "
        f"{', '.join(facts)}; this run targets {endpoint} (API key {fingerprint}). To go on "
        "with that backfill, push to the same endpoint with the same API key. For another "
        "destination, use another ledger file (BACKFILL_LEDGER=other-ledger.duckdb loader "
        "push ...), which sends every event again: "
    )
    if held.acknowledged or held.unanswered:
        message += (
            "safe when the new target is another workspace or input, not when it reaches the "
            f"same data as {earlier[0]} (what arrived there would arrive twice)."
        )
    else:
        message += (
            "safe, as nothing reached the recorded target (this ledger would skip what it refused)."
        )
    recorded = urlsplit(earlier[0])
    if recorded.hostname in ("127.0.0.1", "localhost", "::1") and recorded.port:
        message += (
            " The recorded destination is a local emulator: start it on the same port "
            f"(`loader emulate --port {recorded.port}`), and give rehearsals a ledger of their "
            "own (BACKFILL_LEDGER=rehearsal-ledger.duckdb)."
        )
    return message


def _plan_into_ledger(
    ledger: Ledger,
    run_id: int,
    planner: Planner,
    options: PushOptions,
    validator: Validator | None,
    report: PushReport,
    outbox: Outbox,
) -> None:
    planning = _Plan(
        report, validator if options.validate else None, route=options.route, limits=options.limits
    )
    if report.plan.sample_users is not None:
        ledger.mark_sample(run_id, len(report.plan.sample_users))
    with ledger.transaction():
        ledger.supersede(planner.superseded_batches(), "content changed before it was acknowledged")
    resumed_numbers = planner.resumed_batches()
    new: list[PackedBatch] = []
    resumed: list[str] = []

    def flush() -> None:
        with ledger.transaction():
            ledger.add_batches(run_id, new)
            ledger.resume_batches(run_id, resumed, resumed_numbers)
        new.clear()
        resumed.clear()

    def recorded(batches: Iterator[PackedBatch]) -> Iterator[PackedBatch]:
        # each batch gets its number before the outbox holds it: its recorded one when
        # resumed, else the next (it is recorded with it by the next flush)
        for batch in batches:
            if batch.source_request_id in resumed_numbers:
                batch.batch_no = resumed_numbers[batch.source_request_id]
                resumed.append(batch.source_request_id)
            else:
                ledger.number(batch)
                new.append(batch)
            if len(new) + len(resumed) >= LEDGER_CHUNK:
                flush()
            yield batch

    batches = recorded(planning.batches(planner, with_hashes=True))
    for request in planning.requests(batches):
        outbox.add(request)
    flush()
    _forecast(planner, report.plan, options)
    outbox.close()
    report.progress.events_total = report.events_planned
    report.progress.batches_total = report.batches_planned
    report.progress.requests_total = report.requests_planned


def _send(
    ledger: Ledger,
    run_id: int,
    outbox: Outbox,
    options: PushOptions,
    credentials: Secrets,
    report: PushReport,
    on_progress: Callable[[Progress], None] | None,
) -> None:
    """Step 2: post the outbox's requests from worker threads; record outcomes here."""
    sender = _Sender(ledger, run_id, options, credentials, report.progress)
    try:
        sender.run(outbox.read(), on_progress)
    finally:
        sender.close()
    progress = report.progress
    if sender.fatal is not None:
        report.status, report.message = "stopped", sender.fatal
    elif progress.batches_failed or progress.batches_rejected or report.events_rejected_locally:
        report.status = "completed_with_failures"
    else:
        report.status = "completed"


class _Sender:
    """The main thread's side of sending: hands requests to workers, records what comes back.

    Batches are marked in flight (committed) before their request is handed over. The
    run stops on a 401/403, or when `give_up_after` requests in a row used every retry
    (the endpoint is down: no point grinding through the rest).
    """

    def __init__(
        self,
        ledger: Ledger,
        run_id: int,
        options: PushOptions,
        credentials: Secrets,
        progress: Progress,
    ) -> None:
        self.ledger, self.run_id, self.options, self.progress = ledger, run_id, options, progress
        self.stop = threading.Event()
        self.transport = Transport(
            options.route.client(options.endpoint, credentials, options.destination_settings),
            RateLimiter(options.rate, stop=self.stop),
            stop=self.stop,
            timeout_s=options.timeout_s,
            max_retries=options.max_retries,
            backoff_s=options.backoff_s,
        )
        self.pool = futures.ThreadPoolExecutor(options.workers, thread_name_prefix="push")
        self.pending: dict[futures.Future[Any], list[Outgoing]] = {}
        # of the batches handed over and not recorded yet: events, and ledger numbers
        self.events_of: dict[str, int] = {}
        self.numbers: dict[str, int] = {}
        self.fatal: str | None = None
        self.gave_up = 0
        self.request_no = 0

    def run(
        self, requests: Iterator[list[Outgoing]], on_progress: Callable[[Progress], None] | None
    ) -> None:
        self.progress.started = time.monotonic()
        max_pending = max(2, self.options.workers * 2)
        exhausted = False
        try:
            while True:
                results = self._collect()
                submit: list[list[Outgoing]] = []
                while not exhausted and self.fatal is None:
                    if len(self.pending) + len(submit) >= max_pending:
                        break
                    request = next(requests, None)
                    if request is None:
                        exhausted = True
                    else:
                        submit.append(request)
                with self.ledger.transaction():
                    self._record(results)
                    handed = [batch for request in submit for batch in request]
                    self._hand_over(handed)
                    self.ledger.mark_in_flight([b.source_request_id for b in handed], self.numbers)
                if self.fatal is not None:
                    self.stop.set()
                for request in submit:
                    self._submit(request)
                if on_progress is not None:
                    on_progress(self.progress)
                if not self.pending and (exhausted or self.fatal is not None):
                    return
                futures.wait(
                    list(self.pending), timeout=TURN_SECONDS, return_when=futures.FIRST_COMPLETED
                )
                time.sleep(MIN_TURN_SECONDS)  # let outcomes gather: fewer, larger commits
        except KeyboardInterrupt:
            self.stop.set()
            self._drain()
            raise

    def _hand_over(self, batches: list[Outgoing]) -> None:
        """Note the events and numbers of batches about to be handed over."""
        for batch in batches:
            self.events_of[batch.source_request_id] = batch.event_count
            if batch.batch_no is not None:
                self.numbers[batch.source_request_id] = batch.batch_no

    def _submit(self, request: list[Outgoing]) -> None:
        self.request_no += 1
        self.pending[self.pool.submit(self.transport.send, request, self.request_no)] = request

    def _collect(self) -> list[SendResult]:
        """Finished requests; notes a 401/403, or too many requests in a row given up."""
        done = [f for f in self.pending if f.done()]
        results = []
        for future in done:
            self.pending.pop(future)
            results.append(future.result())
        for result in results:
            self.fatal = self.fatal or result.fatal
            if result.acknowledged or result.rejected:
                self.gave_up = 0
            elif result.failed and not self.stop.is_set():
                self.gave_up += 1
                if self.fatal is None and self.gave_up >= self.options.give_up_after:
                    self.fatal = (
                        f"{self.gave_up} requests in a row failed after every retry (last "
                        f"error: {next(iter(result.failed.values()))}); stopped. Failed "
                        "batches are sent again, with the same ids, by the next `loader push`."
                    )
        return results

    def _record(self, results: list[SendResult]) -> None:
        """Record how requests ended: one statement per outcome for all of them, each
        addressing the batches by number (it reads only their row groups of `batches`)."""
        ledger, progress, events_of, numbers = (
            self.ledger,
            self.progress,
            self.events_of,
            self.numbers,
        )
        attempts = [attempt for result in results for attempt in result.attempts]
        tries = {sid: n for result in results for sid, n in result.tries.items()}
        acknowledged = [sid for result in results for sid in result.acknowledged]
        rejected = {sid: e for result in results for sid, e in result.rejected.items()}
        unanswered = {sid: e for result in results for sid, e in result.failed.items()}
        ledger.record_attempts(self.run_id, attempts)
        progress.http_requests += len(attempts)
        ledger.settle(ledger_mod.ACKNOWLEDGED, dict.fromkeys(acknowledged), tries, numbers)
        ledger.settle(ledger_mod.REJECTED, rejected, tries, numbers)
        never_sent = [sid for sid in unanswered if not tries.get(sid)]
        failed = {sid: error for sid, error in unanswered.items() if tries.get(sid)}
        ledger.settle(ledger_mod.FAILED, failed, tries, numbers)
        ledger.unsend(never_sent, numbers)
        progress.batches_not_sent += len(never_sent)
        progress.events_not_sent += sum(events_of[s] for s in never_sent)
        progress.batches_acknowledged += len(acknowledged)
        progress.events_acknowledged += sum(events_of[s] for s in acknowledged)
        progress.batches_rejected += len(rejected)
        progress.events_rejected += sum(events_of[s] for s in rejected)
        progress.batches_failed += len(failed)
        progress.events_failed += sum(events_of[s] for s in failed)
        for sid in (*acknowledged, *rejected, *unanswered):  # recorded: let go of them
            events_of.pop(sid, None)
            numbers.pop(sid, None)

    def _drain(self) -> None:
        """After Ctrl-C: wait for the requests under way and record how they ended."""
        for future in futures.as_completed(list(self.pending)):
            self.pending.pop(future)
            if not future.cancelled():
                with self.ledger.transaction():
                    self._record([future.result()])

    def close(self) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _run_counts(report: PushReport) -> dict[str, int]:
    p, plan = report.progress, report.plan
    return {
        "events_planned": report.events_planned,
        "batches_planned": report.batches_planned,
        "events_resumed": plan.resumed,
        "events_acknowledged": p.events_acknowledged,
        "batches_acknowledged": p.batches_acknowledged,
        "events_failed": p.events_failed,
        "batches_failed": p.batches_failed,
        "events_rejected": p.events_rejected + report.events_rejected_locally,
        "batches_rejected": p.batches_rejected + report.batches_rejected_locally,
        "events_already_acknowledged": plan.acknowledged_before,
        "events_changed_skipped": 0 if plan.resend_changed else plan.changed + plan.in_doubt,
        "events_changed_resent": plan.changed + plan.in_doubt if plan.resend_changed else 0,
        "events_rejected_before": plan.rejected_before,
        "http_requests": p.http_requests,
        "events_not_sent": p.events_not_sent,
        "batches_not_sent": p.batches_not_sent,
    }
