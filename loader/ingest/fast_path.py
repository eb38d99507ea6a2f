"""The fast way to load a file whose every line is a good batch: whole blocks of lines
inserted at once, each line judged by orjson (the careful path's judge) without building
rows in Python.

It gives the very rows the careful path (importer._read_lines) gives, or gives up: a line
the careful path would reject (invalid UTF-8, a NUL byte, not JSON, not an object, too
long), a truncated gzip stream or a read error make `load_fast` undo what it loaded and
return None, and the file goes through the careful path, which records why.
"""

from __future__ import annotations

import gzip
import zlib
from datetime import datetime
from typing import BinaryIO

import duckdb
import orjson
import pyarrow as pa

BLOCK_BYTES = 32 * 1024 * 1024  # read at a time, cut at the last line end
SCAN_ROWS = 2048


class GiveUp(Exception):
    """A line needs the careful path."""


def load_fast(
    con: duckdb.DuckDBPyConnection,
    fh: BinaryIO,
    source_file: str,
    checksum: str,
    now: datetime,
    max_line_bytes: int,
) -> int | None:
    """Load every line of the (decompressed) stream `fh`; the number of lines loaded, or
    None when the careful path must read the file (nothing of it is left loaded)."""
    loaded, lines_before, tail = 0, 0, b""
    try:
        while True:
            block = fh.read(BLOCK_BYTES)
            data = tail + block
            if not data:
                break
            cut = data.rfind(b"\n") + 1 if block else len(data)
            if cut == 0:  # no line end yet: one long line
                if len(data) > max_line_bytes:
                    raise GiveUp
                tail = data
                continue
            chunk, tail = data[:cut], data[cut:]
            loaded += _load_block(
                con, chunk, lines_before, source_file, checksum, now, max_line_bytes
            )
            lines_before += chunk.count(b"\n")
    except (GiveUp, EOFError, gzip.BadGzipFile, zlib.error, OSError):
        con.execute(
            "delete from raw.quarantine_lines where source_file = ? and file_checksum = ?",
            [source_file, checksum],
        )
        return None
    return loaded


def _load_block(
    con: duckdb.DuckDBPyConnection,
    chunk: bytes,
    lines_before: int,
    source_file: str,
    checksum: str,
    now: datetime,
    max_line_bytes: int,
) -> int:
    """Insert the lines of `chunk` (whole lines), numbered after `lines_before`."""
    block = judge_block(chunk, lines_before, max_line_bytes)
    if block is None:
        raise GiveUp
    return insert_block(con, block, source_file, checksum, now)


def judge_block(chunk: bytes, lines_before: int, max_line_bytes: int) -> pa.Table | None:
    """The lines of `chunk` (whole lines, numbered after `lines_before`) as a table of
    `line_number` and `batch_json`, or None when a line needs the careful path."""
    if b"\x00" in chunk or chunk.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return None
    numbers, lines = [], []
    loads = orjson.loads
    try:
        for number, line in enumerate(chunk.split(b"\n"), lines_before + 1):
            raw = line.rstrip(b"\r")
            if len(raw) > max_line_bytes:
                return None
            if raw.strip():  # a line of blanks is skipped, as the careful path does
                if type(loads(raw)) is not dict:
                    return None
                numbers.append(number)
                lines.append(raw)
    except orjson.JSONDecodeError:
        return None
    return pa.table(
        {
            "line_number": pa.array(numbers, pa.int64()),
            "batch_json": pa.array(lines, pa.json_()),
        }
    )


def insert_block(
    con: duckdb.DuckDBPyConnection,
    block: pa.Table,
    source_file: str,
    checksum: str,
    now: datetime,
) -> int:
    """Insert the judged lines `block` (from `judge_block`) of one file."""
    if not block.num_rows:
        return 0
    # record batches of a few thousand rows: DuckDB scans them on all its threads
    block = pa.Table.from_batches(block.to_batches(max_chunksize=SCAN_ROWS))
    con.register("fast_block", block)
    try:
        con.execute(
            "insert into raw.quarantine_lines by name select ? as source_file, line_number, "
            "batch_json, ? as file_checksum, ? as ingested_at from fast_block",
            [source_file, checksum, now],
        )
    finally:
        con.unregister("fast_block")
    return int(block.num_rows)
