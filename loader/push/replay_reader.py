"""Reading the replay set: the contracted `replay_events` columns, whoever built them.

A `ReplaySetReader` makes the replay set readable on the planning connection for the
duration of a block and names a relation holding `REQUIRED_COLUMNS`; the planner queries
it with SQL and streams what it sends as Arrow record batches (memory stays flat in the
number of events), which come out as `packing.Group`s (`iter_groups`).

`WarehouseReplaySet` reads the DuckDB warehouse built by dbt, attached read-only only
while the plan is built, so a `dbt build` can run again as soon as the plan is written.
`ParquetReplaySet` reads Parquet files written by another engine (`loader push
--replay-set PATH`): a `read_parquet(...)` over them, with no build settings beside it
(no age limits of a build, no build markers). `replay_set_at` is the one place that
picks the reader for a location.
"""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from loader.errors import MissingReplaySet, WarehouseLocked
from loader.object_storage import filesystem, store_of_uri
from loader.push.packing import Group
from loader.warehouse import attach, lock_holder

ALIAS = "warehouse"
REPLAY_RELATION = f"{ALIAS}.main.replay_events"
REQUIRED_COLUMNS = (
    "replay_key",
    "user_key",
    "context_key",
    "event_type",
    "timestamp_unixtime_ms",
    "event_json",
    "batch_context",
    "data_plan_note",
    "identity_risk",
)
RECORD_BATCH_ROWS = 65_536


class ReplaySetReader(Protocol):
    """Where a replay set is read from."""

    def attached(self, con: duckdb.DuckDBPyConnection) -> AbstractContextManager[str]:
        """Make the replay set readable on `con` for the block; yield a relation (a table
        name or table function SQL can select from) with `REQUIRED_COLUMNS`.

        Raises `MissingReplaySet` when there is none, or when it lacks a column.
        """
        ...


class WarehouseReplaySet:
    """`replay_events` (or a destination's `table`) in the DuckDB warehouse at `path`,
    attached read-only."""

    def __init__(self, path: Path, table: str = "replay_events") -> None:
        self.path = path
        self.table = table

    def attached(self, con: duckdb.DuckDBPyConnection) -> AbstractContextManager[str]:
        return _attach_warehouse(con, self.path, self.table)


class ParquetReplaySet:
    """The contracted `replay_events` columns in Parquet files written by another engine
    (Spark, Snowflake, BigQuery, Databricks): one file, a folder of them, or a glob."""

    def __init__(self, location: str) -> None:
        self.location = location

    def attached(self, con: duckdb.DuckDBPyConnection) -> AbstractContextManager[str]:
        return _parquet(con, self.location)


def is_parquet_location(location: Path | str) -> bool:
    """A Parquet replay set (a .parquet file, a folder, a glob, an object-storage URI), not
    a warehouse file."""
    text = str(location)
    return (
        store_of_uri(text) is not None
        or text.endswith(".parquet")
        or any(c in text for c in "*?[")
        or Path(text).is_dir()
    )


def replay_set_at(path: Path | str, table: str = "replay_events") -> ReplaySetReader:
    """The reader for the replay set at `path`: Parquet files, or the warehouse file."""
    if not is_parquet_location(path):
        return WarehouseReplaySet(Path(path), table)
    if table != "replay_events":
        raise MissingReplaySet(
            f"{path}: a Parquet replay set holds replay_events for the Events API; "
            f"{table} is read from the warehouse (leave out --replay-set)."
        )
    return ParquetReplaySet(str(path))


@contextlib.contextmanager
def _parquet(con: duckdb.DuckDBPyConnection, location: str) -> Iterator[str]:
    """Yield a `read_parquet` relation over the files at `location`, once they are found
    and hold every column of `REQUIRED_COLUMNS`."""
    store = store_of_uri(location)
    files = _parquet_files(location) if store is None else _stored_files(con, location)
    if not files:
        raise MissingReplaySet(
            f"--replay-set {location}: no Parquet file there. Give a .parquet file, a folder "
            "of them, or a glob."
        )
    relation = "read_parquet([" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "])"
    try:
        columns = {row[0] for row in con.execute(f"describe select * from {relation}").fetchall()}
    except duckdb.Error as exc:
        message = f"--replay-set {location}: not readable as Parquet ({exc})"
        raise MissingReplaySet(message) from None
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise MissingReplaySet(
            f"--replay-set {location} lacks column(s) {', '.join(missing)}: write the "
            f"contracted replay_events columns ({', '.join(REQUIRED_COLUMNS)})."
        )
    yield relation


def _parquet_files(location: str) -> list[str]:
    """The Parquet files at a local `location`: a file, a folder (searched), a glob."""
    folder = Path(location)
    if folder.is_dir():
        files = sorted(str(f) for f in folder.rglob("*.parquet"))
    else:
        files = sorted(glob.glob(location)) if any(c in location for c in "*?[") else [location]
    return [f for f in files if Path(f).is_file()]


def _stored_files(con: duckdb.DuckDBPyConnection, uri: str) -> list[str]:
    """The Parquet objects at an object-storage `uri` (an object, a prefix, a glob), with
    their store's filesystem registered on `con` so that DuckDB reads them through it."""
    store = store_of_uri(uri)
    assert store is not None
    fs, path = filesystem(store, uri)
    try:
        if any(c in path for c in "*?["):
            found = fs.glob(path)
        elif fs.isdir(path):
            found = [f for f in fs.find(path) if f.endswith(".parquet")]
        else:
            found = [path] if fs.exists(path) else []
    except (OSError, ValueError) as exc:  # access denied, no such bucket, no credentials
        message = f"--replay-set {uri}: cannot list it ({exc}). Check {store.check}."
        raise MissingReplaySet(message) from None
    if not found:
        return []
    con.register_filesystem(fs)
    return [fs.unstrip_protocol(f) for f in sorted(found)]


def attached_replay_set(
    con: duckdb.DuckDBPyConnection,
    path: Path | str,
    table: str = "replay_events",
) -> AbstractContextManager[str]:
    """The replay set at `path`, readable on `con` for the block; yields its relation."""
    return replay_set_at(path, table).attached(con)


def record_batches(
    con: duckdb.DuckDBPyConnection, relation: str, rows: int = RECORD_BATCH_ROWS
) -> pa.RecordBatchReader:
    """The contracted columns of a reader's relation, streamed as Arrow record batches."""
    columns = ", ".join(REQUIRED_COLUMNS)
    return con.cursor().sql(f"select {columns} from {relation}").to_arrow_reader(rows)


@contextlib.contextmanager
def _attach_warehouse(
    con: duckdb.DuckDBPyConnection, path: Path, table: str = "replay_events"
) -> Iterator[str]:
    """Attach the warehouse at `path` read-only; yield the replay set's relation name.

    Raises `WarehouseLocked` while another process (a `dbt build`) holds the file, and
    `MissingReplaySet` when the file or the `replay_events` table is missing.
    """
    if not path.exists():
        raise MissingReplaySet(
            f"Warehouse {path.absolute()} does not exist. Run `loader ingest PATH` and "
            "`dbt build` first "
            "(or set BACKFILL_DUCKDB to the warehouse file)."
        )
    try:
        attach(con, path, ALIAS)
    except duckdb.IOException as exc:
        holder = lock_holder(exc)
        if holder is None:
            raise
        raise WarehouseLocked(
            f"{path} is in use by {holder} (probably a `dbt build`). Wait for it to finish, "
            "then run this command again."
        ) from None
    try:
        _check_replay_set(con, path, table)
        if table == "replay_events":
            yield REPLAY_RELATION
        else:
            yield f"(select {', '.join(REQUIRED_COLUMNS)} from {ALIAS}.main.{table})"
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {ALIAS}")


def _check_replay_set(
    con: duckdb.DuckDBPyConnection, path: Path, table: str = "replay_events"
) -> None:
    columns = {
        row[0]
        for row in con.execute(
            "select column_name from duckdb_columns() "
            "where database_name = ? and schema_name = 'main' and table_name = ?",
            [ALIAS, table],
        ).fetchall()
    }
    if not columns:
        listed = (
            ""
            if table == "replay_events"
            else " with its destination in var direct_destinations (dbt_project.yml)"
        )
        raise MissingReplaySet(
            f"{path.absolute()} has no {table} table yet. Run `dbt build`{listed} to build "
            "the replay set."
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise MissingReplaySet(
            f"{table} in {path.absolute()} lacks column(s) {', '.join(missing)}: it was built by "
            "another version of the project. Run `dbt build` again."
        )


def _joined(array: pa.Array) -> tuple[list[int], memoryview]:
    """A string column's offsets and data: its values, back to back, without copies."""
    if not (pa.types.is_large_string(array.type) or pa.types.is_string(array.type)):
        array = array.cast(pa.string())
    _, offsets, data = array.buffers()
    whole = memoryview(offsets)
    view = whole.cast("q") if pa.types.is_large_string(array.type) else whole.cast("i")
    view = view[array.offset : array.offset + len(array) + 1]
    return view.tolist(), memoryview(data if data is not None else b"")


def iter_groups(reader: pa.RecordBatchReader) -> Iterator[Group]:
    """Groups from rows sorted by group_no, whose first row in a group carries its columns.

    Columns: group_no, user_key, context_key, batch_context (set on a group's first row,
    may be null on the others), key_line (replay_key and a newline), event_text
    (event_json and a comma), content_hash (may be all null). The reader is closed when
    the iteration ends.
    """
    current: Group | None = None
    current_no: object = None
    try:
        for rb in reader:
            m = rb.num_rows
            if m == 0:
                continue
            starts, users, contexts, texts = _group_heads(rb, current_no)
            offsets, events = _joined(rb.column("event_text"))
            key_offsets, keys = _joined(rb.column("key_line"))
            hash_column = rb.column("content_hash")
            hashes = hash_column.to_pylist() if hash_column.null_count < m else None
            first = starts[0] if starts else m
            if first:  # the rows before the first head continue the current group
                if current is None:
                    raise ValueError("replay rows out of order: a group lacks its head row")
                _extend(current, offsets, events, key_offsets, keys, hashes, first)
            if not starts:
                continue
            if current is not None:
                yield current
            bounds = [*starts, m]
            last = len(starts) - 1
            for n, s in enumerate(starts):
                if users[n] is None or texts[n] is None:
                    raise ValueError("replay rows out of order: a group lacks its head row")
                e = bounds[n + 1]
                group = Group(
                    users[n],
                    contexts[n],
                    texts[n],
                    bytes(events[offsets[s] : offsets[e]]),
                    offsets[s : e + 1],
                    bytes(keys[key_offsets[s] : key_offsets[e]]),
                    key_offsets[s : e + 1],
                    hashes[s:e] if hashes is not None else None,
                )
                if n < last:
                    yield group
            current = group
            current_no = rb.column("group_no")[m - 1].as_py()
        if current is not None:
            yield current
    finally:
        reader.close()


def _group_heads(
    rb: pa.RecordBatch, current_no: object
) -> tuple[list[int], list[Any], list[Any], list[Any]]:
    """Rows of `rb` where a new group starts, and those rows' user, context key and context."""
    numbers = rb.column("group_no")
    changes = pc.not_equal(numbers.slice(1), numbers.slice(0, rb.num_rows - 1))
    starts = [] if numbers[0].as_py() == current_no else [0]
    starts += [i + 1 for i in pc.indices_nonzero(changes).to_pylist()]
    at_starts = pa.array(starts, pa.int64())
    users, contexts, texts = (
        rb.column(name).take(at_starts).to_pylist()
        for name in ("user_key", "context_key", "batch_context")
    )
    return starts, users, contexts, texts


def _extend(
    group: Group,
    offsets: list[int],
    events: memoryview,
    key_offsets: list[int],
    keys: memoryview,
    hashes: list[str] | None,
    count: int,
) -> None:
    """Append the first `count` rows of a record batch to a group begun in the previous one."""
    shift = group.offsets[-1] - offsets[0]
    group.events += bytes(events[offsets[0] : offsets[count]])
    group.offsets.extend(offset + shift for offset in offsets[1 : count + 1])
    key_shift = group.key_offsets[-1] - key_offsets[0]
    group.keys += bytes(keys[key_offsets[0] : key_offsets[count]])
    group.key_offsets.extend(offset + key_shift for offset in key_offsets[1 : count + 1])
    if group.content_hashes is not None and hashes is not None:
        group.content_hashes.extend(hashes[:count])
