"""Which replay events a run sends, given the ledger: the plan and its summary.

Every replay event falls in one class:
- new: never planned, or only in batches that were superseded before being sent;
- resume: in an open batch of an earlier run (planned, in flight or failed) whose content
  is unchanged; it is sent again in that batch, with the same `source_request_id`;
- acknowledged: acknowledged earlier with the same content; not sent again;
- changed: acknowledged earlier with other content (a fix changed it); sent again only
  with `resend_changed` (downstream then sees it twice);
- in_doubt: sent earlier in a batch that was never acknowledged and whose content has
  changed since, so that batch cannot be resent as it was; like changed;
- rejected_before: refused earlier (locally, or by a 400) with the same content.

A sample run (`SampleRequest`: a test send before the full one) sends only the events of a
few users: those named, then users picked greedily to cover the most (event type, event
name) pairs still to send (`sample_users`); every other event is held back for a later run.

The content hash of an event is the MD5 of its batch_context and event_json texts.
Runs on the ledger's connection (`planning_session`), with the warehouse attached (see
`replay_reader`) and a scratch in-memory database for the intermediate tables. It reads
the ledger only through the views the ledger defines (`key_history`, `open_batch_events`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from loader.build_settings import (
    AgeLimits,
    SuppressionList,
    changed_vars,
    read_age_limits,
    read_build_vars,
    read_sample_pct,
    read_suppression_list,
)
from loader.events_api.limits import MAX_EVENT_AGE_DAYS
from loader.push.build_freshness import stale_reason
from loader.push.ledger import EVENTS_API, Ledger
from loader.push.packing import Group
from loader.push.replay_reader import ALIAS, RECORD_BATCH_ROWS, attached_replay_set, iter_groups

# SampleRequest: the planner takes it, so its callers import it from here too
from loader.push.sample_users import SampleRequest as SampleRequest
from loader.push.sample_users import pick_sample, sample_coverage, sample_identities


def content_hash_sql(alias: str = "") -> str:
    """SQL for an event's content hash: MD5 of its batch_context and event_json texts."""
    prefix = f"{alias}." if alias else ""
    return f"md5({prefix}batch_context::varchar || chr(10) || {prefix}event_json::varchar)"


# An event's name: mParticle's data.event_name (screen_name for screen views), a direct
# destination's event_type, else the event type (session starts, commerce events)
EVENT_NAME_SQL = (
    "coalesce(event_json->>'$.data.event_name', event_json->>'$.data.screen_name', "
    "event_json->>'$.event_type', event_type)"
)
SCRATCH = "plan_scratch"
DAY_MS = 86_400_000
SKIPPED_ALWAYS = ("resume", "acknowledged", "rejected_before")
RESENDABLE = ("changed", "in_doubt")


@dataclass
class PlanSummary:
    """What a run would send, before packing (counts of events unless named otherwise)."""

    replay_events: int = 0
    new: int = 0
    resumed: int = 0
    resumed_batches: int = 0
    acknowledged_before: int = 0
    changed: int = 0
    in_doubt: int = 0
    rejected_before: int = 0
    resend_changed: bool = False
    to_send: int = 0
    users: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    # by event name (`EVENT_NAME_SQL`): what a reviewed plan's comparison names
    events_by_name: dict[str, int] = field(default_factory=dict)
    older_than_warn_days: int = 0
    older_than_max_days: int = 0
    older_than_api_days: int = 0  # older than the Events API takes (MAX_EVENT_AGE_DAYS)
    oldest_event_days: float | None = None
    data_plan_notes: dict[str, int] = field(default_factory=dict)
    events_by_identity_risk: dict[str, int] = field(default_factory=dict)
    with_user_attributes: int = 0  # events whose batch sets user attributes
    # of them, events of users the build sends blocked user attributes for
    # (`replay_user_attributes.will_send`); None: the replay set comes without that table
    with_blocked_user_attributes: int | None = None
    # blocked user and device identities the events to send carry (var
    # replay_blocked_identities, `blocked_identities__outcomes`), and those events; None: the
    # replay set comes without that table
    blocked_identities_sent: int | None = None
    with_blocked_identities: int | None = None
    changed_examples: list[str] = field(default_factory=list)
    # the run that acknowledged the latest of the changed events, and how this build's vars
    # differ from that run's build (empty: the same vars); None: that run, or this replay
    # set, has no build settings to compare (`changed_vars_unknown` says which)
    changed_since_run: int | None = None
    changed_vars: list[str] | None = None
    changed_vars_unknown: str | None = None
    superseded_batches: int = 0
    # the build's age limits (replay_build_settings); None: built without them, no age checks
    warn_age_days: int | None = None
    max_age_days: int | None = None
    replay_set_parquet: bool = False  # read from Parquet, which carries no build settings
    # why the replay set predates a failed build or a changed project (build_freshness)
    stale_build: str | None = None
    # a sample run: its users in the order picked, the (event type, event name) pairs they
    # cover of those still to send, and the events held back for the full send
    sample_users: list[str] | None = None
    # the same users as a person finds them in Live Stream: MPID, else customer id or
    # another identity, with the user_key
    sample_user_identities: list[str] | None = None
    sample_pairs_covered: int = 0
    sample_pairs_total: int = 0
    held_back: int = 0
    # per integration of var integrations, at the run's rate from now: the events that pass
    # its age limit before they can be sent, and the build's verdicts of these events
    integration_eta: list[dict[str, Any]] = field(default_factory=list)
    rate: float | None = None  # batches/s the ETA assumes (--rate)
    # per integration of var integrations: its age limit and the events older than it
    integration_limits: list[dict[str, Any]] = field(default_factory=list)
    # a sample build's percentage of users (var dev_sample_users_pct): not sent
    sample_users_pct: float | None = None
    # the build's suppression list (path, sha256, rows); None: built without one
    suppression_list: dict[str, Any] | None = None
    # events to send that would trigger messages downstream (seed trigger_events): per
    # integration, event type and name, and in all; None: they could not be checked
    trigger_events: list[dict[str, Any]] | None = None
    trigger_events_total: int = 0
    # the replay set has no replay_trigger_events: the trigger list its rows were checked
    # against (a seed file), or why they could not be (then trigger_events is None)
    triggers_checked_against: str | None = None
    triggers_unchecked: str | None = None
    # integrations of var integrations that can trigger messages, none of their events listed
    triggers_unlisted: list[dict[str, Any]] = field(default_factory=list)
    allow_triggers: bool = False  # the run's --allow-triggers

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Planner:
    """Builds the plan on `ledger.con` with the replay set at `replay` (a relation name)."""

    def __init__(
        self,
        ledger: Ledger,
        replay: str,
        *,
        resend_changed: bool,
        now_ms: int,
        age_limits: AgeLimits | None,
        sample: SampleRequest | None = None,
        destination: str = EVENTS_API,
    ):
        self.con = ledger.con
        self.destination = destination
        self.sample = sample
        self.db = ledger.catalog
        self.replay = replay
        self.resend_changed = resend_changed
        self.now_ms = now_ms
        self.age_limits = age_limits
        self.stale_build: str | None = None
        self.sample_users_pct: float | None = None
        self.suppression_list: SuppressionList | None = None
        # the build's vars (replay_build_settings), recorded with each run it sends
        self.build_vars: dict[str, Any] | None = None
        self.s = SCRATCH
        # the integrations mParticle forwards to get the deadline-first order and the ETA;
        # a direct destination reaches none of them
        self.integrations = False
        self.sending = ""  # SQL for the rows this run sends (after `classify`)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Planner]:
        self.con.execute(f"attach ':memory:' as {self.s}")
        try:
            yield self
        finally:
            with contextlib.suppress(duckdb.Error):
                self.con.execute(f"detach {self.s}")

    def classify(self) -> PlanSummary:
        """Sort every replay event into its class (see the module docstring)."""
        s, replay, con = self.s, self.replay, self.con
        history, open_events = self._of_destination("key_history", "open_batch_events")
        con.execute(
            f"create table {s}.known as select replay_key, {content_hash_sql()} as content_hash "
            f"from {replay} where replay_key in (select replay_key from {history})"
        )
        con.execute(
            f"""create table {s}.open_batches as
            select
                e.source_request_id,
                any_value(e.user_key) as user_key,
                any_value(e.was_sent) as was_sent,
                bool_and(coalesce(k.content_hash = e.content_hash, false)) as intact,
                count(*) as events,
            from {open_events} e
            left join {s}.known k using (replay_key)
            group by e.source_request_id"""
        )
        con.execute(
            f"""create table {s}.key_state as
            with open_keys as (
                select
                    e.replay_key,
                    max(case when o.intact then e.source_request_id end) as resume_id,
                    bool_or(not o.intact and o.was_sent) as changed_after_send,
                from {open_events} e
                join {s}.open_batches o using (source_request_id)
                group by e.replay_key
            )
            select
                h.replay_key,
                o.resume_id,
                h.acknowledged_hash,
                h.rejected_hash,
                h.sent_then_superseded or coalesce(o.changed_after_send, false) as in_doubt,
            from {history} h
            left join open_keys o using (replay_key)"""
        )
        con.execute(
            f"""create table {s}.disposition as
            select
                k.replay_key,
                case
                    when st.resume_id is not null then 'resume'
                    when st.acknowledged_hash = k.content_hash then 'acknowledged'
                    when st.rejected_hash = k.content_hash then 'rejected_before'
                    when st.acknowledged_hash is not null then 'changed'
                    when st.in_doubt then 'in_doubt'
                    else 'new'
                end as disposition,
            from {s}.known k
            join {s}.key_state st using (replay_key)"""
        )
        skipped = list(SKIPPED_ALWAYS) + ([] if self.resend_changed else list(RESENDABLE))
        con.execute(
            f"create table {s}.skip_keys as select replay_key from {s}.disposition "
            f"where disposition in ({', '.join(repr(d) for d in skipped)})"
        )
        if self.sample is not None:
            pick_sample(self.con, self.replay, s, self.sample)
        return self._summary()

    def _of_destination(self, *views: str) -> list[str]:
        """The ledger's `views`, restricted to this run's destination (as subqueries)."""
        name = "'" + self.destination.replace("'", "''") + "'"
        return [f"(select * from {self.db}.{v} where destination = {name})" for v in views]

    def _to_send(self) -> str:
        """Replay rows this run sends in new batches (resumed batches come separately)."""
        return (
            f"(select * from {self.replay} anti join {self.s}.skip_keys using (replay_key)"
            f"{self._in_sample('')})"
        )

    def _in_sample(self, alias: str, keyword: str = "where") -> str:
        """A condition keeping the rows of a sample run's users (none without a sample)."""
        if self.sample is None:
            return ""
        column = f"{alias}.user_key" if alias else "user_key"
        return f" {keyword} {column} in (select user_key from {self.s}.sample_users)"

    def _summary(self) -> PlanSummary:
        s, con = self.s, self.con
        listed = self.suppression_list
        summary = PlanSummary(
            resend_changed=self.resend_changed,
            stale_build=self.stale_build,
            sample_users_pct=self.sample_users_pct,
            suppression_list=None if listed is None else listed.as_dict(),
        )
        self._count_dispositions(summary)
        sending = (
            f"(select * from {self._to_send()} union all by name select r.* from {self.replay} r "
            f"semi join {s}.disposition d on d.replay_key = r.replay_key "
            f"and d.disposition = 'resume'{self._in_sample('r')})"
        )
        self._count_sending(summary, sending)
        self._count_blocked_identities(summary, sending)
        summary.events_by_name = dict(
            con.execute(
                f"select {EVENT_NAME_SQL} as name, count(*) from {sending} group by 1 order by 1"
            ).fetchall()
        )
        summary.new = summary.to_send - summary.resumed
        from loader.push.integration_limits import integration_limits

        summary.integration_limits = integration_limits(con, sending, self.now_ms)
        self.sending = sending
        self._count_triggers(summary, sending)
        if self.sample is not None:
            self._sample_summary(summary)
        return summary

    def _count_triggers(self, summary: PlanSummary, sending: str) -> None:
        """The events to send that would trigger messages, and the integrations that can
        trigger with none of their events listed (for a direct destination: its own)."""
        from loader.push.trigger_events import (
            integrations_without_triggers,
            trigger_counts,
            unchecked_line,
        )
        from loader.push.trigger_list import TriggersUnchecked

        # mParticle forwards to every connected integration; a direct destination is one
        only = None if self.destination == EVENTS_API else self.destination
        try:
            checked = trigger_counts(self.con, ALIAS, sending=sending, integration=only)
        except TriggersUnchecked as exc:
            summary.triggers_unchecked = unchecked_line(str(exc))
        else:
            summary.trigger_events = [count.as_dict() for count in checked.counts]
            summary.trigger_events_total = checked.events
            summary.triggers_checked_against = checked.checked_against
        summary.triggers_unlisted = [
            {"integration": name, "messages_source_url": url}
            for name, url in integrations_without_triggers(self.con, ALIAS)
            if only is None or name == only
        ]

    def _count_dispositions(self, summary: PlanSummary) -> None:
        """The replay set's events by what the ledger says of them."""
        s, con = self.s, self.con
        [(summary.replay_events,)] = con.execute(f"select count(*) from {self.replay}").fetchall()
        counts = dict(
            con.execute(f"select disposition, count(*) from {s}.disposition group by 1").fetchall()
        )
        summary.resumed = counts.get("resume", 0)
        if self.sample is not None:
            [(summary.resumed,)] = con.execute(
                f"select count(*) from {s}.disposition d join {self.replay} r using (replay_key) "
                f"where d.disposition = 'resume'{self._in_sample('r', 'and')}"
            ).fetchall()
        summary.acknowledged_before = counts.get("acknowledged", 0)
        summary.changed = counts.get("changed", 0)
        summary.in_doubt = counts.get("in_doubt", 0)
        summary.rejected_before = counts.get("rejected_before", 0)
        [(summary.resumed_batches, summary.superseded_batches)] = con.execute(
            f"select count(*) filter (where intact{self._in_sample('', 'and')}), "
            f"count(*) filter (where not intact) from {s}.open_batches"
        ).fetchall()
        summary.changed_examples = [
            row[0]
            for row in con.execute(
                f"select replay_key from {s}.disposition where disposition in ('changed', "
                "'in_doubt') order by replay_key limit 5"
            ).fetchall()
        ]
        if summary.changed:
            self._compare_builds(summary)

    def _compare_builds(self, summary: PlanSummary) -> None:
        """Which vars differ from the build of the run that acknowledged the changed events
        (the latest such run), from the build settings each run records."""
        row = self.con.execute(
            f"""select b.run_id, json_extract(r.options, '$.build_settings')::varchar
            from {self.s}.disposition d
            join {self.db}.batch_events e using (replay_key)
            join {self.db}.batches b using (source_request_id)
            join {self.db}.runs r on r.run_id = b.run_id
            where d.disposition = 'changed' and b.status = 'acknowledged'
                and b.destination = ?
            order by b.settled_at desc, b.run_id desc
            limit 1""",
            [self.destination],
        ).fetchone()
        if row is None:
            return
        summary.changed_since_run = run_id = int(row[0])
        before = orjson.loads(row[1]) if row[1] else None
        now = self.build_vars
        if not isinstance(before, dict):
            summary.changed_vars_unknown = (
                f"run {run_id} recorded no build settings (an earlier loader, or a Parquet "
                "replay set)"
            )
        elif now is None:
            summary.changed_vars_unknown = (
                "this replay set carries no build settings (Parquet, or a build without "
                "replay_build_settings)"
            )
        else:
            summary.changed_vars = changed_vars(before, now)

    def _count_sending(self, summary: PlanSummary, sending: str) -> None:
        """The events to send (`sending`): in all, by type, by data plan note, by identity
        risk, by age."""
        limits = self.age_limits
        if limits is not None:
            summary.warn_age_days, summary.max_age_days = limits.warn_days, limits.max_days
        # with no limits to read, no event is counted as too old (the CLI says why)
        older_than_warn = "false" if limits is None else self._older_than(limits.warn_days)
        older_than_max = "false" if limits is None else self._older_than(limits.max_days)
        older_than_api = "false" if limits is None else self._older_than(MAX_EVENT_AGE_DAYS)
        rows = self.con.execute(
            f"""select
                grouping(event_type) = 0 as by_type,
                grouping(note) = 0 as by_note,
                grouping(risk) = 0 as by_risk,
                coalesce(event_type, note, risk),
                count(*),
                count(distinct user_key),
                count(*) filter (where {older_than_warn}),
                count(*) filter (where {older_than_max}),
                count(*) filter (where {older_than_api}),
                min(timestamp_unixtime_ms),
                count(*) filter (where with_user_attributes),
                count(*) filter (where with_user_attributes and {self._sends_blocked_attributes()}),
            from (
                select event_type, coalesce(data_plan_note, '(none)') as note,
                    coalesce(identity_risk, 'unknown') as risk, user_key, timestamp_unixtime_ms,
                    json_exists(batch_context, '$.user_attributes') as with_user_attributes
                from {sending}
            )
            group by grouping sets ((), (event_type), (note), (risk))
            order by 5 desc, 4"""
        ).fetchall()
        for by_type, by_note, by_risk, name, count, users, warn, too_old, api, oldest, *ua in rows:
            if by_type:
                summary.events_by_type[name] = count
            elif by_note:
                summary.data_plan_notes[name] = count
            elif by_risk:
                summary.events_by_identity_risk[name] = count
            else:
                summary.to_send, summary.users = count, users
                summary.older_than_warn_days, summary.older_than_max_days = warn, too_old
                summary.older_than_api_days = api
                summary.with_user_attributes = ua[0]
                if self._has_user_attribute_decisions():
                    summary.with_blocked_user_attributes = ua[1]
                if oldest is not None:
                    summary.oldest_event_days = round((self.now_ms - oldest) / DAY_MS, 1)

    def _sample_summary(self, summary: PlanSummary) -> None:
        coverage = sample_coverage(self.con, self.s)
        summary.sample_users = coverage.users
        summary.sample_user_identities = sample_identities(self.con, self.replay, self.s)
        summary.sample_pairs_covered = coverage.pairs_covered
        summary.sample_pairs_total = coverage.pairs_total
        summary.held_back = coverage.pending_events - summary.to_send

    def _count_blocked_identities(self, summary: PlanSummary, sending: str) -> None:
        """The blocked identities the build sends (`blocked_identities__outcomes`) with the
        batches of the events to send, and those events. Only for the Events API: a direct
        destination's replay set is the events its own model maps, not source batches."""
        if self.destination != EVENTS_API or not self._has_main_table(
            "blocked_identities__outcomes"
        ):
            return
        replayed = (
            f"(select batch_id from {ALIAS}.main.blocked_identities__outcomes "
            "where outcome = 'replay')"
        )
        [(summary.blocked_identities_sent, summary.with_blocked_identities)] = self.con.execute(
            f"""select
                (select count(*) from {replayed} o
                 where o.batch_id in (select batch_id from {sending})),
                (select count(*) from {sending} e
                 where e.batch_id in (select batch_id from {replayed}))"""
        ).fetchall()

    def _has_main_table(self, name: str) -> bool:
        """Whether the warehouse holds table or view `name` (a Parquet replay set does not)."""
        [(found,)] = self.con.execute(
            "select count(*) from duckdb_tables() where database_name = ? "
            "and schema_name = 'main' and table_name = ?",
            [ALIAS, name],
        ).fetchall()
        return bool(found)

    def _has_user_attribute_decisions(self) -> bool:
        """Whether the warehouse says whose blocked user attributes it sends (a Parquet
        replay set does not)."""
        return self._has_main_table("replay_user_attributes")

    def _sends_blocked_attributes(self) -> str:
        """SQL: the event's user gets blocked user attributes (as the build decided)."""
        if not self._has_user_attribute_decisions():
            return "false"
        return (
            f"user_key in (select user_key from {ALIAS}.main.replay_user_attributes "
            "where will_send)"
        )

    def _older_than(self, days: int) -> str:
        return f"timestamp_unixtime_ms < {self.now_ms - days * DAY_MS}"

    def add_send_positions(self, rows: list[tuple[str, str, int]]) -> None:
        """Record (user_key, context_key, position of its last batch in send order)."""
        import pyarrow as pa

        s = self.s
        self.con.execute(
            f"create table if not exists {s}.send_positions "
            "(user_key varchar, context_key varchar, position bigint)"
        )
        if not rows:
            return
        users, contexts, positions = zip(*rows, strict=True)
        columns = {"user_key": users, "context_key": contexts}
        chunk = pa.table({**columns, "position": pa.array(positions, pa.int64())})
        self.con.register("send_positions_chunk", chunk)
        try:
            self.con.execute(f"insert into {s}.send_positions select * from send_positions_chunk")
        finally:
            self.con.unregister("send_positions_chunk")

    def integration_eta(self, rate: float) -> list[dict[str, object]]:
        """Per integration of var integrations (after packing, `add_send_positions`): how
        many events this run sends pass its age limit before their batch can be sent at
        `rate` batches/s from now (a batch at position p goes out at now + p / rate), of
        them how many are past it already, and, when the build has
        `replay_integration_outcomes`, its verdicts of these events."""
        if not self.integrations:
            return []
        s, con = self.s, self.con
        self.add_send_positions([])
        sent = (
            f"(select r.replay_key, r.timestamp_unixtime_ms, "
            f"{self.now_ms} + ceil(p.position * 1000.0 / {rate})::bigint as send_ms "
            f"from {self.sending} r join (select user_key, context_key, max(position) as position "
            f"from {s}.send_positions group by all) p using (user_key, context_key))"
        )
        outcomes = self._has_table("replay_integration_outcomes")
        result = []
        for name, days in con.execute(
            f"select integration, max_event_age_days from {ALIAS}.main.replay_integrations "
            "order by position"
        ).fetchall():
            item: dict[str, object] = {"integration": name, "max_event_age_days": days}
            if days is not None:
                limit = f"t.timestamp_unixtime_ms + {int(days)}::bigint * {DAY_MS}"
                [(late, already)] = con.execute(
                    f"select count(*) filter (where {limit} < t.send_ms), "
                    f"count(*) filter (where {limit} < {self.now_ms}) from {sent} t"
                ).fetchall()
                item |= {"events_too_old_at_send": late, "events_too_old_now": already}
            if outcomes:
                item["verdicts"] = dict(
                    con.execute(
                        f"select o.verdict, count(*) from {sent} t "
                        f"join {ALIAS}.main.replay_integration_outcomes o "
                        "on o.replay_key = t.replay_key and o.integration = ? "
                        "group by 1 order by 1",
                        [name],
                    ).fetchall()
                )
            result.append(item)
        return result

    def _has_table(self, name: str) -> bool:
        [(found,)] = self.con.execute(
            "select count(*) from duckdb_tables() where database_name = ? "
            "and schema_name = 'main' and table_name = ?",
            [ALIAS, name],
        ).fetchall()
        return bool(found)

    def _user_deadlines(self) -> str:
        """SQL: per user to send, the nearest age deadline still ahead (`now_ms`) among the
        integrations of var integrations with a known limit: the send order's key."""
        if not self.integrations:
            return "select null::varchar as user_key, null::bigint as deadline_ms where false"
        deadline = f"r.timestamp_unixtime_ms + i.max_event_age_days::bigint * {DAY_MS}"
        return (
            f"select r.user_key, min({deadline}) as deadline_ms "
            f"from {self._to_send()} r cross join {ALIAS}.main.replay_integrations i "
            f"where i.max_event_age_days is not null and {deadline} >= {self.now_ms} "
            "group by r.user_key"
        )

    def ledger_digest(self) -> str:
        """SHA-256 of the ledger's state as this plan read it (after `classify`): each
        known replay event's class, and this replay set's open batches."""
        s, db = self.s, self.db
        [(classes,)] = self.con.execute(
            f"select md5(coalesce(string_agg(replay_key || ' ' || disposition, chr(10) "
            f"order by replay_key), '')) from {s}.disposition"
        ).fetchall()
        [(batches,)] = self.con.execute(
            f"""select md5(coalesce(string_agg(
                source_request_id || ' ' || intact || ' ' || was_sent || ' ' || events,
                chr(10) order by source_request_id), ''))
            from {s}.open_batches
            where source_request_id in (
                select e.source_request_id from {db}.open_batch_events e
                semi join {s}.known k using (replay_key)
            )"""
        ).fetchall()
        return hashlib.sha256(f"{classes}\n{batches}".encode()).hexdigest()

    def superseded_batches(self) -> list[str]:
        """Open batches whose content changed (the run marks them superseded)."""
        return [
            row[0]
            for row in self.con.execute(
                f"select source_request_id from {self.s}.open_batches where not intact"
            ).fetchall()
        ]

    def resumed_batches(self) -> dict[str, int]:
        """The open batches this run resends as they were: their ledger numbers by id."""
        return dict(
            self.con.execute(
                f"select o.source_request_id, b.batch_no from {self.s}.open_batches o "
                f"join {self.db}.batches b using (source_request_id) where o.intact"
                f"{self._in_sample('o', 'and')}"
            ).fetchall()
        )

    def resumed_groups(self) -> Iterator[tuple[str, Group]]:
        """(source_request_id, events) of each open batch resent as it was planned."""
        cursor = self.con.cursor()
        cursor.execute(
            f"""select e.source_request_id, e.user_key, e.context_key, r.batch_context::varchar,
                list(e.replay_key order by e.position),
                list(r.event_json::varchar order by e.position),
                list(e.content_hash order by e.position),
            from {self.s}.open_batches o
            join {self.db}.open_batch_events e using (source_request_id)
            join {self.replay} r using (replay_key)
            where o.intact{self._in_sample("o", "and")}
            group by e.source_request_id, e.user_key, e.context_key, r.batch_context::varchar
            order by e.source_request_id"""
        )
        try:
            while rows := cursor.fetchmany(1_000):
                for sid, user, context_key, context, keys, events, hashes in rows:
                    yield sid, Group.from_texts(user, context_key, context, keys, events, hashes)
        finally:
            cursor.close()

    def new_groups(self, *, with_hashes: bool) -> Iterator[Group]:
        """Events to pack into new batches, one `Group` per user and context, in send order."""
        s = self.s
        self.con.execute(
            f"""create or replace table {s}.pack_groups as
            with deadlines as ({self._user_deadlines()})
            select
                row_number() over (
                    order by d.deadline_ms nulls last, g.user_key, g.context_key
                ) as group_no,
                g.*,
            from (
                select user_key, context_key, min(timestamp_unixtime_ms) as first_ms,
                from {self._to_send()}
                group by all
            ) g
            left join deadlines d using (user_key)"""
        )
        content_hash = content_hash_sql("r") if with_hashes else "null::varchar"
        # the group columns are only needed on a group's first row(s): null elsewhere
        head = "r.timestamp_unixtime_ms = g.first_ms"
        query = f"""select
                g.group_no,
                case when {head} then g.user_key end as user_key,
                case when {head} then g.context_key end as context_key,
                case when {head} then r.batch_context::varchar end as batch_context,
                r.replay_key || chr(10) as key_line,
                r.event_json::varchar || ',' as event_text,
                {content_hash} as content_hash,
            from {self._to_send()} r
            join {s}.pack_groups g using (user_key, context_key)
            order by g.group_no, r.timestamp_unixtime_ms, r.replay_key"""
        # its own connection: the ledger's stays free to record batches meanwhile
        return iter_groups(self.con.cursor().sql(query).to_arrow_reader(RECORD_BATCH_ROWS))


def has_integrations(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the attached warehouse has `replay_integrations` (var integrations)."""
    [(found,)] = con.execute(
        "select count(*) from duckdb_tables() where database_name = ? and schema_name = 'main' "
        "and table_name = 'replay_integrations'",
        [ALIAS],
    ).fetchall()
    return bool(found)


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


@contextlib.contextmanager
def planning_session(
    ledger: Ledger,
    warehouse_path: Path | str,
    *,
    resend_changed: bool,
    at_ms: int | None = None,
    sample: SampleRequest | None = None,
    replay_table: str = "replay_events",
    destination: str = EVENTS_API,
) -> Iterator[Planner]:
    """A planner on the ledger's connection, with the warehouse's replay set attached.

    Planning sorts the whole replay set in this session: DuckDB's memory is capped (it
    spills to disk beyond, see loader.warehouse.open_duckdb) so a push stays flat however
    many events there are. The age limits are the build's (`replay_build_settings`). A
    direct destination reads its own `replay_table`; the ledger's record of `destination`
    says what was sent. Events that trigger messages count for that destination only
    (the Events API: for every integration).
    Raises what `attached_replay_set` does.
    """
    with attached_replay_set(ledger.con, warehouse_path, replay_table) as replay:
        planner = Planner(
            ledger,
            replay,
            resend_changed=resend_changed,
            now_ms=at_ms if at_ms is not None else now_ms(),
            age_limits=read_age_limits(ledger.con, ALIAS),
            sample=sample,
            destination=destination,
        )
        planner.integrations = destination == EVENTS_API and has_integrations(ledger.con)
        planner.stale_build = stale_reason(ledger.con, ALIAS, table=replay_table)
        planner.sample_users_pct = read_sample_pct(ledger.con, ALIAS)
        planner.suppression_list = read_suppression_list(ledger.con, ALIAS)
        planner.build_vars = read_build_vars(ledger.con, ALIAS)
        with planner.scratch():
            yield planner
