"""Reading local files on every core, ahead of the one DuckDB writer.

Worker processes take the files in order, a few ahead of the importer: each reads a
file once, takes its SHA-256 (the fingerprint `LocalFiles` gives) and, unless that
checksum is already loaded, judges every line as the fast path does
(`fast_path.judge_block`). The importer inserts what a worker prepared, in the files'
order, so the raw tables are the very rows of a serial run. A file the worker gives up on
(a line the careful path must judge, a truncated gzip stream, more than
`PREPARE_MAX_BYTES` once decompressed) is read again by the serial paths, which record
why. At most `AHEAD` prepared files wait, so memory stays bounded.
"""

from __future__ import annotations

import gzip
import hashlib
import multiprocessing
import os
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from loader.ingest.fast_path import judge_block
from loader.ingest.sources import SourceObject

GZIP_MAGIC = b"\x1f\x8b"
# Larger files (on disk or decompressed) are streamed by the serial paths instead: a
# prepared file is held whole, in a worker and then in the importer.
PREPARE_MAX_BYTES = 32 * 1024 * 1024
# Less input than this is read in the importer's process: starting workers costs more.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
_known: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Prepared:
    """A local file read by a worker: its checksum, and its judged lines when every line
    is a good batch (None: the serial paths read it)."""

    checksum: str
    is_gzip: bool
    block: pa.Table | None


def workers() -> int:
    """Worker processes: one a core."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _start(known: frozenset[str]) -> None:
    global _known
    _known = known


def prepare(path: str, max_line_bytes: int) -> Prepared:
    """Read and judge the file at `path` (in a worker process)."""
    with open(path, "rb") as fh:
        data = fh.read(PREPARE_MAX_BYTES + 1)
        digest = hashlib.sha256(data)
        too_big = len(data) > PREPARE_MAX_BYTES
        while block := fh.read(1 << 20):
            digest.update(block)
    checksum, is_gzip = digest.hexdigest(), data[:2] == GZIP_MAGIC
    if too_big or checksum in _known:
        return Prepared(checksum, is_gzip, None)
    if is_gzip:
        try:
            stream = zlib.decompressobj(wbits=31)
            text = stream.decompress(data, PREPARE_MAX_BYTES + 1)
            if len(text) > PREPARE_MAX_BYTES or stream.unconsumed_tail:
                return Prepared(checksum, is_gzip, None)
            if stream.unused_data:  # more gzip members: gzip reads them all
                text = gzip.decompress(data)
                if len(text) > PREPARE_MAX_BYTES:
                    return Prepared(checksum, is_gzip, None)
            elif not stream.eof:  # truncated: the careful path records it
                return Prepared(checksum, is_gzip, None)
        except (zlib.error, EOFError, gzip.BadGzipFile):
            return Prepared(checksum, is_gzip, None)
        data = text
    return Prepared(checksum, is_gzip, judge_block(data, 0, max_line_bytes))


def prepared_in_order(
    objects: list[SourceObject], known: set[str], max_line_bytes: int
) -> Iterator[tuple[SourceObject, Prepared | None]]:
    """Each object with what a worker prepared of it (None: too big to prepare)."""
    ahead = workers() + 1
    context = multiprocessing.get_context("spawn")  # no fork of a process running DuckDB
    pool = ProcessPoolExecutor(
        workers(), mp_context=context, initializer=_start, initargs=(frozenset(known),)
    )
    futures: list[Future[Prepared] | None] = []

    def submit(index: int) -> None:
        obj = objects[index]
        small = obj.size <= PREPARE_MAX_BYTES
        futures.append(pool.submit(prepare, obj.uri, max_line_bytes) if small else None)

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
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
