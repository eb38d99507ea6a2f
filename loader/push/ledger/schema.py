"""The ledger's schema version and the ordered migrations that bring any earlier ledger to it.

A new ledger gets `sql/schema.sql` at `SCHEMA_VERSION`. A ledger written by an earlier
release gets the migrations after its version (the highest in `schema_versions`; a ledger
without that table is version 0: every release up to the one that added it, 86fd2f9 and
79737e4 among them, wrote that same shape), each in one transaction with its record in
`schema_versions`, so a migration interrupted by a crash is done again whole by the next
open. The views (`sql/views.sql`) are created afresh on every open for writing. A ledger
of a later version than ours is refused (`LedgerVersionError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb

from loader.errors import LoaderError
from loader.push.ledger import refusals

SQL_DIR = Path(__file__).resolve().parent / "sql"
TABLES = ("runs", "batches", "batch_events", "requests")


@dataclass(frozen=True)
class Migration:
    version: int  # the schema version this migration brings the ledger to
    description: str
    sql_file: str  # in sql/migrations/
    # a step SQL cannot do, after the file's statements (same transaction)
    after: Callable[[duckdb.DuckDBPyConnection], None] | None = None


def classify_old_errors(con: duckdb.DuckDBPyConnection) -> None:
    """Give a code and reason to messages recorded before the ledger kept them."""
    errors = [
        row[0]
        for row in con.execute(
            "select distinct error from batches where error is not null and error_code is null"
        ).fetchall()
    ]
    if errors:
        sql, params = refusals.codes_relation(errors)
        con.execute(
            "update batches set error_code = c.code, error_reason = c.reason "
            f"from ({sql}) c where batches.error = c.error",
            params,
        )


MIGRATIONS = (
    Migration(
        1,
        "the columns that releases without a schema version added one by one",
        "001_unversioned.sql",
        after=classify_old_errors,
    ),
    Migration(
        2,
        "the destination as a column; replay keys without a destination prefix",
        "002_destination_column.sql",
    ),
    Migration(
        3,
        "batch numbers: the send loop reads only the row groups of the batches it updates",
        "003_batch_numbers.sql",
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


class LedgerVersionError(LoaderError):
    """The ledger was written by a later release of the loader."""


@cache
def sql_text(name: str) -> str:
    return (SQL_DIR / name).read_text()


def version_of(con: duckdb.DuckDBPyConnection, database: str) -> int | None:
    """The schema version of the ledger in `database` (a catalog name); None when it holds
    no ledger. (Its tables may be views over a file's: see `store.attach_ledger`.)"""
    present = {
        row[0]
        for row in con.execute(
            "select table_name from duckdb_tables() where database_name = $db "
            "and schema_name = 'main' union all "
            "select view_name from duckdb_views() where database_name = $db "
            "and schema_name = 'main'",
            {"db": database},
        ).fetchall()
    }
    if not set(TABLES) <= present:
        return None
    if "schema_versions" not in present:
        return 0
    quoted = '"' + database.replace('"', '""') + '"'
    [(version,)] = con.execute(
        f"select coalesce(max(version), 0) from {quoted}.main.schema_versions"
    ).fetchall()
    return int(version)


def check_version(version: int | None, where: str) -> None:
    """Refuse a ledger written by a later release."""
    if version is not None and version > SCHEMA_VERSION:
        raise LedgerVersionError(
            f"the ledger {where} has schema version {version}, written by a later release "
            f"of the loader (this one knows versions up to {SCHEMA_VERSION}): upgrade the "
            "loader, or use another ledger (BACKFILL_LEDGER)."
        )


def migrate(con: duckdb.DuckDBPyConnection, where: str) -> None:
    """Create, or bring up to `SCHEMA_VERSION`, the ledger in the current database of
    `con`, then (re)create its views. `where` names the ledger in messages."""
    [(database,)] = con.execute("select current_database()").fetchall()
    version = version_of(con, database)
    check_version(version, where)
    if version is None:
        with _transaction(con):
            con.execute(sql_text("schema.sql"))
            _record(con, SCHEMA_VERSION, "created")
    else:
        for migration in MIGRATIONS:
            if migration.version <= version:
                continue
            with _transaction(con):
                con.execute(sql_text(f"migrations/{migration.sql_file}"))
                if migration.after is not None:
                    migration.after(con)
                _record(con, migration.version, migration.description)
    con.execute(sql_text("views.sql"))


def _record(con: duckdb.DuckDBPyConnection, version: int, description: str) -> None:
    con.execute(
        "insert into schema_versions values (?, ?, ?)", [version, datetime.now(UTC), description]
    )


class _transaction:
    """Statements that commit together or not at all."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def __enter__(self) -> None:
        self.con.execute("begin transaction")

    def __exit__(self, kind: object, *rest: object) -> None:
        self.con.execute("rollback" if kind is not None else "commit")
