"""The vars a `dbt build` used, read back from its `replay_build_settings` table.

dbt owns the replay policies (age limits, identity types, ...); the loader reads what the
build used rather than keeping a second copy. A warehouse built before that table existed
has no age limits to read: callers say "rebuild to get age checks".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from loader.errors import LoaderError

TABLE = "replay_build_settings"
REBUILD_FOR_AGE_CHECKS = (
    "the warehouse has no replay_build_settings table (built by an older version): "
    "rebuild (`dbt build`) to get age checks"
)
PARQUET_HAS_NO_AGE_CHECKS = (
    "a Parquet replay set carries no build settings (replay_build_settings stays with the "
    "build that wrote it), so the plan shows no age checks against the build's limits"
)


@dataclass(frozen=True)
class AgeLimits:
    """Ages in days: past `warn_days` many downstream tools drop data; past `max_days` the
    Events API does not take it (dbt vars warn_event_age_days and max_event_age_days)."""

    warn_days: int
    max_days: int


def _settings_relation(con: duckdb.DuckDBPyConnection, catalog: str | None) -> str | None:
    """The build's settings table (in `catalog`, default: the current one), or None."""
    database = "current_database()" if catalog is None else "?"
    params = [] if catalog is None else [catalog]
    [(found,)] = con.execute(
        f"select count(*) from duckdb_tables() where database_name = {database} "
        f"and schema_name = 'main' and table_name = '{TABLE}'",
        params,
    ).fetchall()
    if not found:
        return None
    return TABLE if catalog is None else f'"{catalog}".main.{TABLE}'


def read_sample_pct(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> float | None:
    """The percentage of users a sample build kept (var dev_sample_users_pct), or None for a
    full build (or one built before sample mode existed)."""
    relation = _settings_relation(con, catalog)
    if relation is None:
        return None
    [(has_column,)] = con.execute(
        f"select count(*) from (describe {relation}) where column_name = 'dev_sample_users_pct'"
    ).fetchall()
    if not has_column:
        return None
    row = con.execute(f"select dev_sample_users_pct from {relation} limit 1").fetchone()
    return None if row is None or row[0] is None else float(row[0])


def read_build_setting(con: duckdb.DuckDBPyConnection, catalog: str, column: str) -> object:
    """Column `column` of the build's settings (a destination's var, say), or None for a
    build made before it was recorded."""
    relation = _settings_relation(con, catalog)
    if relation is None:
        return None
    [(has_column,)] = con.execute(
        f"select count(*) from (describe {relation}) where column_name = ?", [column]
    ).fetchall()
    if not has_column:
        return None
    row = con.execute(f'select "{column}" from {relation} limit 1').fetchone()
    return None if row is None else row[0]


# columns of replay_build_settings that say when and with what resources it was built,
# not how: a rebuild changes them and no event
NOT_VARS = ("built_at", "memory_limit", "temp_directory")


def read_build_vars(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, Any] | None:
    """The vars (and suppression list) the build used, as JSON values (ids stay exact
    integers), for a run to record; None when `catalog` has no replay_build_settings."""
    relation = _settings_relation(con, catalog)
    if relation is None:
        return None
    row = con.execute(f"select to_json(t)::varchar from {relation} t limit 1").fetchone()
    if row is None:
        return None
    return {k: v for k, v in orjson.loads(row[0]).items() if k not in NOT_VARS}


def changed_vars(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'name: before -> now' for every setting that differs between two builds' vars."""
    absent = "(not recorded)"
    return [
        f"{name}: {_shown(before.get(name, absent))} -> {_shown(now.get(name, absent))}"
        for name in sorted({*before, *now})
        if before.get(name, absent) != now.get(name, absent)
    ]


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class SampleReplaySet(LoaderError):
    """The replay set was built in sample mode (var dev_sample_users_pct): not to be sent."""


def sample_note(pct: float) -> str:
    """What a sample replay set is, for the push's refusal and the dry run's plan."""
    return (
        f"the replay set is a sample: built with var dev_sample_users_pct = {pct:g} "
        f"({pct:g}% of users). `loader push` does not send a sample; rebuild without the "
        "var (`dbt build`) to send every user."
    )


def read_age_limits(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> AgeLimits | None:
    """The build's age limits, or None when `catalog` (default: the current one) lacks the table."""
    relation = _settings_relation(con, catalog)
    if relation is None:
        return None
    row = con.execute(
        f"select warn_event_age_days, max_event_age_days from {relation} limit 1"
    ).fetchone()
    return None if row is None else AgeLimits(warn_days=int(row[0]), max_days=int(row[1]))


@dataclass(frozen=True)
class SuppressionList:
    """The suppression list a build skipped users by (`loader suppress`)."""

    source_file: str
    checksum: str  # SHA-256 of the file
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.source_file, "sha256": self.checksum, "rows": self.rows}


NO_SUPPRESSION_LIST = (
    "the replay set was built without a suppression list: no user was skipped as erased or "
    "opted out. Load one (`loader suppress FILE`, README: privacy and side effects), then "
    "`dbt build`."
)


def read_suppression_list(
    con: duckdb.DuckDBPyConnection, catalog: str | None = None
) -> SuppressionList | None:
    """The list the build used, or None: built without one (or before lists existed)."""
    relation = _settings_relation(con, catalog)
    if relation is None:
        return None
    [(has_column,)] = con.execute(
        f"select count(*) from (describe {relation}) where column_name = 'suppression_list'"
    ).fetchall()
    if not has_column:
        return None
    row = con.execute(
        "select suppression_list, suppression_list_checksum, suppression_list_rows "
        f"from {relation} limit 1"
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return SuppressionList(source_file=str(row[0]), checksum=str(row[1]), rows=int(row[2]))


def suppression_line(suppression: SuppressionList | None) -> str:
    """What the push plan and the report say about the build's suppression list."""
    if suppression is None:
        return NO_SUPPRESSION_LIST
    return (
        f"suppression list {suppression.source_file} ({suppression.rows} rows, "
        f"sha256 {suppression.checksum[:12]}): its users' events are skipped (suppressed_user)"
    )


class NoSuppressionList(LoaderError):
    """BACKFILL_REQUIRE_SUPPRESSION_LIST is set and the build had no suppression list."""
