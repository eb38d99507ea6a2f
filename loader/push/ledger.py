"""The send ledger: what was planned, sent and acknowledged, in its own DuckDB file.

It survives deleting and rebuilding the warehouse, and joins to the replay set on
`replay_key`. Tables and views are documented in README.md ("The send ledger"); their
names and columns are stable. The API secret never goes in: runs keep the endpoint and a
fingerprint of the API key.

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
from loader.events_api.reasons import classify
from loader.push.attempts import Attempt
from loader.push.packing import PackedBatch
from loader.warehouse import attach, insert_columns, lock_holder, open_duckdb

# Batch statuses: planned and in_flight and failed are "open" (sent again, with the same
# id, by the next run); acknowledged, rejected and superseded are settled.
PLANNED, IN_FLIGHT, ACKNOWLEDGED = "planned", "in_flight", "acknowledged"
FAILED, REJECTED, SUPERSEDED = "failed", "rejected", "superseded"
OPEN_STATUSES = (PLANNED, IN_FLIGHT, FAILED)
LEDGER_TABLES = ("runs", "batches", "batch_events", "requests")
LEDGER_VIEWS = (
    "acknowledged_events",
    "event_batches",
    "open_batch_events",
    "key_history",
    "event_states",
    "failed_batches",
    "failures",
    "run_throughput",
)

SCHEMA = """
create sequence if not exists run_ids start 1;
create sequence if not exists request_ids start 1;
create table if not exists runs (
    run_id integer primary key,
    started_at timestamptz not null,
    finished_at timestamptz,
    status varchar not null,
    endpoint varchar not null,
    api_key_fingerprint varchar not null,
    options json not null,
    message varchar,
    events_planned bigint not null default 0,
    batches_planned bigint not null default 0,
    events_resumed bigint not null default 0,
    events_acknowledged bigint not null default 0,
    batches_acknowledged bigint not null default 0,
    events_failed bigint not null default 0,
    batches_failed bigint not null default 0,
    events_rejected bigint not null default 0,
    batches_rejected bigint not null default 0,
    events_already_acknowledged bigint not null default 0,
    events_changed_skipped bigint not null default 0,
    events_changed_resent bigint not null default 0,
    events_rejected_before bigint not null default 0,
    http_requests bigint not null default 0
);
alter table runs add column if not exists events_not_sent bigint default 0;
alter table runs add column if not exists batches_not_sent bigint default 0;
alter table runs add column if not exists sample_users integer;
alter table runs add column if not exists destination varchar default 'events_api';
create table if not exists batches (
    source_request_id varchar primary key,
    run_id integer not null,
    last_run_id integer not null,
    user_key varchar not null,
    context_key varchar not null,
    event_count integer not null,
    body_bytes integer not null,
    status varchar not null,
    error varchar,
    attempts integer not null default 0,
    planned_at timestamptz not null,
    first_sent_at timestamptz,
    last_sent_at timestamptz,
    settled_at timestamptz
);
alter table batches add column if not exists error_code varchar;
alter table batches add column if not exists error_reason varchar;
create table if not exists batch_events (
    source_request_id varchar not null,
    position integer not null,
    replay_key varchar not null,
    content_hash varchar not null
);
create table if not exists requests (
    request_id bigint primary key default nextval('request_ids'),
    run_id integer not null,
    request_no integer not null,
    attempt integer not null,
    sent_at timestamptz not null,
    latency_ms integer,
    status_code integer,
    outcome varchar not null,
    batch_count integer not null,
    body_bytes integer not null,
    source_request_ids varchar[] not null,
    retry_after varchar,
    rate_limit_exceeded varchar,
    rate_limit_percentage_used varchar,
    error varchar,
    wait_ms integer
);
"""

# Views: the one definition of each fact that status, the report, the planner and
# analyses/ read. Created (or replaced) whenever the ledger is opened for writing; a file
# written before a view existed gets it from `attach_ledger` when opened read-only.
VIEWS = """
create or replace view acknowledged_events as
select
    e.replay_key,
    arg_max(e.content_hash, b.settled_at) as content_hash,
    arg_max(b.source_request_id, b.settled_at) as source_request_id,
    arg_max(b.last_run_id, b.settled_at) as run_id,
    max(b.settled_at) as acknowledged_at,
    count(*) as times_acknowledged,
from batch_events e
join batches b using (source_request_id)
where b.status = 'acknowledged'
group by e.replay_key;
create or replace view event_batches as
select
    e.replay_key,
    e.content_hash,
    e.position,
    b.*,
from batch_events e
join batches b using (source_request_id);
create or replace view open_batch_events as
select
    b.source_request_id,
    b.user_key,
    b.context_key,
    b.first_sent_at is not null as was_sent,
    e.position,
    e.replay_key,
    e.content_hash,
from batches b
join batch_events e using (source_request_id)
where b.status in ('planned', 'in_flight', 'failed');
create or replace view key_history as
select
    e.replay_key,
    arg_max(e.content_hash, b.settled_at) filter (where b.status = 'acknowledged')
        as acknowledged_hash,
    arg_max(e.content_hash, b.settled_at) filter (where b.status = 'rejected')
        as rejected_hash,
    coalesce(bool_or(b.status = 'superseded' and b.first_sent_at is not null), false)
        as sent_then_superseded,
from batch_events e
join batches b using (source_request_id)
group by e.replay_key;
create or replace view event_states as
with ranked as (
    select
        replay_key,
        status,
        error,
        source_request_id,
        last_run_id,
        content_hash,
        planned_at,
        row_number() over (
            partition by replay_key
            order by status = 'superseded', planned_at desc, source_request_id desc
        ) as rank,
    from event_batches
)
select
    ranked.replay_key,
    case
        when ranked.status in ('planned', 'in_flight') then 'pending'
        else ranked.status
    end as state,
    ranked.status as batch_status,
    ranked.error,
    ranked.source_request_id,
    ranked.last_run_id as run_id,
    ranked.content_hash,
    ranked.planned_at,
    acked.replay_key is not null as ever_acknowledged,
    acked.content_hash as acknowledged_hash,
    acked.acknowledged_at,
from ranked
left join acknowledged_events as acked using (replay_key)
where ranked.rank = 1;
create or replace view failed_batches as
select
    b.source_request_id,
    b.last_run_id as run_id,
    b.status,
    case
        when b.status = 'rejected' and b.first_sent_at is null then 'loader'
        when b.status = 'rejected' and (
            select r.destination from runs r where r.run_id = b.run_id) = 'amplitude'
            then 'amplitude'
        when b.status = 'rejected' then 'mparticle'
    end as refused_by,
    coalesce(b.error_code, 'other') as code,
    coalesce(b.error_reason, b.error) as reason,
    b.error,
    b.attempts,
    b.last_sent_at,
    count(*) as events,
from batches b
join event_states s using (source_request_id)
where s.state in ('failed', 'rejected')
group by all;
create or replace view run_throughput as
-- the one measure of throughput: batches accepted over the send phase, from the first
-- attempt's sent_at to the last answer (sent_at plus latency) of the run
select
    run_id,
    count(*) as http_requests,
    count(*) filter (where outcome = 'rate_limited') as rate_limited,
    coalesce(sum(batch_count) filter (where outcome = 'accepted'), 0) as batches_accepted,
    min(sent_at) as first_sent_at,
    max(sent_at + to_milliseconds(coalesce(latency_ms, 0))) as last_answer_at,
    epoch(max(sent_at + to_milliseconds(coalesce(latency_ms, 0)))) - epoch(min(sent_at))
        as send_seconds,
    coalesce(sum(batch_count) filter (where outcome = 'accepted'), 0)
        / nullif(epoch(max(sent_at + to_milliseconds(coalesce(latency_ms, 0))))
            - epoch(min(sent_at)), 0) as batches_per_second,
from requests
group by run_id;
create or replace view failures as
select
    status,
    refused_by,
    code,
    reason,
    count(*) as batches,
    sum(events) as events,
    min(error) as example_error,
    min(source_request_id) as example_source_request_id,
from failed_batches
group by status, refused_by, code, reason;
"""

RUN_COUNTS = (
    "events_planned",
    "batches_planned",
    "events_resumed",
    "events_acknowledged",
    "batches_acknowledged",
    "events_failed",
    "batches_failed",
    "events_rejected",
    "batches_rejected",
    "events_already_acknowledged",
    "events_changed_skipped",
    "events_changed_resent",
    "events_rejected_before",
    "http_requests",
    "events_not_sent",
    "batches_not_sent",
)
# columns added since the first ledgers (SCHEMA adds them; `attach_ledger` and `runs()` make
# them up, with these values, for a file opened read-only without them)
ADDED_RUN_COLUMNS = {
    "events_not_sent": "0::bigint",
    "batches_not_sent": "0::bigint",
    "sample_users": "null::integer",
    "destination": "'events_api'",  # runs from before there was a choice
}
ADDED_COLUMNS = {
    "runs": tuple(ADDED_RUN_COLUMNS),
    "batches": ("error_code", "error_reason"),
}
# a direct destination's events are recorded as <name>:<replay_key> (see
# loader.push.destinations); the Events API's as the replay_key itself
DESTINATION_OF_KEY_SQL = (
    "case when replay_key like 'amplitude:%' then 'amplitude' else 'events_api' end"
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
    destination: str = "events_api"  # events_api, or a direct destination (amplitude)

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
            con.execute(SCHEMA)
            con.execute(VIEWS)
            ledger._classify_old_errors()
        elif not ledger._has_schema():
            con.close()
            return cls.in_memory()
        return ledger

    @classmethod
    def in_memory(cls) -> Ledger:
        """An empty ledger that writes nowhere (a dry run with no ledger file yet)."""
        con = open_duckdb(":memory:", streaming=True)
        con.execute(SCHEMA)
        con.execute(VIEWS)
        return cls(con, None, read_only=True)

    def _classify_old_errors(self) -> None:
        """Give a code and reason to messages recorded before the ledger kept them."""
        errors = [
            row[0]
            for row in self.query(
                "select distinct error from batches where error is not null and error_code is null"
            )
        ]
        if errors:
            self.con.execute(
                "update batches set error_code = c.code, error_reason = c.reason "
                f"from ({_CODES_SQL}) c where batches.error = c.error",
                _codes_params(errors),
            )

    def _has_schema(self) -> bool:
        return _has_relations(self.con, "current_database()", LEDGER_TABLES)

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
        """A killed run's counters, from its batches and requests."""
        self.con.execute(
            """
            with accepted as (
                select distinct unnest(source_request_ids) as source_request_id
                from requests where run_id = $run and outcome = 'accepted'
            ),
            mine as (
                select b.*, a.source_request_id is not null as accepted,
                    b.status = 'rejected' and b.first_sent_at is null as refused_locally,
                from batches b left join accepted a using (source_request_id)
                where b.last_run_id = $run
            ),
            counts as (
                select
                    coalesce(sum(event_count) filter (where not refused_locally), 0) as ep,
                    count(*) filter (where not refused_locally) as bp,
                    coalesce(sum(event_count) filter (where run_id < $run), 0) as er,
                    coalesce(sum(event_count) filter (where accepted), 0) as ea,
                    count(*) filter (where accepted) as ba,
                    coalesce(sum(event_count) filter (where status = 'failed'), 0) as ef,
                    count(*) filter (where status = 'failed') as bf,
                    coalesce(sum(event_count) filter (where status = 'rejected'), 0) as ej,
                    count(*) filter (where status = 'rejected') as bj,
                    (select count(*) from requests where run_id = $run) as http,
                from mine
            )
            update runs set
                events_planned = ep, batches_planned = bp, events_resumed = er,
                events_acknowledged = ea, batches_acknowledged = ba,
                events_failed = ef, batches_failed = bf,
                events_rejected = ej, batches_rejected = bj, http_requests = http,
                finished_at = coalesce(
                    (select max(sent_at) from requests where run_id = $run), finished_at)
            from counts
            where runs.run_id = $run
            """,
            {"run": run_id},
        )

    def destination(self, name: str = "events_api") -> tuple[str, str] | None:
        """Endpoint and key fingerprint that earlier runs to destination `name` delivered
        to, if any (the ledger must be open for writing: older files get the column then)."""
        row = self.con.execute(
            "select endpoint, api_key_fingerprint from runs "
            "where run_id in (select last_run_id from batches where first_sent_at is not null) "
            "and coalesce(destination, 'events_api') = ? "
            "order by run_id desc limit 1",
            [name],
        ).fetchone()
        return (row[0], row[1]) if row else None

    def start_run(
        self,
        endpoint: str,
        fingerprint: str,
        options: dict[str, Any],
        destination: str = "events_api",
    ) -> int:
        [(run_id,)] = self.con.execute(
            "insert into runs (run_id, started_at, status, endpoint, api_key_fingerprint, "
            "options, destination) values (nextval('run_ids'), ?, 'running', ?, ?, ?, ?) "
            "returning run_id",
            [now(), endpoint, fingerprint, orjson.dumps(options).decode(), destination],
        ).fetchall()
        return run_id

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

    def add_batches(self, run_id: int, batches: Sequence[PackedBatch]) -> None:
        """Record new batches (planned, or rejected when they carry an error) and their events.

        Call inside `transaction()`: the composition and id of every batch are durable
        before any of them is sent.
        """
        if not batches:
            return
        known = self._known_ids(run_id, [b.source_request_id for b in batches])
        if known:  # planned again as before (content changed, then changed back)
            self._revive(run_id, [b for b in batches if b.source_request_id in known])
            batches = [b for b in batches if b.source_request_id not in known]
            if not batches:
                return
        at = now()
        batch_rows: dict[str, list] = {
            "source_request_id": [b.source_request_id for b in batches],
            "run_id": [run_id] * len(batches),
            "last_run_id": [run_id] * len(batches),
            "user_key": [b.user_key for b in batches],
            "context_key": [b.context_key for b in batches],
            "event_count": [b.event_count for b in batches],
            "body_bytes": [len(b.body) for b in batches],
            "status": [PLANNED if b.error is None else REJECTED for b in batches],
            "error": [b.error for b in batches],
            "error_code": [_code(b.error) for b in batches],
            "error_reason": [_reason(b.error) for b in batches],
            "planned_at": [at] * len(batches),
            "settled_at": [None if b.error is None else at for b in batches],
        }
        event_rows: dict[str, list] = {
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
            "select source_request_id from batches where list_contains(?, source_request_id)",
            [source_request_ids],
        ).fetchall()
        return {row[0] for row in rows}

    def _revive(self, run_id: int, batches: Sequence[PackedBatch]) -> None:
        """A batch planned anew with an id already recorded: same id, so same composition."""
        at = now()
        for b in batches:
            self.con.execute(
                "update batches set status = ?, error = ?, error_code = ?, error_reason = ?, "
                "last_run_id = ?, planned_at = ?, settled_at = ? where source_request_id = ?",
                [
                    PLANNED if b.error is None else REJECTED,
                    b.error,
                    _code(b.error),
                    _reason(b.error),
                    run_id,
                    at,
                    None if b.error is None else at,
                    b.source_request_id,
                ],
            )

    def resume_batches(self, run_id: int, source_request_ids: Iterable[str]) -> None:
        """Open batches of earlier runs that this run sends again, with the same id."""
        self._set(source_request_ids, "last_run_id = ?", [run_id])

    def mark_in_flight(self, source_request_ids: Sequence[str]) -> None:
        """Batches about to be sent: from now on mParticle may have them."""
        at = now()
        self._set(
            source_request_ids,
            "status = 'in_flight', first_sent_at = coalesce(first_sent_at, ?), last_sent_at = ?",
            [at, at],
            only_status=(PLANNED, FAILED, IN_FLIGHT),
        )

    def settle(
        self, status: str, errors: Mapping[str, str | None], attempts: Mapping[str, int]
    ) -> None:
        """Set the outcome of batches (acknowledged, failed, rejected) with their messages.

        A failed batch stays open (the next run sends it again), so it gets no settled_at.
        """
        if not errors:
            return
        ids = list(errors)
        self.con.execute(
            "update batches set status = ?, error = o.error, error_code = o.code, "
            "error_reason = o.reason, settled_at = ?, attempts = batches.attempts + o.attempts "
            "from (select unnest(?::varchar[]) as sid, unnest(?::varchar[]) as error, "
            "unnest(?::varchar[]) as code, unnest(?::varchar[]) as reason, "
            "unnest(?::integer[]) as attempts) o "
            "where batches.source_request_id = o.sid",
            [
                status,
                None if status == FAILED else now(),
                ids,
                [errors[sid] for sid in ids],
                [_code(errors[sid]) for sid in ids],
                [_reason(errors[sid]) for sid in ids],
                [attempts.get(sid, 0) for sid in ids],
            ],
        )

    def unsend(self, source_request_ids: Sequence[str]) -> None:
        """Batches handed over for sending but never sent (the run stopped first): open
        and unsent again, as if never handed over (unless an earlier run sent them)."""
        self._set(
            source_request_ids,
            "status = 'planned', error = null, error_code = null, error_reason = null, "
            "first_sent_at = case when attempts = 0 then null else first_sent_at end, "
            "last_sent_at = case when attempts = 0 then null else last_sent_at end",
            [],
            only_status=(IN_FLIGHT,),
        )

    def supersede(self, source_request_ids: Sequence[str], reason: str) -> None:
        """Open batches whose content changed: never sent again (their events are planned anew)."""
        self._set(
            source_request_ids,
            "status = 'superseded', error = ?, error_code = ?, error_reason = ?, settled_at = ?",
            [reason, _code(reason), _reason(reason), now()],
        )

    def _set(
        self,
        source_request_ids: Iterable[str],
        assignments: str,
        values: list,
        only_status: Sequence[str] | None = None,
    ) -> None:
        ids = list(source_request_ids)
        if not ids:
            return
        condition = ""
        if only_status:
            condition = " and status in (" + ", ".join(f"'{s}'" for s in only_status) + ")"
        self.con.execute(
            f"update batches set {assignments} "
            f"where list_contains(?::varchar[], source_request_id){condition}",
            [*values, ids],
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
        rows: dict[str, list] = {name: [getattr(a, name) for a in attempts] for name in columns}
        rows["run_id"] = [run_id] * len(attempts)
        rows["batch_count"] = [len(a.source_request_ids) for a in attempts]
        self._insert("requests", rows)

    def _insert(self, table: str, rows: dict[str, list]) -> None:
        """Insert column lists (one Arrow table, one statement)."""
        insert_columns(self.con, table, rows)

    # Reading

    def runs(self) -> list[RunRow]:
        """Every run, oldest first, with its counts."""
        present = {
            row[0]
            for row in self.query(
                "select column_name from duckdb_columns() where database_name = "
                "current_database() and table_name = 'runs'"
            )
        }
        names = ", ".join(
            f.name
            if f.name in present or f.name not in ADDED_RUN_COLUMNS
            else f"{ADDED_RUN_COLUMNS[f.name]} as {f.name}"
            for f in fields(RunRow)
        )
        return [RunRow(*row) for row in self.query(f"select {names} from runs order by run_id")]

    def event_counts(self, destination: str | None = None) -> EventCounts:
        """Replay keys by their current state (`event_states`); of one destination's keys
        with `destination`."""
        where = f"where {DESTINATION_OF_KEY_SQL} = ?" if destination else ""
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
        params: list = []
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
        """The destinations this ledger holds events of, the Events API first."""
        rows = self.query(
            f"select distinct {DESTINATION_OF_KEY_SQL} as d from batch_events order by d desc"
        )
        return [row[0] for row in rows]

    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        return self.con.execute(sql, list(params or [])).fetchall()

    def query_dicts(self, sql: str, params: Sequence | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, list(params or []))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _has_relations(con: duckdb.DuckDBPyConnection, database: str, names: Sequence[str]) -> bool:
    """True when every name is a table or view of `database` (an SQL expression)."""
    [(found,)] = con.execute(
        f"select count(distinct name) from ("
        f"select table_name as name from duckdb_tables() where database_name = {database} "
        f"union all select view_name from duckdb_views() where database_name = {database}"
        ") where list_contains(?, name)",
        [list(names)],
    ).fetchall()
    return found == len(names)


def _code(error: str | None) -> str | None:
    refusal = classify(error)
    return None if refusal is None else refusal.code


def _reason(error: str | None) -> str | None:
    refusal = classify(error)
    return None if refusal is None else refusal.reason


# messages with their code and reason, as a relation (parameters: `_codes_params`)
_CODES_SQL = (
    "select unnest(?::varchar[]) as error, unnest(?::varchar[]) as code, "
    "unnest(?::varchar[]) as reason"
)


def _codes_params(errors: list[str]) -> list[list]:
    return [errors, [_code(e) for e in errors], [_reason(e) for e in errors]]


def _missing_columns(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, list[str]]:
    """Columns of `ADDED_COLUMNS` that the tables of `database` (an SQL expression) lack."""
    present = set(
        con.execute(
            "select table_name, column_name from duckdb_columns() "
            f"where database_name = {database} and schema_name = 'main'"
        ).fetchall()
    )
    return {
        table: missing
        for table, names in ADDED_COLUMNS.items()
        if (missing := [name for name in names if (table, name) not in present])
    }


def attach_ledger(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    """Attach the ledger file at `path` read-only as `alias`, with every view of `VIEWS`.

    A file written before some view or column existed cannot get it while read-only: then
    the file is attached as `<alias>_file` and `alias` is an in-memory catalog of views
    over its tables (missing counts read as 0, the codes of old messages are worked out),
    so that queries read `<alias>.failures` (or any table) either way.
    """
    attach(con, path, alias)
    quoted = "'" + alias.replace("'", "''") + "'"
    if not _has_relations(con, quoted, LEDGER_TABLES):
        return
    missing = _missing_columns(con, quoted)
    if not missing and _has_relations(con, quoted, LEDGER_VIEWS):
        return
    con.execute(f'detach "{alias}"')
    attach(con, path, f"{alias}_file")
    [(current,)] = con.execute("select current_database()").fetchall()
    con.execute(f"attach ':memory:' as \"{alias}\"")
    for table in LEDGER_TABLES:
        con.execute(
            f'create view "{alias}".main.{table} as '
            + _table_with_added_columns(con, alias, table, missing.get(table, []))
        )
    con.execute(f'use "{alias}"')
    try:
        con.execute(VIEWS)
    finally:
        con.execute('use "' + current.replace('"', '""') + '"')


def _table_with_added_columns(
    con: duckdb.DuckDBPyConnection, alias: str, table: str, missing: list[str]
) -> str:
    """A select of the file's `table`, with the columns it lacks made up."""
    source = f'"{alias}_file".main.{table}'
    if table == "batches" and "error_code" in missing:
        errors = [
            row[0]
            for row in con.execute(
                f"select distinct error from {source} where error is not null"
            ).fetchall()
        ]
        con.execute(
            f'create table "{alias}".main.error_codes as {_CODES_SQL}', _codes_params(errors)
        )
        return (
            f"select b.*, c.code as error_code, c.reason as error_reason from {source} b "
            f'left join "{alias}".main.error_codes c on c.error = b.error'
        )
    made_up = "".join(f", {ADDED_RUN_COLUMNS[name]} as {name}" for name in missing)
    return f"select *{made_up} from {source}"
