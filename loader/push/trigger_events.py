"""Replay events that would trigger messages downstream (seed trigger_events), counted.

Reads the build's `replay_trigger_events` (replay events matching seed trigger_events,
per integration) and `replay_integrations` (the integrations of var integrations, with
whether they can trigger messages at all: seed integration_limits). A replay set without
`replay_trigger_events` (Parquet written by another engine, a build of an older version)
is not checked: callers say so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from loader.errors import LoaderError

ALLOW_TRIGGERS_HINT = (
    "skip them with a fix (skip_events, docs/fixes.md) and `dbt build` again, or push with "
    "--allow-triggers to send them anyway (the run records it)"
)
NOT_CHECKED = (
    "events that trigger messages are not checked: the replay set has no "
    "replay_trigger_events (a Parquet replay set, or built by an older version; rebuild)"
)


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
) -> tuple[list[TriggerCount], int] | None:
    """Per integration and event name, the replay events that would trigger messages (of
    `sending`, SQL for the rows a run sends, when given), and how many events that is in
    all (one event can trigger in several integrations). `integration`: only its rows (a
    direct destination; mParticle forwards to every integration). None when the build has
    no `replay_trigger_events`."""
    relation = _relation(con, "replay_trigger_events", catalog)
    if relation is None:
        return None
    conditions, params = [], {}
    if sending is not None:
        conditions.append(f"t.replay_key in (select replay_key from {sending})")
    if integration is not None:
        conditions.append("t.integration = $integration")
        params["integration"] = integration
    [(listed,)] = con.execute(f"select count(*) from {relation}").fetchall()
    if not listed:  # nothing triggers: no need to read what the run sends
        return [], 0
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
    return counts, events


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
