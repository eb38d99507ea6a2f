"""The plan's count of events older than each downstream integration accepts, at send time.

Reads the warehouse's `replay_integrations` (var integrations joined with seed
integration_limits) when the build has it; an integration whose limit is unknown gets
`events_over_limit` None, never a guess.
"""

from __future__ import annotations

import duckdb

from loader.push.replay_reader import ALIAS

DAY_MS = 86_400_000


def integration_limits(
    con: duckdb.DuckDBPyConnection, sending: str, now_ms: int
) -> list[dict[str, object]]:
    """Per integration: its limit in days and how many of `sending` (SQL for the rows this
    run sends) are older than it at `now_ms`. Empty when the build has no integrations."""
    [(present,)] = con.execute(
        "select count(*) from duckdb_tables() where database_name = ? and schema_name = 'main' "
        "and table_name = 'replay_integrations'",
        [ALIAS],
    ).fetchall()
    if not present:
        return []
    rows = con.execute(
        f"""select i.integration, i.max_event_age_days,
            case when i.max_event_age_days is not null then (
                select count(*) from {sending} s
                where s.timestamp_unixtime_ms < $now - i.max_event_age_days::bigint * {DAY_MS}
            ) end,
        from {ALIAS}.main.replay_integrations i
        order by i.position""",
        {"now": now_ms},
    ).fetchall()
    return [
        {"integration": name, "max_event_age_days": days, "events_over_limit": over}
        for name, days, over in rows
    ]
