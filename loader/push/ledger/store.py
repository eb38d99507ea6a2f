"""The `Ledger`: open (creating or migrating the file), record a run's batches and
attempts, read its runs, states and failures.

One process writes it at a time: DuckDB's file lock makes a second `loader push` fail
at once, and `LedgerLocked` says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from loader.errors import LoaderError
from loader.push.attempts import Attempt
from loader.push.ledger import refusals
from loader.push.ledger.schema import (
    SCHEMA_VERSION,
    LedgerVersionError,
    check_version,
    migrate,
    sql_text,
    version_of,
)
from loader.push.packing import PackedBatch
from loader.warehouse import attach, insert_columns, lock_holder, open_duckdb

# Batch statuses: planned and in_flight and failed are "open" (sent again, with the same
# id, by the next run); acknowledged, rejected and superseded are settled.
PLANNED, IN_FLIGHT, ACKNOWLEDGED = "planned", "in_flight", "acknowledged"
FAILED, REJECTED, SUPERSEDED = "failed", "rejected", "superseded"
OPEN_STATUSES = (PLANNED, IN_FLIGHT, FAILED)
# batch numbers (`batches.batch_no`) by source_request_id: how the send loop addresses them
Numbers = Mapping[str, int]
# the destination of runs recorded before there was a choice, and the default
EVENTS_API = "events_api"
LEDGER_VIEWS = (
    "acknowledged_events",
    "event_batches",
    "open_batch_events",
    "key_history",
    "event_states",
    "failed_batches",
    "failures",
    "run_throughput",
    "run_counts",
)

# the counters the ledger itself records of a run (view `run_counts`): a run killed before
# it wrote its counters gets these from there
_RECOUNTED = (
    "events_planned",
    "batches_planned",
    "events_resumed",
    "events_acknowledged",
    "batches_acknowledged",
    "events_failed",
    "batches_failed",
    "events_rejected",
    "batches_rejected",
    "http_requests",
)
# a run's counters, as `runs` holds them
RUN_COUNTS = (
    *_RECOUNTED,
    "events_already_acknowledged",
    "events_changed_skipped",
    "events_changed_resent",
    "events_rejected_before",
    "events_not_sent",
    "batches_not_sent",
)


class LedgerLocked(LoaderError):
    """Another process (a running `loader push`) holds the ledger file."""


class LedgerError(LoaderError):
    """The ledger cannot be used as asked (another destination, an unreadable file)."""


@dataclass
class RunRow:
    """One row of the `runs` table (its counts are `RUN_COUNTS`)."""

    run_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    endpoint: str
    message: str | None
    events_planned: int
    batches_planned: int
    events_resumed: int
    events_acknowledged: int
    batches_acknowledged: int
    events_failed: int
    batches_failed: int
    events_rejected: int
    batches_rejected: int
    events_already_acknowledged: int
    events_changed_skipped: int
    events_changed_resent: int
    events_rejected_before: int
    http_requests: int
    events_not_sent: int = 0  # handed over for sending, never sent (the run stopped first)
    batches_not_sent: int = 0
    sample_users: int | None = None  # a sample run (a test send): how many users; else None
    destination: str = EVENTS_API  # events_api, or a direct destination (amplitude)

    @property
    def kind(self) -> str:
        """ "full", or "sample (N users)" for a test send."""
        return "full" if self.sample_users is None else f"sample ({self.sample_users} users)"


@dataclass
class EventCounts:
    """Replay keys by current state: the state of their latest batch (`event_states`)."""

    acknowledged: int = 0
    pending: int = 0
    failed: int = 0
    rejected: int = 0


@dataclass
class BatchCount:
    batches: int
    events: int


@dataclass(frozen=True)
class Holdings:
    """What a destination holds, or may hold, of the batches sent to it."""

    acknowledged: int  # batches it acknowledged
    events_acknowledged: int
    refused: int  # batches it refused after reading them
    unanswered: int  # batches sent without an answer: in flight, timed out, dropped

    def __bool__(self) -> bool:
        return bool(self.acknowledged or self.refused or self.unanswered)


@dataclass
class FailureRow:
    """One reason batches failed or were rejected (a row of the `failures` view): its
    stable `code` and `reason` (loader.events_api.reasons), and one full message."""

    status: str
    # 'loader' (before sending), the service that refused ('mparticle', 'amplitude'), None
    # when failed
    refused_by: str | None
    code: str
    reason: str | None
    batches: int
    events: int
    example_error: str | None
    example_source_request_id: str

    @property
    def side(self) -> str:
        """Who refused, or that the batch failed, in words."""
        return outcome_label(self.status, self.refused_by, self.example_error)


# the services of `failed_batches.refused_by`, as the user knows them
SERVICES = {"mparticle": "mParticle", "amplitude": "Amplitude"}


def outcome_label(status: str, refused_by: str | None, error: str | None) -> str:
    """'refused locally before sending', 'refused by mParticle (HTTP 400)' or 'failed'."""
    if refused_by == "loader":
        return "refused locally before sending"
    if refused_by is not None:
        status_code = re.match(r"HTTP (\d{3})", error or "")
        service = SERVICES.get(refused_by, refused_by)
        return f"refused by {service} (HTTP {status_code[1] if status_code else 400})"
    return "failed (sent again by the next push)" if status == FAILED else status


def api_key_fingerprint(api_key: str | None) -> str:
    """A short, one-way fingerprint of the API key (the key itself is not stored)."""
    if not api_key:
        return ""
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """The ledger file (or an empty in-memory ledger for a dry run without one)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None, read_only: bool):
        self.con = con
        self.path = path
        self.read_only = read_only
        self._earlier_batches: dict[int, bool] = {}  # run -> whether earlier runs left batches
        self._destinations: dict[int, str] = {}  # run -> its destination
        self._last_batch_no: int | None = None  # the highest batch number given out
        [(name,)] = con.execute("select current_database()").fetchall()
        # the ledger's tables, qualified so that other cursors of the session find them
        self.catalog = '"' + name.replace('"', '""') + '"'

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> Ledger:
        """Open (and create) the ledger at `path`; a push running elsewhere is `LedgerLocked`.

        Read-only, the file is attached (as `ledger`, the default database) to an
        in-memory connection, which leaves room for scratch tables; a missing or empty
        file reads as an empty ledger.
        """
        if read_only and not path.exists():
            return cls.in_memory()
        try:
            # a push streams the replay set through this session (its sort spills)
            if read_only:
                con = open_duckdb(":memory:", streaming=True)
                attach_ledger(con, path, "ledger")
                con.execute("use ledger")
            else:
                con = open_duckdb(path, streaming=True)
        except duckdb.IOException as exc:
            holder = lock_holder(exc)
            if holder is None:
                raise LedgerError(f"cannot open the ledger {path}: {exc}") from None
            if read_only:  # a reader (status) while a push runs: where its progress is
                raise LedgerLocked(
                    f"a push is running ({holder}) and holds the ledger {path}: follow it "
                    "with its output (`loader push --json` prints its report when it ends), "
                    "or run this command again (or query ledger.requests) after it ends."
                ) from None
            raise LedgerLocked(
                f"the ledger {path} is in use by {holder}: a `loader push` is running. "
                "Wait for it to finish (or stop it), then run this command again."
            ) from None
        ledger = cls(con, path, read_only)
        if not read_only:
            try:
                migrate(con, str(path))
            except BaseException:
                con.close()
                raise
        elif not ledger._has_schema():
            con.close()
            return cls.in_memory()
        return ledger

    @classmethod
    def in_memory(cls) -> Ledger:
        """An empty ledger that writes nowhere (a dry run with no ledger file yet)."""
        con = open_duckdb(":memory:", streaming=True)
        migrate(con, "in memory")
        return cls(con, None, read_only=True)

    def _has_schema(self) -> bool:
        [(database,)] = self.con.execute("select current_database()").fetchall()
        return version_of(self.con, database) is not None

    def close(self) -> None:
        with contextlib.suppress(duckdb.Error):
            if not self.read_only:
                self.con.execute("checkpoint")
        self.con.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together (durably) or not at all."""
        self.con.execute("begin transaction")
        try:
            yield
        except BaseException:
            self.con.execute("rollback")
            raise
        self.con.execute("commit")

    # Runs

    def close_stale_runs(self) -> int:
        """Runs still marked running were killed (this process holds the lock now).

        Their counters were never written: they are recomputed from what the ledger
        recorded of them (`batches` last planned in the run, `requests` it made).
        """
        rows = self.con.execute(
            "update runs set status = 'interrupted', "
            "message = coalesce(message, 'the process stopped before the run finished') "
            "where status = 'running' returning run_id"
        ).fetchall()
        for (run_id,) in rows:
            self._recount(run_id)
        return len(rows)

    def _recount(self, run_id: int) -> None:
        """A killed run's counters, from what the ledger recorded of it (`run_counts`)."""
        self.con.execute(
            "update runs set "
            + ", ".join(f"{name} = c.{name}" for name in _RECOUNTED)
            + ", finished_at = coalesce(c.last_sent_at, runs.finished_at) "
            "from run_counts c where c.run_id = runs.run_id and runs.run_id = ?",
            [run_id],
        )

    def destination(self, name: str = EVENTS_API) -> tuple[str, str] | None:
        """Endpoint and key fingerprint that earlier runs to destination `name` delivered
        to, if any: of the latest run that left a batch sent."""
        row = self.con.execute(
            "select endpoint, api_key_fingerprint from runs "
            "where run_id in (select last_run_id from batches where first_sent_at is not null) "
            "and destination = ? "
            "order by run_id desc limit 1",
            [name],
        ).fetchone()
        return (row[0], row[1]) if row else None

    def holdings(self, name: str = EVENTS_API) -> Holdings:
        """What destination `name` holds, or may hold, of the batches sent to it: those it
        acknowledged, those it refused after reading them, and those sent without an
        answer (in flight, or an attempt that timed out or lost its connection)."""
        [(acknowledged, events, refused, unanswered)] = self.con.execute(
            """
            with sent as (
                select b.source_request_id, b.status, b.event_count
                from batches b
                join runs r on r.run_id = b.last_run_id
                where b.first_sent_at is not null
                    and coalesce(r.destination, 'events_api') = $name
            ),
            unanswered as (
                select distinct unnest(q.source_request_ids) as source_request_id
                from requests q
                join runs r using (run_id)
                where q.status_code is null and coalesce(r.destination, 'events_api') = $name
            )
            select
                count(*) filter (where status = 'acknowledged'),
                coalesce(sum(event_count) filter (where status = 'acknowledged'), 0),
                count(*) filter (where status = 'rejected'),
                count(*) filter (
                    where status = 'in_flight' or (
                        status not in ('acknowledged', 'rejected')
                        and source_request_id in (select source_request_id from unanswered)
                    )
                ),
            from sent
            """,
            {"name": name},
        ).fetchall()
        return Holdings(acknowledged, events, refused, unanswered)

    def start_run(
        self,
        endpoint: str,
        fingerprint: str,
        options: dict[str, Any],
        destination: str = EVENTS_API,
    ) -> int:
        """Record a run to `destination` (the ledger keeps each destination's events apart)."""
        [(run_id,)] = self.con.execute(
            "insert into runs (run_id, started_at, status, endpoint, api_key_fingerprint, "
            "options, destination) values (nextval('run_ids'), ?, 'running', ?, ?, ?, ?) "
            "returning run_id",
            [now(), endpoint, fingerprint, orjson.dumps(options).decode(), destination],
        ).fetchall()
        self._destinations[run_id] = destination
        return int(run_id)

    def _destination_of(self, run_id: int) -> str:
        if run_id not in self._destinations:
            [(name,)] = self.con.execute(
                "select destination from runs where run_id = ?", [run_id]
            ).fetchall()
            self._destinations[run_id] = name
        return self._destinations[run_id]

    def mark_sample(self, run_id: int, users: int) -> None:
        """Record that run `run_id` is a sample run (a test send) of `users` users."""
        self.con.execute("update runs set sample_users = ? where run_id = ?", [users, run_id])

    def finish_run(
        self, run_id: int, status: str, counts: dict[str, int], message: str | None = None
    ) -> None:
        names = [name for name in RUN_COUNTS if name in counts]
        sets = "".join(f", {name} = ?" for name in names)
        self.con.execute(
            f"update runs set status = ?, finished_at = ?, message = ?{sets} where run_id = ?",
            [status, now(), message, *(counts[name] for name in names), run_id],
        )

    # Batches

    def number(self, batch: PackedBatch) -> int:
        """Give `batch` the next batch number (`batches.batch_no`), before `add_batches`
        records it: the outbox carries the number, and the send loop addresses the batch
        by it (`Numbers`)."""
        if self._last_batch_no is None:
            [(last,)] = self.con.execute(
                "select coalesce(max(batch_no), 0) from batches"
            ).fetchall()
            self._last_batch_no = int(last)
        self._last_batch_no += 1
        batch.batch_no = self._last_batch_no
        return batch.batch_no

    def add_batches(self, run_id: int, batches: Sequence[PackedBatch]) -> None:
        """Record new batches (planned, or rejected when they carry an error) and their events.

        Call inside `transaction()`: the composition and id of every batch are durable
        before any of them is sent. A batch without a number gets the next one; one
        planned again under a recorded id takes its new number.
        """
        if not batches:
            return
        for b in batches:
            if b.batch_no is None:
                self.number(b)
        known = self._known_ids(run_id, [b.source_request_id for b in batches])
        if known:  # planned again as before (content changed, then changed back)
            self._revive(run_id, [b for b in batches if b.source_request_id in known])
            batches = [b for b in batches if b.source_request_id not in known]
            if not batches:
                return
        at = now()
        batch_rows: dict[str, list[Any]] = {
            "source_request_id": [b.source_request_id for b in batches],
            "run_id": [run_id] * len(batches),
            "last_run_id": [run_id] * len(batches),
            "user_key": [b.user_key for b in batches],
            "context_key": [b.context_key for b in batches],
            "event_count": [b.event_count for b in batches],
            "body_bytes": [len(b.body) for b in batches],
            "status": [PLANNED if b.error is None else REJECTED for b in batches],
            "error": [b.error for b in batches],
            "error_code": [refusals.code(b.error) for b in batches],
            "error_reason": [refusals.reason(b.error) for b in batches],
            "planned_at": [at] * len(batches),
            "settled_at": [None if b.error is None else at for b in batches],
            "destination": [self._destination_of(run_id)] * len(batches),
            "batch_no": [b.batch_no for b in batches],
        }
        event_rows: dict[str, list[Any]] = {
            "source_request_id": [],
            "position": [],
            "replay_key": [],
            "content_hash": [],
        }
        for b in batches:
            if b.content_hashes is None:
                raise ValueError("batches recorded in the ledger need content hashes")
            event_rows["source_request_id"].extend([b.source_request_id] * b.event_count)
            event_rows["position"].extend(range(b.event_count))
            event_rows["replay_key"].extend(b.replay_keys)
            event_rows["content_hash"].extend(b.content_hashes)
        self._insert("batches", batch_rows)
        self._insert("batch_events", event_rows)

    def _known_ids(self, run_id: int, source_request_ids: list[str]) -> set[str]:
        """Those of `source_request_ids` recorded by earlier runs (a run plans each id once).
        Each lookup scans the batches, so none is made when earlier runs left none."""
        if run_id not in self._earlier_batches:
            [(earlier,)] = self.con.execute(
                "select exists (select 1 from batches where run_id <> ?)", [run_id]
            ).fetchall()
            self._earlier_batches[run_id] = earlier
        if not self._earlier_batches[run_id]:
            return set()
        rows = self.con.execute(
            "select source_request_id from batches "
            "where source_request_id in (select unnest(?::varchar[]))",
            [source_request_ids],
        ).fetchall()
        return {row[0] for row in rows}

    def _revive(self, run_id: int, batches: Sequence[PackedBatch]) -> None:
        """A batch planned anew with an id already recorded: same id, so same composition."""
        at = now()
        for b in batches:
            self.con.execute(
                "update batches set status = ?, error = ?, error_code = ?, error_reason = ?, "
                "last_run_id = ?, planned_at = ?, settled_at = ?, batch_no = ? "
                "where source_request_id = ?",
                [
                    PLANNED if b.error is None else REJECTED,
                    b.error,
                    refusals.code(b.error),
                    refusals.reason(b.error),
                    run_id,
                    at,
                    None if b.error is None else at,
                    b.batch_no,
                    b.source_request_id,
                ],
            )

    def resume_batches(
        self, run_id: int, source_request_ids: Iterable[str], numbers: Numbers | None = None
    ) -> None:
        """Open batches of earlier runs that this run sends again, with the same id."""
        self._set(source_request_ids, "last_run_id = ?", [run_id], numbers=numbers)

    def mark_in_flight(
        self, source_request_ids: Sequence[str], numbers: Numbers | None = None
    ) -> None:
        """Batches about to be sent: from now on mParticle may have them."""
        at = now()
        self._set(
            source_request_ids,
            "status = 'in_flight', first_sent_at = coalesce(first_sent_at, ?), last_sent_at = ?",
            [at, at],
            only_status=(PLANNED, FAILED, IN_FLIGHT),
            numbers=numbers,
        )

    def settle(
        self,
        status: str,
        errors: Mapping[str, str | None],
        attempts: Mapping[str, int],
        numbers: Numbers | None = None,
    ) -> None:
        """Set the outcome of batches (acknowledged, failed, rejected) with their messages.

        A failed batch stays open (the next run sends it again), so it gets no settled_at.
        """
        ids = list(errors)
        self._set(
            ids,
            "status = ?, error = o.error, error_code = o.code, error_reason = o.reason, "
            "settled_at = ?, attempts = batches.attempts + o.attempts",
            [status, None if status == FAILED else now()],
            numbers=numbers,
            columns={
                "error": ("varchar", [errors[sid] for sid in ids]),
                "code": ("varchar", [refusals.code(errors[sid]) for sid in ids]),
                "reason": ("varchar", [refusals.reason(errors[sid]) for sid in ids]),
                "attempts": ("integer", [attempts.get(sid, 0) for sid in ids]),
            },
        )

    def unsend(self, source_request_ids: Sequence[str], numbers: Numbers | None = None) -> None:
        """Batches handed over for sending but never sent (the run stopped first): open
        and unsent again, as if never handed over (unless an earlier run sent them)."""
        self._set(
            source_request_ids,
            "status = 'planned', error = null, error_code = null, error_reason = null, "
            "first_sent_at = case when attempts = 0 then null else first_sent_at end, "
            "last_sent_at = case when attempts = 0 then null else last_sent_at end",
            [],
            only_status=(IN_FLIGHT,),
            numbers=numbers,
        )

    def supersede(self, source_request_ids: Sequence[str], reason: str) -> None:
        """Open batches whose content changed: never sent again (their events are planned anew)."""
        self._set(
            source_request_ids,
            "status = 'superseded', error = ?, error_code = ?, error_reason = ?, settled_at = ?",
            [reason, refusals.code(reason), refusals.reason(reason), now()],
        )

    def _set(
        self,
        source_request_ids: Iterable[str],
        assignments: str,
        values: list[Any],
        only_status: Sequence[str] | None = None,
        numbers: Numbers | None = None,
        columns: Mapping[str, tuple[str, list[Any]]] | None = None,
    ) -> None:
        """Update the batches `source_request_ids` (`columns`: a value per batch, as
        `o.<name>`). With every batch's number in `numbers`, the statement matches on
        number and id: DuckDB pushes the numbers' range into its scan of `batches`, which
        reads only the row groups holding them (the send loop's cost per turn does not
        grow with the ledger); without, it reads every batch."""
        ids = list(source_request_ids)
        if not ids:
            return
        given = [numbers.get(sid) for sid in ids] if numbers is not None else None
        per_batch = {"sid": ("varchar", ids), **(columns or {})}
        match = "batches.source_request_id = o.sid"
        if given is not None and None not in given:
            per_batch["no"] = ("bigint", given)
            match = "batches.batch_no = o.no and " + match
        condition = ""
        if only_status:
            condition = " and batches.status in (" + ", ".join(f"'{s}'" for s in only_status) + ")"
        unnested = ", ".join(
            f"unnest(?::{kind}[]) as {col}" for col, (kind, _) in per_batch.items()
        )
        self.con.execute(
            f"update batches set {assignments} from (select {unnested}) o where {match}{condition}",
            [*values, *(column for _, column in per_batch.values())],
        )

    def record_attempts(self, run_id: int, attempts: Sequence[Attempt]) -> None:
        """Add HTTP attempts to the `requests` table."""
        if not attempts:
            return
        columns = [
            "request_no",
            "attempt",
            "sent_at",
            "latency_ms",
            "status_code",
            "outcome",
            "body_bytes",
            "source_request_ids",
            "retry_after",
            "rate_limit_exceeded",
            "rate_limit_percentage_used",
            "error",
            "wait_ms",
        ]
        rows: dict[str, list[Any]] = {
            name: [getattr(a, name) for a in attempts] for name in columns
        }
        rows["run_id"] = [run_id] * len(attempts)
        rows["batch_count"] = [len(a.source_request_ids) for a in attempts]
        self._insert("requests", rows)

    def _insert(self, table: str, rows: dict[str, list[Any]]) -> None:
        """Insert column lists (one Arrow table, one statement)."""
        insert_columns(self.con, table, rows)

    # Reading

    def runs(self) -> list[RunRow]:
        """Every run, oldest first, with its counts."""
        names = ", ".join(f.name for f in fields(RunRow))
        return [RunRow(*row) for row in self.query(f"select {names} from runs order by run_id")]

    def event_counts(self, destination: str | None = None) -> EventCounts:
        """Replay keys by their current state (`event_states`); of one destination's keys
        with `destination`."""
        where = "where destination = ?" if destination else ""
        states = dict(
            self.query(
                f"select state, count(*) from event_states {where} group by state",
                [destination] if destination else [],
            )
        )
        return EventCounts(
            acknowledged=states.get(ACKNOWLEDGED, 0),
            pending=states.get("pending", 0),
            failed=states.get(FAILED, 0),
            rejected=states.get(REJECTED, 0),
        )

    def batch_counts(self) -> dict[str, BatchCount]:
        """Batches and their events, by batch status."""
        return {
            status: BatchCount(batches, events)
            for status, batches, events in self.query(
                "select status, count(*), sum(event_count) from batches "
                "group by status order by status"
            )
        }

    def failures(self, *, run_id: int | None = None, limit: int = 20) -> list[FailureRow]:
        """Failures that still matter (`failures`), by reason; of one run with `run_id`."""
        source = "failures"
        params: list[Any] = []
        if run_id is not None:
            source = (
                "(select status, refused_by, code, reason, count(*) as batches, "
                "sum(events) as events, min(error) as example_error, "
                "min(source_request_id) as example_source_request_id "
                "from failed_batches where run_id = ? group by status, refused_by, code, reason)"
            )
            params.append(run_id)
        names = ", ".join(f.name for f in fields(FailureRow))
        rows = self.query(
            f"select {names} from {source} order by events desc, code, reason limit ?",
            [*params, limit],
        )
        return [FailureRow(*row) for row in rows]

    def throughput(self, run_id: int) -> float | None:
        """Batches accepted per second over the run's send phase (`run_throughput`)."""
        rows = self.query(
            "select batches_per_second from run_throughput where run_id = ?", [run_id]
        )
        return rows[0][0] if rows else None

    def destinations(self) -> list[str]:
        """The destinations this ledger holds batches of, the Events API first."""
        rows = self.query(
            "select distinct destination, destination <> ? as direct from batches "
            "order by direct, destination",
            [EVENTS_API],
        )
        return [row[0] for row in rows]

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params or [])).fetchall()

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, list(params or []))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def attach_ledger(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    """Attach the ledger file at `path` read-only as `alias`, with every view.

    A file that cannot be read as it is gets an in-memory catalog `alias` instead (the
    file attached as `<alias>_file` and never written; the next push migrates it), so that
    queries read `<alias>.failures` (or any table) either way:
    - of `SCHEMA_VERSION` without some view (written before it existed): views over the
      file's tables, and the views on them;
    - of an earlier schema version: its tables copied to memory and migrated there.
    A ledger of a later version is refused (`LedgerVersionError`).
    """
    attach(con, path, alias)
    version = version_of(con, alias)
    if version is None:
        return
    try:
        check_version(version, str(path))
    except LedgerVersionError:
        con.execute(f'detach "{alias}"')
        raise
    if version == SCHEMA_VERSION and _has_views(con, alias):
        return
    con.execute(f'detach "{alias}"')
    attach(con, path, f"{alias}_file")
    con.execute(f"attach ':memory:' as \"{alias}\"")
    tables = [
        row[0]
        for row in con.execute(
            "select table_name from duckdb_tables() where database_name = ? "
            "and schema_name = 'main'",
            [f"{alias}_file"],
        ).fetchall()
    ]
    [(current,)] = con.execute("select current_database()").fetchall()
    kind = "view" if version == SCHEMA_VERSION else "table"
    for table in tables:
        con.execute(
            f'create {kind} "{alias}".main.{table} as select * from "{alias}_file".main.{table}'
        )
    con.execute(f'use "{alias}"')
    try:
        if version == SCHEMA_VERSION:
            con.execute(sql_text("views.sql"))
        else:
            migrate(con, str(path))
    finally:
        con.execute('use "' + current.replace('"', '""') + '"')


def _has_views(con: duckdb.DuckDBPyConnection, database: str) -> bool:
    [(found,)] = con.execute(
        "select count(*) from duckdb_views() where database_name = ? "
        "and list_contains(?, view_name)",
        [database, list(LEDGER_VIEWS)],
    ).fetchall()
    return int(found) == len(LEDGER_VIEWS)
