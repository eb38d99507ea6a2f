"""Reading the replay set (`replay_events`, built by dbt) from the warehouse, read-only.

The warehouse is attached read-only to the connection that plans the run, only while
the plan is built: a `dbt build` can run again as soon as the plan is written. Rows
stream as Arrow record batches (memory stays flat in the number of events) and come out
as `packing.Group`s.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from loader.errors import MissingReplaySet, WarehouseLocked
from loader.packing import Group

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
)
RECORD_BATCH_ROWS = 65_536


@contextlib.contextmanager
def attached_replay_set(con: duckdb.DuckDBPyConnection, path: Path) -> Iterator[str]:
    """Attach the warehouse at `path` read-only; yield the replay set's relation name.

    Raises `WarehouseLocked` while another process (a `dbt build`) holds the file, and
    `MissingReplaySet` when the file or the `replay_events` table is missing.
    """
    if not path.exists():
        raise MissingReplaySet(
            f"Warehouse {path} does not exist. Run `loader ingest PATH` and `dbt build` first "
            "(or set BACKFILL_DUCKDB to the warehouse file)."
        )
    quoted = str(path).replace("'", "''")
    try:
        con.execute(f"attach '{quoted}' as {ALIAS} (read_only)")
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        pid = re.search(r"PID (\d+)", str(exc))
        holder = f"process {pid.group(1)}" if pid else "another process"
        raise WarehouseLocked(
            f"{path} is in use by {holder} (probably a `dbt build`). Wait for it to finish, "
            "then run this command again."
        ) from None
    try:
        _check_replay_set(con, path)
        yield REPLAY_RELATION
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {ALIAS}")


def _check_replay_set(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    columns = {
        row[0]
        for row in con.execute(
            "select column_name from duckdb_columns() "
            "where database_name = ? and schema_name = 'main' and table_name = 'replay_events'",
            [ALIAS],
        ).fetchall()
    }
    if not columns:
        raise MissingReplaySet(
            f"{path} has no replay_events table yet. Run `dbt build` to build the replay set."
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise MissingReplaySet(
            f"replay_events in {path} lacks column(s) {', '.join(missing)}: it was built by "
            "another version of the project. Run `dbt build` again."
        )


def iter_groups(reader: pa.RecordBatchReader) -> Iterator[Group]:
    """Groups from sorted rows whose first row of each group carries its group columns.

    Columns: user_key, context_key, batch_context (set on a group's first row only, null
    on the others), replay_key, event_json, content_hash (may be all null). The reader
    is closed when the iteration ends.
    """
    current: Group | None = None
    try:
        for rb in reader:
            if rb.num_rows == 0:
                continue
            starts = pc.indices_nonzero(pc.is_valid(rb.column("user_key"))).to_pylist()
            keys = rb.column("replay_key").to_pylist()
            events = rb.column("event_json").to_pylist()
            sizes = pc.binary_length(rb.column("event_json")).to_pylist()
            hash_column = rb.column("content_hash")
            hashes = hash_column.to_pylist() if hash_column.null_count < rb.num_rows else None
            at_starts = pa.array(starts, pa.int64())
            users, contexts, texts = (
                rb.column(name).take(at_starts).to_pylist()
                for name in ("user_key", "context_key", "batch_context")
            )
            first = starts[0] if starts else rb.num_rows
            if first:  # the rows before the first head continue the current group
                if current is None:
                    raise ValueError("replay rows out of order: a group lacks its head row")
                current.replay_keys.extend(keys[:first])
                current.events.extend(events[:first])
                current.sizes.extend(sizes[:first])
                if current.content_hashes is not None and hashes is not None:
                    current.content_hashes.extend(hashes[:first])
            if not starts:
                continue
            if current is not None:
                yield current
            ends = [*starts[1:], rb.num_rows]
            last = len(starts) - 1
            for n, s in enumerate(starts):
                e = ends[n]
                group = Group(
                    users[n],
                    contexts[n],
                    texts[n],
                    keys[s:e],
                    events[s:e],
                    sizes[s:e],
                    hashes[s:e] if hashes is not None else None,
                )
                if n < last:
                    yield group
            current = group
        if current is not None:
            yield current
    finally:
        reader.close()
