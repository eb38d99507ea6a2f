"""Opening the DuckDB warehouse, with clear errors when it is locked or unbuilt."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from loader import settings
from loader.errors import LoaderError, MissingReplaySet, WarehouseLocked

if TYPE_CHECKING:
    import pyarrow as pa

RAW_SCHEMA_DDL = """
create schema if not exists raw;
create table if not exists raw.quarantine_lines (
    source_file varchar not null,
    line_number bigint not null,
    batch_json json not null,
    file_checksum varchar not null,
    ingested_at timestamptz not null
);
create table if not exists raw.rejected_lines (
    source_file varchar not null,
    line_number bigint not null,
    reason varchar not null,
    line_excerpt varchar,
    file_checksum varchar not null,
    ingested_at timestamptz not null
);
create table if not exists raw.ingested_files (
    source_file varchar not null,
    file_checksum varchar not null,
    size_bytes bigint not null,
    is_gzip boolean not null,
    lines_loaded bigint not null,
    lines_rejected bigint not null,
    ingested_at timestamptz not null
);
create table if not exists raw.suppression_list (
    source_file varchar not null,
    line_number bigint not null,
    identity_type varchar,
    identity varchar
);
create table if not exists raw.suppression_lists (
    source_file varchar not null,
    file_checksum varchar not null,
    row_count bigint not null,
    loaded_at timestamptz not null
);
"""


def open_duckdb(database: Path | str, *, streaming: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB session on `database` (a file, or ':memory:') under the project's resource
    limits: `settings.memory_limit()` (capped for a `streaming` command: ingest, push),
    spilling to `settings.temp_directory()`. Every connection the loader opens comes from
    here.

    The folder is created here and left in place: DuckDB removes a temp folder it created
    itself when it closes, which would pull it from under another process spilling there
    (DuckDB's temp files carry their process id, so processes can share the folder). The
    default folder beside a warehouse that does not exist (yet) is not created: DuckDB
    creates it only if it spills, and removes it again.
    """
    spill = settings.temp_directory()
    if _keeps_spill_folder(spill, database):
        spill.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": settings.memory_limit(streaming=streaming),
        "temp_directory": str(spill),
    }
    return duckdb.connect(str(database), config=config)


def _keeps_spill_folder(spill: Path, database: Path | str) -> bool:
    """Whether to create `spill` for good: a folder the user chose, or the default one
    beside a warehouse that exists or is the database being opened (created)."""
    if os.environ.get(settings.TEMP_DIRECTORY_ENV):
        return True
    warehouse = settings.warehouse_path()
    return warehouse.exists() or Path(database).absolute() == warehouse.absolute()


@contextlib.contextmanager
def kept_only_if_written(path: Path) -> Iterator[None]:
    """A command that creates the warehouse at `path` and stops on bad input (a mistyped
    path, a missing list: a `LoaderError`) before writing a row leaves no empty warehouse
    behind, nor its default spill folder. Close the connection inside the block."""
    existed = path.exists()
    try:
        yield
    except LoaderError:
        if not existed and _holds_no_rows(path):
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
            spill = path.with_name(path.name + ".tmp")
            if not os.environ.get(settings.TEMP_DIRECTORY_ENV) and spill.is_dir():
                with contextlib.suppress(OSError):
                    spill.rmdir()  # only when empty
        raise


def _holds_no_rows(path: Path) -> bool:
    """Whether every table of the DuckDB file at `path` is empty (or it cannot be read)."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.execute(
                "select schema_name, table_name from duckdb_tables() "
                "where database_name = current_database()"
            ).fetchall()
            return not any(
                con.execute(f'select 1 from "{schema}"."{table}" limit 1').fetchone()
                for schema, table in tables
            )
    except duckdb.Error:
        return False


def connect(
    path: Path, *, read_only: bool = False, streaming: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open `path` (`streaming`: see `open_duckdb`); a lock held by another process becomes
    a `WarehouseLocked`.

    Read-only, the file is attached (as `warehouse`, the default database) to an
    in-memory session, so that other files (the ledger) can be attached beside it.
    """
    if read_only and not path.exists():
        raise MissingReplaySet(
            f"Warehouse {path.absolute()} does not exist. Run `loader ingest PATH` and "
            "`dbt build` first (or set BACKFILL_DUCKDB to the warehouse file)."
        )
    try:
        if not read_only:
            return open_duckdb(path, streaming=streaming)
        con = open_duckdb(":memory:", streaming=streaming)
        try:
            attach(con, path, "warehouse")
        except BaseException:
            con.close()
            raise
        con.execute("use warehouse")
        return con
    except duckdb.IOException as exc:
        holder = lock_holder(exc)
        if holder is None:
            raise
        raise WarehouseLocked(
            f"{path} is in use by {holder}. Wait for it to finish, then run this command again."
        ) from None


def database_file(con: duckdb.DuckDBPyConnection) -> str:
    """The absolute path of the file `con`'s current database lives in (for messages)."""
    row = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    return str(row[0]) if row and row[0] else "the warehouse"


def lock_holder(exc: duckdb.Error) -> str | None:
    """Who holds the file when `exc` is DuckDB's lock error, else None: 'process N (loader
    sql)', the program named from /proc/N/cmdline when it can be read."""
    if "lock" not in str(exc).lower():
        return None
    pid = re.search(r"PID (\d+)", str(exc))
    if not pid:
        return "another process"
    program = program_name(int(pid.group(1)))
    return f"process {pid.group(1)}" + (f" ({program})" if program else "")


def program_name(pid: int) -> str | None:
    """The program `pid` runs and its first argument ('loader sql', 'dbt build'), from its
    command line with the Python interpreter left out; None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    args = [arg for arg in raw.decode(errors="replace").split("\0") if arg]
    if args and Path(args[0]).name.startswith("python"):
        args = args[1:]
        while args and args[0].startswith("-") and args[0] not in ("-c", "-m"):
            args = args[1:]
        if args and args[0] == "-m":
            args = args[1:]
    if not args:
        return None
    words = [Path(args[0]).name] if args[0] != "-c" else ["python -c"]
    if args[0] != "-c" and len(args) > 1 and not args[1].startswith("-"):
        words.append(args[1])
    return " ".join(words)


def attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    """Attach the DuckDB file at `path` read-only as `alias`."""
    quoted = str(path).replace("'", "''")
    con.execute(f"attach '{quoted}' as {alias} (read_only)")


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(RAW_SCHEMA_DDL)


def insert_columns(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: dict[str, list[Any] | pa.Array],
    *,
    select: str | None = None,
    parameters: list[Any] | None = None,
) -> None:
    """Insert rows given as columns (one Arrow table, one statement) into `table`.

    Columns go in by name; `select` (a select list over the columns, with `?` for
    `parameters`) replaces the plain column list, e.g. to cast text to JSON.
    """
    import pyarrow as pa

    incoming = pa.table(columns)
    con.register("incoming_rows", incoming)
    try:
        names = ", ".join(columns)
        con.execute(
            f"insert into {table} by name select {select or names} from incoming_rows",
            parameters or [],
        )
    finally:
        con.unregister("incoming_rows")
