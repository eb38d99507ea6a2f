"""Replay events that would trigger messages downstream (seed trigger_events), counted.

Reads the build's `replay_trigger_events` (replay events matching seed trigger_events,
per integration) and `replay_integrations` (the integrations of var integrations, with
whether they can trigger messages at all: seed integration_limits). A replay set without
`replay_trigger_events` (Parquet written by another engine, a build of an older version)
is checked on its own rows (event type, and the event name in their event JSON) against
the trigger list a build would use (`loader.push.trigger_list`); when there is none, the
events are unchecked (`TriggersUnchecked`) and `loader push` refuses them unless allowed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import pyarrow as pa

from loader.errors import LoaderError
from loader.push.trigger_list import (
    COLUMNS,
    SEED,
    TriggerList,
    TriggersUnchecked,
    project_trigger_list,
)

ALLOW_TRIGGERS_HINT = (
    "skip them with a fix (skip_events, docs/fixes.md) and `dbt build` again, or push with "
    "--allow-triggers to send them anyway (the run records it)"
)
UNCHECKED_HINT = (
    "`loader push` refuses to send events it cannot check: give it the list as said, or "
    "push with --allow-triggers to send them anyway (the run records it)"
)
# the event name a trigger row matches, as model replay_trigger_events reads it
EVENT_NAME = "coalesce(event_json->>'$.data.event_name', event_json->>'$.data.screen_name')"
LIST_VIEW = "trigger_list_rows"


class TriggerEventsRefused(LoaderError):
    """The run would send events that trigger messages, without --allow-triggers."""


@dataclass(frozen=True)
class TriggerCount:
    """Replay events of one integration, event type and event name that trigger messages."""

    integration: str
    event_type: str
    event_name: str | None
    events: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TriggerCheck:
    """The replay events that would trigger messages: per integration, event type and
    name, and how many events in all (one event can trigger in several integrations).
    `checked_against`: the list the replay rows were matched with when the replay set has
    no `replay_trigger_events` (a seed file, or the warehouse's seed table), else None."""

    counts: list[TriggerCount]
    events: int
    checked_against: str | None = None


def unchecked_line(why: str) -> str:
    """What the plan, the refusal and the report say when the events cannot be checked."""
    return (
        f"events that trigger messages cannot be checked: the replay set has no "
        f"replay_trigger_events (a Parquet replay set, or built by an older version), and {why}"
    )


def _relation(con: duckdb.DuckDBPyConnection, table: str, catalog: str | None) -> str | None:
    """`table` in `catalog`'s main schema (default: the current database), or None."""
    database = "current_database()" if catalog is None else "?"
    [(found,)] = con.execute(
        f"select count(*) from duckdb_tables() where database_name = {database} "
        "and schema_name = 'main' and table_name = ?",
        ([] if catalog is None else [catalog]) + [table],
    ).fetchall()
    if not found:
        return None
    return table if catalog is None else f'"{catalog}".main.{table}'


def trigger_counts(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None = None,
    *,
    sending: str | None = None,
    integration: str | None = None,
    replay: str | None = None,
) -> TriggerCheck:
    """The replay events that would trigger messages (of `sending`, SQL for the rows a
    run sends, when given). `integration`: only its rows (a direct destination; mParticle
    forwards to every integration). Without `replay_trigger_events`, the rows of `sending`
    (else of `replay`, the replay set's relation) are matched against the trigger list.

    Raises `TriggersUnchecked` when there is no trigger list to match them with, and
    `BadTriggerList` when its file has a bad row."""
    relation = _relation(con, "replay_trigger_events", catalog)
    if relation is not None:
        [(listed,)] = con.execute(f"select count(*) from {relation}").fetchall()
        if not listed:  # nothing triggers: no need to read what the run sends
            return TriggerCheck([], 0)
        return _counted(con, relation, sending, integration)
    rows = sending or replay
    if rows is None:
        raise TriggersUnchecked("no replay rows were given to check")
    seed = _relation(con, SEED, catalog)
    if seed is not None:
        matched = _matched(rows, seed)
        return _counted(con, matched, None, integration, f"the warehouse's seed table {SEED}")
    listed = project_trigger_list()
    if not listed.rows:
        return TriggerCheck([], 0, str(listed.source))
    con.register(LIST_VIEW, _arrow(listed))
    try:
        return _counted(con, _matched(rows, LIST_VIEW), None, integration, str(listed.source))
    finally:
        con.unregister(LIST_VIEW)


def _matched(rows: str, triggers: str) -> str:
    """SQL for the rows of `rows` matching a trigger list, as replay_trigger_events has them."""
    return f"""(select distinct r.replay_key, t.integration, r.event_type, r.event_name
        from (select replay_key, event_type, {EVENT_NAME} as event_name from {rows}) r
        inner join {triggers} t on r.event_type = t.event_type
            and (t.event_name is null or r.event_name = t.event_name))"""


def _arrow(listed: TriggerList) -> pa.Table:
    return pa.table(
        {
            name: pa.array([row[n] for row in listed.rows], pa.string())
            for n, name in enumerate(COLUMNS)
        }
    )


def _counted(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    sending: str | None,
    integration: str | None,
    checked_against: str | None = None,
) -> TriggerCheck:
    """Per integration, event type and name, the matches in `relation` (of `sending`)."""
    conditions, params = [], {}
    if sending is not None:
        conditions.append(f"t.replay_key in (select replay_key from {sending})")
    if integration is not None:
        conditions.append("t.integration = $integration")
        params["integration"] = integration
    where = f"where {' and '.join(conditions)}" if conditions else ""
    rows = con.execute(
        f"""select grouping(integration) = 0, integration, event_type, event_name, count(*),
            count(distinct replay_key)
        from (select t.* from {relation} t {where})
        group by grouping sets ((integration, event_type, event_name), ())
        order by 1, 5 desc, 2, 3, 4""",
        params,
    ).fetchall()
    counts = [TriggerCount(*row[1:5]) for row in rows if row[0]]
    events = next(row[5] for row in rows if not row[0])
    return TriggerCheck(counts, events, checked_against)


def integrations_without_triggers(
    con: duckdb.DuckDBPyConnection, catalog: str | None = None
) -> list[tuple[str, str | None]]:
    """Integrations of var integrations that can trigger messages (seed integration_limits)
    and have no event in seed trigger_events: (name, the page saying they can)."""
    integrations = _relation(con, "replay_integrations", catalog)
    triggers = _relation(con, "trigger_events", catalog)
    if integrations is None or triggers is None:
        return []
    rows = con.execute(
        f"""select i.integration, i.messages_source_url from {integrations} i
        anti join {triggers} t on t.integration = i.integration
        where i.can_trigger_messages
        order by i.position"""
    ).fetchall()
    return [(name, url) for name, url in rows]


def unlisted_line(name: str, url: str | None) -> str:
    """What the plan and the report say of an integration that can trigger, none listed."""
    page = f" ({url})" if url else ""
    return (
        f"{name} can trigger messages from events{page}, and seeds/trigger_events.csv lists "
        f"none of its events: list those its campaigns start from, or they are sent unchecked"
    )


def describe(counts: list[dict[str, Any]], limit: int = 10) -> str:
    """`braze custom_event 'Order Completed' 10, ...` from `TriggerCount.as_dict()`s."""
    parts = [
        f"{c['integration']} {c['event_type']} "
        f"{repr(c['event_name']) if c['event_name'] is not None else '(no name)'} {c['events']}"
        for c in counts[:limit]
    ]
    more = f" and {len(counts) - limit} more" if len(counts) > limit else ""
    return ", ".join(parts) + more
