"""Is the replay set the one the user last tried to build?

Every dbt invocation that runs hooks (build, run, test, seed) records itself in the
warehouse's `meta.build_attempts` (macros/build_attempts.sql): when it started, how it
ended, whether it rebuilt `replay_events`, and the nodes that failed. The replay set is
stale when the invocation that last built `replay_events`, or any invocation after it,
did not succeed (it failed, or was killed): `replay_events` then predates the models and
vars the user last built. A successful partial build (`dbt build -s some_model`) that
leaves `replay_events` alone does not make it stale.

A direct destination's table (`models/destinations/<name>/`) is read from
`replay_events`: it is stale as well when an invocation rebuilt `replay_events` after the
one that last built it (`dbt build -s replay_events`, or a build without the destination
in var `direct_destinations`). Builds record the replay sets they built in
`replay_sets_built`; earlier ones, a column `<table>_built`, or nothing (then the table
was built with `replay_events`).

A build that fails while dbt parses the project (a compilation error such as a fix
missing from var 'fixes') runs no hook. What it leaves is a project whose files changed
after the last recorded invocation started: that is stale too (when the project folder
is known: DBT_PROJECT_DIR, the current folder, or the folder this package was installed
from, whichever has a dbt_project.yml first).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from loader.errors import LoaderError

PROJECT_PARTS = ("models", "macros", "seeds", "dbt_project.yml")


class StaleReplaySet(LoaderError):
    """The replay set predates a failed (or unfinished) build, or a changed project."""


@dataclass
class Attempt:
    invocation_id: str
    command: str
    started_at: datetime
    status: str
    replay_events_built: bool
    failed_nodes: list[str]
    table_built: bool  # the direct destination's table asked about (else replay_events)

    def describe(self) -> str:
        return f"`dbt {self.command}` of {_at(self.started_at)} (invocation {self.invocation_id})"


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def project_dir() -> Path | None:
    """The dbt project folder whose files the build reads, if it can be found."""
    candidates = [os.environ.get("DBT_PROJECT_DIR"), os.getcwd(), Path(__file__).parents[2]]
    for candidate in candidates:
        if candidate and (Path(candidate) / "dbt_project.yml").is_file():
            return Path(candidate)
    return None


def _attempts(
    con: duckdb.DuckDBPyConnection, catalog: str, table: str = "replay_events"
) -> list[Attempt] | None:
    columns = {
        name
        for (name,) in con.execute(
            "select column_name from duckdb_columns() where database_name = ? "
            "and schema_name = 'meta' and table_name = 'build_attempts'",
            [catalog],
        ).fetchall()
    }
    if not columns:
        return None
    # the newest record first; a build made before a table was recorded built it with
    # replay_events
    sources = []
    if "replay_sets_built" in columns:
        sources.append("list_contains(replay_sets_built, $table)")
    if f"{table}_built" in columns:
        sources.append(f'"{table}_built"')
    sources.append("replay_events_built")
    rows = con.execute(
        "select invocation_id, command, started_at, status, replay_events_built, "
        f"coalesce(failed_nodes, []), coalesce({', '.join(sources)}, false) "
        f'from "{catalog}".meta.build_attempts '
        "order by started_at, invocation_id",
        {"table": table} if "replay_sets_built" in columns else None,
    ).fetchall()
    return [Attempt(*row) for row in rows]


def _destination_behind(attempts: list[Attempt], table: str) -> str | None:
    """Why `table` predates the newest replay_events, or None when it does not."""
    destination = [a for a in attempts if a.table_built]
    replay = [a for a in attempts if a.replay_events_built]
    if not replay or (destination and destination[-1].started_at >= replay[-1].started_at):
        return None
    origin = (
        f"{table} was built by {destination[-1].describe()}"
        if destination
        else f"{table} was built before builds were recorded"
    )
    return (
        f"{table} is out of date: {origin}, and a later {replay[-1].describe()} rebuilt "
        "replay_events without it. Run `dbt build` with its destination in var "
        "direct_destinations (dbt_project.yml), then push."
    )


def _newest_project_file(folder: Path) -> tuple[Path, float] | None:
    newest: tuple[Path, float] | None = None
    for part in PROJECT_PARTS:
        path = folder / part
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in files:
            if file.is_file():
                mtime = file.stat().st_mtime
                if newest is None or mtime > newest[1]:
                    newest = (file, mtime)
    return newest


def stale_reason(
    con: duckdb.DuckDBPyConnection,
    catalog: str,
    project: Path | None = None,
    table: str = "replay_events",
) -> str | None:
    """Why the replay set in `catalog` (`table`, read from replay_events) is stale, with
    what to do, or None when it is not.

    A warehouse built before the markers existed has none: nothing to compare, None.
    """
    attempts = _attempts(con, catalog, table)
    if not attempts:
        return None
    if table != "replay_events":
        behind = _destination_behind(attempts, table)
        if behind is not None:
            return behind
    built = [a for a in attempts if a.replay_events_built]
    replay = built[-1] if built else None
    since = attempts[attempts.index(replay) :] if replay else attempts
    unfinished = [a for a in since if a.status != "succeeded"]
    origin = (
        f"replay_events was built by {replay.describe()}"
        if replay
        else "replay_events was built before builds were recorded"
    )
    if unfinished:
        bad = unfinished[-1]
        what = (
            f"failed ({', '.join(bad.failed_nodes[:5])}"
            + (f" and {len(bad.failed_nodes) - 5} more" if len(bad.failed_nodes) > 5 else "")
            + ")"
            if bad.failed_nodes
            else "did not finish (killed, or it crashed)"
            if bad.status == "started"
            else "failed"
        )
        later = "that same build" if bad is replay else f"a later {bad.describe()}"
        return (
            f"the replay set may be out of date: {origin}, and {later} {what}. It does not "
            "reflect the models and vars you last built. Fix the build and run `dbt build` "
            "until it passes, then push."
        )
    folder = project if project is not None else project_dir()
    newest = _newest_project_file(folder) if folder is not None else None
    last = attempts[-1]
    if newest is not None and newest[1] > last.started_at.timestamp():
        changed = newest[0].relative_to(folder) if folder else newest[0]
        return (
            f"the replay set may be out of date: {origin}, and {changed} changed at "
            f"{_at(datetime.fromtimestamp(newest[1], UTC))}, after the last dbt invocation "
            f"({last.describe()}) started. A build that fails while compiling (e.g. a fix not "
            "in var 'fixes') records nothing. Run `dbt build` until it passes, then push."
        )
    return None
