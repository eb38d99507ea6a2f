"""The vars a `dbt build` used, read back from its `replay_build_settings` table.

dbt owns the replay policies (age limits, identity types, ...); the loader reads what the
build used rather than keeping a second copy. A warehouse built before that table existed
has no age limits to read: callers say "rebuild to get age checks".
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

TABLE = "replay_build_settings"
REBUILD_FOR_AGE_CHECKS = (
    "the warehouse has no replay_build_settings table (built by an older version): "
    "rebuild (`dbt build`) to get age checks"
)


@dataclass(frozen=True)
class AgeLimits:
    """Ages in days: past `warn_days` many downstream tools drop data; past `max_days` the
    Events API does not take it (dbt vars warn_event_age_days and max_event_age_days)."""

    warn_days: int
    max_days: int


def read_age_limits(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> AgeLimits | None:
    """The build's age limits, or None when `catalog` (default: the current one) lacks the table."""
    database = "current_database()" if catalog is None else "?"
    params = [] if catalog is None else [catalog]
    [(found,)] = con.execute(
        f"select count(*) from duckdb_tables() where database_name = {database} "
        f"and schema_name = 'main' and table_name = '{TABLE}'",
        params,
    ).fetchall()
    if not found:
        return None
    relation = TABLE if catalog is None else f'"{catalog}".main.{TABLE}'
    row = con.execute(
        f"select warn_event_age_days, max_event_age_days from {relation} limit 1"
    ).fetchone()
    return None if row is None else AgeLimits(warn_days=int(row[0]), max_days=int(row[1]))
