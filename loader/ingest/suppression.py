"""The suppression list: users whose events must not be replayed (erased, opted out).

A CSV (with a header) or Parquet file, local or on object storage, with columns
`identity_type` (`mpid` or an mParticle identity name) and `identity`. Loading it
replaces the list in `raw.suppression_list` (one row per data row, with its file and
line, as read) and `raw.suppression_lists` (the file, its SHA-256 and row count). The
build checks every row and joins it (models/staging/suppression/); it is the one place
that says which identity types exist and how values match.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from loader.errors import LoaderError
from loader.object_storage import filesystem, store_of_uri
from loader.warehouse import ensure_raw_schema, insert_columns

SETTING_ENV = "BACKFILL_SUPPRESSION_LIST"
COLUMNS = ("identity_type", "identity")


class BadSuppressionList(LoaderError):
    """A suppression list that cannot be read as one (not found, no such columns)."""


@dataclass(frozen=True)
class SuppressionLoad:
    """What loading a list did."""

    source_file: str
    checksum: str
    row_count: int
    unchanged: bool  # the same file with the same content was loaded already


def configured_list() -> str | None:
    """The list named by `BACKFILL_SUPPRESSION_LIST` (a path or URI), or None."""
    return os.environ.get(SETTING_ENV) or None


def read_bytes(location: str) -> tuple[str, bytes]:
    """The list's recorded name (an absolute path, or the URI) and its bytes."""
    store = store_of_uri(location)
    try:
        if store is None:
            path = Path(location).resolve()
            return str(path), path.read_bytes()
        fs, key = filesystem(store, location)
        with fs.open(key, "rb") as stream:
            return location, stream.read()
    except FileNotFoundError:
        raise BadSuppressionList(f"suppression list {location}: not found") from None
    except OSError as exc:
        raise BadSuppressionList(f"suppression list {location}: {exc}") from None


def parse_rows(name: str, data: bytes) -> list[tuple[int, str | None, str | None]]:
    """(line, identity_type, identity) of each data row, as read: the line in a CSV file
    (the header is line 1), the row number in a Parquet file. Values are text; an int64
    Parquet column keeps every digit, a float column is refused."""
    if data[:4] == b"PAR1":
        return _parquet_rows(name, data)
    return _csv_rows(name, data)


def _csv_rows(name: str, data: bytes) -> list[tuple[int, str | None, str | None]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadSuppressionList(f"{name}: not UTF-8 text (a CSV file) nor Parquet") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [column.strip().lower() for column in next(reader, [])]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise BadSuppressionList(
            f"{name}:1: the header needs columns {', '.join(COLUMNS)} "
            f"(missing {', '.join(missing)}; found {', '.join(header) or 'nothing'})"
        )
    type_at, identity_at = header.index(COLUMNS[0]), header.index(COLUMNS[1])
    rows = []
    for fields in reader:
        if not any(field.strip() for field in fields):
            continue  # a blank line
        rows.append(
            (
                reader.line_num,
                fields[type_at] if type_at < len(fields) else None,
                fields[identity_at] if identity_at < len(fields) else None,
            )
        )
    return rows


def _parquet_rows(name: str, data: bytes) -> list[tuple[int, str | None, str | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except pa.ArrowException as exc:
        raise BadSuppressionList(f"{name}: not a readable Parquet file: {exc}") from None
    names = {column.lower(): column for column in table.column_names}
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise BadSuppressionList(
            f"{name}: the file needs columns {', '.join(COLUMNS)} (missing {', '.join(missing)})"
        )
    columns = []
    for wanted in COLUMNS:
        column = table.column(names[wanted])
        if pa.types.is_floating(column.type) or pa.types.is_decimal(column.type):
            raise BadSuppressionList(
                f"{name}: column {wanted} is {column.type}: store identities as text or "
                "int64 (a float cannot hold every 64-bit MPID)"
            )
        columns.append([None if value is None else str(value) for value in column.to_pylist()])
    pairs = zip(*columns, strict=True)
    return [(index + 1, kind, value) for index, (kind, value) in enumerate(pairs)]


def load_suppression_list(con: duckdb.DuckDBPyConnection, location: str) -> SuppressionLoad:
    """Replace the warehouse's suppression list by the one at `location`."""
    name, data = read_bytes(location)
    checksum = hashlib.sha256(data).hexdigest()
    ensure_raw_schema(con)
    current = con.execute(
        "select source_file, file_checksum, row_count from raw.suppression_lists"
    ).fetchall()
    if len(current) == 1 and current[0][:2] == (name, checksum):
        return SuppressionLoad(name, checksum, int(current[0][2]), unchanged=True)
    rows = parse_rows(name, data)
    con.execute("begin transaction")
    try:
        con.execute("delete from raw.suppression_list")
        con.execute("delete from raw.suppression_lists")
        lines = [line for line, _, _ in rows]
        kinds = [kind for _, kind, _ in rows]
        values = [value for _, _, value in rows]
        insert_columns(
            con,
            "raw.suppression_list",
            {"line_number": lines, "identity_type": kinds, "identity": values},
            select="?::varchar as source_file, line_number::bigint as line_number, "
            "identity_type::varchar as identity_type, identity::varchar as identity",
            parameters=[name],
        )
        con.execute(
            "insert into raw.suppression_lists values (?, ?, ?, ?)",
            [name, checksum, len(rows), datetime.now(UTC)],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return SuppressionLoad(name, checksum, len(rows), unchanged=False)
