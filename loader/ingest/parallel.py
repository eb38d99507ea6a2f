"""Reading local files on every core, ahead of the one DuckDB writer.

Worker processes take the files in order, a few ahead of the importer: each reads a
file once, takes its SHA-256 (the fingerprint `LocalFiles` gives) and, unless that
checksum is already loaded, judges every line as the fast path does
(`fast_path.judge_block`) and writes the judged lines to a Parquet file in the staging
folder (`staging_folder`, beside the warehouse). The importer inserts each staged file
with DuckDB's `read_parquet`, in the files' order, so the raw tables are the very rows of
a serial run, and deletes it. A file the worker gives up on (a line the careful path must
judge, a truncated gzip stream, more than `PREPARE_MAX_BYTES` once decompressed) is read
again by the serial paths, which record why. Workers run at most `AHEAD_PER_WORKER` files
a worker ahead of the importer, so the staged files on disk stay few.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import multiprocessing
import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.process import BaseProcess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from loader.errors import LoaderError
from loader.ingest.fast_path import judge_block
from loader.ingest.sources import SourceObject

GZIP_MAGIC = b"\x1f\x8b"
# Larger files (on disk or decompressed) are streamed by the serial paths instead: a
# prepared file is held whole, in a worker and then in the importer.
PREPARE_MAX_BYTES = 32 * 1024 * 1024
# Less input than this is read in the importer's process: starting workers costs more.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
# Files a worker prepares ahead of the importer (a prepared file waits on disk).
AHEAD_PER_WORKER = 3
_known: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Prepared:
    """A local file read by a worker: its checksum, and when every line is a good batch
    the Parquet file of its judged lines (`line_number`, `batch_json`), their number and
    their bytes (staged None: the serial paths read it)."""

    checksum: str
    is_gzip: bool
    staged: str | None = None
    lines: int = 0
    text_bytes: int = 0

    def discard(self) -> None:
        """Remove the staged file (inserted, or not needed)."""
        if self.staged:
            Path(self.staged).unlink(missing_ok=True)


def workers() -> int:
    """Worker processes: one a core."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _start(known: frozenset[str]) -> None:
    """A worker's setup: the checksums already loaded, and an end with the importer's
    process (killed, it cannot stop its workers: they would go on staging files)."""
    global _known
    _known = known
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: BaseProcess) -> None:
    parent.join()  # returns once the parent process has ended
    os._exit(1)


def prepare(path: str, max_line_bytes: int, staged: str) -> Prepared:
    """Read and judge the file at `path`, its lines written to `staged` (in a worker
    process)."""
    with open(path, "rb") as fh:
        data = fh.read(PREPARE_MAX_BYTES + 1)
        digest = hashlib.sha256(data)
        too_big = len(data) > PREPARE_MAX_BYTES
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    checksum, is_gzip = digest.hexdigest(), data[:2] == GZIP_MAGIC
    if too_big or checksum in _known:
        return Prepared(checksum, is_gzip)
    if is_gzip:
        try:
            stream = zlib.decompressobj(wbits=31)
            text = stream.decompress(data, PREPARE_MAX_BYTES + 1)
            if len(text) > PREPARE_MAX_BYTES or stream.unconsumed_tail:
                return Prepared(checksum, is_gzip)
            if stream.unused_data:  # more gzip members: gzip reads them all
                text = gzip.decompress(data)
                if len(text) > PREPARE_MAX_BYTES:
                    return Prepared(checksum, is_gzip)
            elif not stream.eof:  # truncated: the careful path records it
                return Prepared(checksum, is_gzip)
        except (zlib.error, EOFError, gzip.BadGzipFile):
            return Prepared(checksum, is_gzip)
        data = text
    block = judge_block(data, 0, max_line_bytes)
    if block is None:
        return Prepared(checksum, is_gzip)
    # Uncompressed, one row group: the file lives for seconds, and writing it costs
    # about a tenth of judging it.
    pq.write_table(block, staged, compression="none", use_dictionary=False, write_statistics=False)
    return Prepared(checksum, is_gzip, staged, block.num_rows, len(data))


def insert_prepared(
    con: duckdb.DuckDBPyConnection, prepared: Prepared, source_file: str, now: datetime
) -> int:
    """Insert the lines a worker staged for `source_file`; the number inserted. DuckDB
    reads the Parquet file into its own buffers, under its memory limit."""
    if not prepared.lines:
        return 0
    con.execute(
        "insert into raw.quarantine_lines by name select ? as source_file, line_number, "
        "batch_json, ? as file_checksum, ? as ingested_at from read_parquet(?)",
        [source_file, prepared.checksum, now, prepared.staged],
    )
    return prepared.lines


@contextlib.contextmanager
def staging_folder(con: duckdb.DuckDBPyConnection) -> Iterator[Path]:
    """A folder for the workers' staged files beside the warehouse `con` writes
    (`<warehouse>.ingest/`, so it shares the warehouse's disk), removed on the way out,
    on error too. Only the one writer of the warehouse uses it: a folder left by an
    interrupted run is removed first. In the system's temp folder for a database in
    memory."""
    [(database,)] = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchall()
    if not database:
        with tempfile.TemporaryDirectory(prefix="backfill-ingest-") as temporary:
            yield Path(temporary)
        return
    folder = Path(database).with_name(Path(database).name + ".ingest")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def prepared_in_order(
    objects: list[SourceObject], known: set[str], max_line_bytes: int, folder: Path
) -> Generator[tuple[SourceObject, Prepared | None], None, None]:
    """Each object with what a worker prepared of it in `folder` (None: too big to
    prepare). The caller discards each staged file once done with it."""
    ahead = workers() * AHEAD_PER_WORKER
    context = multiprocessing.get_context("spawn")  # no fork of a process running DuckDB
    pool = ProcessPoolExecutor(
        workers(), mp_context=context, initializer=_start, initargs=(frozenset(known),)
    )
    futures: list[Future[Prepared] | None] = []

    def submit(index: int) -> None:
        obj = objects[index]
        small = obj.size <= PREPARE_MAX_BYTES
        staged = str(folder / f"{index}.parquet")
        futures.append(pool.submit(prepare, obj.uri, max_line_bytes, staged) if small else None)

    try:
        for index in range(min(ahead, len(objects))):
            submit(index)
        for index, obj in enumerate(objects):
            future = futures[index]
            futures[index] = None
            if index + ahead < len(objects):
                submit(index + ahead)
            try:
                yield obj, future.result() if future else None
            except OSError:  # the importer opens it again and reports why it cannot
                yield obj, None
    except BrokenProcessPool as exc:
        raise LoaderError(
            "A worker process reading the files ended abruptly (killed, or out of memory). "
            "The files loaded before are kept; run loader ingest again to load the rest."
        ) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
