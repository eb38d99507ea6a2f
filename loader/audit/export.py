"""`loader export`: one model of the warehouse to a CSV or Parquet file, streamed by DuckDB.

The warehouse is attached read-only; DuckDB writes a temporary file next to the target,
which then replaces the target (a symbolic link at the target is refused, never followed).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from loader.errors import LoaderError
from loader.warehouse import connect

FORMATS = ("csv", "parquet")


def export_model(warehouse: Path, model: str, output_format: str, out: Path) -> int:
    """Write `model` (a table or view of the warehouse) to `out`; the number of rows."""
    if output_format not in FORMATS:
        raise LoaderError(f"--format {output_format}: use csv or parquet")
    if out.is_symlink():
        raise LoaderError(f"--out {out} is a symbolic link: give the path of a regular file")
    if out.is_dir():
        raise LoaderError(f"--out {out} is a folder: give a file path")
    con = connect(warehouse, read_only=True)
    try:
        names = {
            row[0]
            for row in con.execute(
                "select table_name from duckdb_tables() where database_name = 'warehouse' "
                "and schema_name = 'main' union select view_name from duckdb_views() "
                "where database_name = 'warehouse' and schema_name = 'main'"
            ).fetchall()
        }
        if model not in names:
            raise LoaderError(
                f"no model {model!r} in {warehouse.absolute()}: run `dbt build` first, or name "
                f"one of its tables (e.g. replay_events, resent_event_duplicates)"
            )
        temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        quoted_model = '"' + model.replace('"', '""') + '"'
        quoted_path = str(temporary).replace("'", "''")
        options = "format csv, header true" if output_format == "csv" else "format parquet"
        try:
            [(rows,)] = con.execute(
                f"copy (select * from main.{quoted_model}) to '{quoted_path}' ({options})"
            ).fetchall()
            os.replace(temporary, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
    finally:
        con.close()
    return int(rows)
