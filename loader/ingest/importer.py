"""Importing Quarantine Output files into the raw tables, one row per NDJSON line.

Lines are validated (UTF-8, JSON, an object) but stored as read, so int64 values keep
every digit. A bad line goes to `raw.rejected_lines`; the rest of its file still loads.
A file counts as loaded once its `raw.ingested_files` row exists: the next run removes
the lines of an interrupted load and loads that file again, and dbt reads only
completely loaded files.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import zlib
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import duckdb
import orjson
import pyarrow as pa

from loader.ingest import parallel
from loader.ingest.fast_path import load_fast
from loader.ingest.parallel import Prepared, insert_prepared, prepared_in_order, staging_folder
from loader.ingest.source_choice import source_for
from loader.ingest.sources import (
    LocalFiles,
    ObjectReadError,
    ReadsAhead,
    Source,
    SourceObject,
    is_verification_file,
)
from loader.warehouse import ensure_raw_schema, insert_columns

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_LINES = 5_000
EXCERPT_BYTES = 200
# The longest line (batch) read, in bytes without its line end. mParticle's batches are
# at most a few MB: the Events API refuses a batch over 128 KB, and the quarantine
# batches written by SDKs and feeds are of the same order. 16 MiB is far above any real
# batch, yet bounds what one line can cost (reading, checking and storing it takes a few
# times its size). A longer line goes to raw.rejected_lines as `line too long` and is
# skipped without being held in memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Files are committed together up to this much input: one commit per file would write
# every line twice (log, then table). An interrupted run loses at most this much work.
# Uncommitted rows are held in memory: 64 MiB keeps ingest under 1 GB (256 MiB: 1.2 GB).
COMMIT_BYTES = 64 * 1024 * 1024
# Files the workers prepared are committed together up to this many lines, or this much
# text: a transaction of at least a row group (122,880 rows) is written to the table
# compressed, once, instead of to the log and again at the checkpoint. DuckDB reads
# staged files into its own buffers, so memory stays under its limit whatever the size;
# the work an interrupted run loses is bounded by these.
COMMIT_STAGED_LINES = 2 * 122_880
COMMIT_STAGED_BYTES = 1024 * 1024 * 1024
SKIP_BYTES = 1024 * 1024  # read size while skipping the rest of a line too long
SNIFF_BYTES = 1024  # the head of a file (after gunzip) checked for binary content
NOT_QUARANTINE = (
    f"not a quarantine file: binary content (a NUL byte or invalid UTF-8 in the first "
    f"{SNIFF_BYTES} bytes) and no line is a JSON object"
)


@dataclass
class Rejection:
    source_file: str
    line_number: int
    reason: str
    line_excerpt: str | None


@dataclass
class FileResult:
    path: str  # as recorded in the raw tables; for a file not read, shown safely
    status: str  # loaded | replaced | refused | unchanged | skipped | not read
    lines_loaded: int = 0
    lines_rejected: int = 0
    note: str = ""
    rejections: list[Rejection] = field(default_factory=list)
    fast: bool = False  # read by the fast path (every line a good batch)


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(1 for f in self.files if f.status in statuses)

    @property
    def files_read(self) -> int:
        return self.count("loaded", "replaced", "refused")

    @property
    def not_read(self) -> list[FileResult]:
        """Files that could not be opened (or named): nothing of them is recorded."""
        return [f for f in self.files if f.status == "not read"]

    @property
    def lines_loaded(self) -> int:
        return sum(f.lines_loaded for f in self.files)

    @property
    def lines_rejected(self) -> int:
        return sum(f.lines_rejected for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_read": self.files_read,
            "files_skipped": self.count("skipped"),
            "files_unchanged": self.count("unchanged"),
            "files_replaced": self.count("replaced"),
            "files_refused": self.count("refused"),
            "files_not_read": self.count("not read"),
            "lines_loaded": self.lines_loaded,
            "lines_rejected": self.lines_rejected,
        }


def open_maybe_gzip(stream: BinaryIO) -> tuple[BinaryIO, bool]:
    """Gzip is detected from the magic bytes, whatever the file is called."""
    buffered = (
        stream
        if isinstance(stream, io.BufferedReader)
        else io.BufferedReader(cast(io.RawIOBase, stream))
    )
    is_gzip = buffered.peek(2)[:2] == GZIP_MAGIC
    opened = gzip.GzipFile(fileobj=buffered, mode="rb") if is_gzip else buffered
    return cast(BinaryIO, opened), is_gzip


def looks_binary(head: bytes) -> bool:
    """True when the first bytes of a file (after gunzip) are not UTF-8 text."""
    head = head[:SNIFF_BYTES]
    if b"\x00" in head:
        return True
    try:  # a character cut at the end of the head is not an error
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def shown_path(uri: str) -> str:
    """`uri` printable and storable: bytes of a non-UTF-8 file name as \\xNN."""
    try:
        return uri.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return uri.encode("utf-8", "backslashreplace").decode("utf-8")


def check_line(raw: bytes) -> str | None:
    """Why `raw` is not a batch, or None when it is one."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    if not isinstance(value, dict):
        return f"not a JSON object (a batch must be an object, got {type(value).__name__})"
    return None


class _FileLoader:
    """Streams one file into the raw tables in chunks, collecting rejects."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, source_file: str, checksum: str, now: datetime
    ) -> None:
        self.con, self.source_file, self.checksum, self.now = con, source_file, checksum, now
        self.line_numbers: list[int] = []
        self.lines: list[str] = []
        self.rejections: list[Rejection] = []
        self.loaded = 0

    def add(self, line_number: int, raw: bytes) -> None:
        reason = check_line(raw)
        if reason:
            self.reject(line_number, reason, raw)
            return
        self.line_numbers.append(line_number)
        self.lines.append(raw.decode("utf-8"))
        if len(self.lines) >= CHUNK_LINES:
            self.flush()

    def reject(self, line_number: int, reason: str, raw: bytes | None) -> None:
        excerpt = raw[:EXCERPT_BYTES].decode("utf-8", "replace") if raw else None
        self.rejections.append(Rejection(self.source_file, line_number, reason, excerpt))

    def flush(self) -> None:
        if not self.lines:
            return
        n = len(self.lines)
        insert_columns(
            self.con,
            "raw.quarantine_lines",
            {
                "source_file": pa.array([self.source_file] * n),
                "line_number": pa.array(self.line_numbers, pa.int64()),
                "batch_json": pa.array(self.lines, pa.string()),
            },
            select="source_file, line_number, batch_json::json as batch_json, "
            "? as file_checksum, ? as ingested_at",
            parameters=[self.checksum, self.now],
        )
        self.loaded += n
        self.line_numbers, self.lines = [], []

    def write_rejections(self) -> None:
        if self.rejections:
            self.con.executemany(
                "insert into raw.rejected_lines values (?, ?, ?, ?, ?, ?)",
                [
                    [
                        r.source_file,
                        r.line_number,
                        r.reason,
                        r.line_excerpt,
                        self.checksum,
                        self.now,
                    ]
                    for r in self.rejections
                ],
            )


def _read_lines(fh: BinaryIO, loader: _FileLoader, is_gzip: bool) -> None:
    """Every line of `fh` to `loader`; memory stays bounded by `MAX_LINE_BYTES`."""
    limit = MAX_LINE_BYTES
    too_long = f"line too long (over {limit} bytes)"
    readline = fh.readline
    line_number = 0
    try:
        while line := readline(limit + 2):  # room for the line end
            line_number += 1
            raw = line.rstrip(b"\r\n")
            if len(raw) > limit:
                loader.reject(line_number, too_long, raw[:EXCERPT_BYTES])
                if not line.endswith(b"\n"):
                    while (rest := readline(SKIP_BYTES)) and not rest.endswith(b"\n"):
                        pass
            elif raw.strip():
                loader.add(line_number, raw)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        kind = "gzip stream truncated or corrupt" if is_gzip else "read error"
        loader.reject(
            line_number + 1,
            f"{kind} after line {line_number} ({exc}); lines after it are lost. "
            "Download the file again and re-run ingest.",
            None,
        )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    obj: SourceObject,
    now: datetime,
    *,
    fast: bool = True,
    prepared: Prepared | None = None,
) -> FileResult:
    """Load one file, in the caller's transaction. The file counts as loaded once its
    `raw.ingested_files` row is committed with its lines (DuckDB writes big appends to the
    file as they come, so memory stays flat whatever the file size). `prepared`: what a
    worker read of it (`parallel.prepare`)."""
    source_file = obj.uri
    if is_verification_file(obj.name):
        return FileResult(source_file, "skipped", note="bucket verification file")
    if shown_path(source_file) != source_file:
        return FileResult(
            shown_path(source_file), "not read", note="its name is not UTF-8; rename it"
        )
    try:
        checksum = prepared.checksum if prepared else source.fingerprint(obj)
    except OSError as exc:
        return _not_read(obj, exc)
    known = con.execute(
        "select source_file from raw.ingested_files where file_checksum = ? limit 1", [checksum]
    ).fetchall()
    if known:
        note = "" if known[0][0] == source_file else f"same content as {known[0][0]}"
        return FileResult(source_file, "unchanged", note=note)

    [(previous,)] = con.execute(
        "select count(*) from raw.ingested_files where source_file = ?", [source_file]
    ).fetchall()
    if previous:
        for table in ("quarantine_lines", "rejected_lines", "ingested_files"):
            con.execute(f"delete from raw.{table} where source_file = ?", [source_file])
    try:
        loader, is_gzip, binary, read_fast = _read(
            con, source, obj, checksum, now, fast=fast, prepared=prepared
        )
    except OSError as exc:
        return _not_read(obj, exc)
    refused = binary and loader.loaded == 0 and bool(loader.rejections)
    if refused:  # one row for the whole file, not one per "line" of a picture
        loader.rejections = [Rejection(source_file, 0, NOT_QUARANTINE, None)]
    loader.write_rejections()
    con.execute(
        "insert into raw.ingested_files values (?, ?, ?, ?, ?, ?, ?)",
        [
            source_file,
            checksum,
            obj.size,
            is_gzip,
            loader.loaded,
            len(loader.rejections),
            now,
        ],
    )
    if refused:
        return FileResult(
            source_file,
            "refused",
            lines_rejected=1,
            note=NOT_QUARANTINE,
            rejections=loader.rejections,
        )
    return FileResult(
        source_file,
        "replaced" if previous else "loaded",
        lines_loaded=loader.loaded,
        lines_rejected=len(loader.rejections),
        note="content changed since last ingest; earlier rows replaced" if previous else "",
        rejections=loader.rejections,
        fast=read_fast,
    )


def _read(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    obj: SourceObject,
    checksum: str,
    now: datetime,
    *,
    fast: bool,
    prepared: Prepared | None = None,
) -> tuple[_FileLoader, bool, bool, bool]:
    """Load the lines of `obj`: by the fast path (when `fast`) if every line is a good
    batch, else line by line. Returns the loader (counts, rejections), whether the file is
    gzipped, whether its head looks binary, and whether the fast path read it. Raises
    OSError when it cannot be opened."""
    loader = _FileLoader(con, obj.uri, checksum, now)
    if prepared and prepared.staged is not None:
        loader.loaded = insert_prepared(con, prepared, obj.uri, now)
        return loader, prepared.is_gzip, False, True
    if fast:
        with source.open(obj) as stream:
            fh, is_gzip = open_maybe_gzip(stream)
            with fh:
                loaded = load_fast(con, fh, obj.uri, checksum, now, MAX_LINE_BYTES)
        if loaded is not None:
            loader.loaded = loaded
            return loader, is_gzip, False, True
    with source.open(obj) as stream:
        fh, is_gzip = open_maybe_gzip(stream)
        with fh:
            binary = looks_binary(cast(io.BufferedReader, fh).peek(SNIFF_BYTES))
            _read_lines(fh, loader, is_gzip)
    loader.flush()
    return loader, is_gzip, binary, False


def _not_read(obj: SourceObject, exc: OSError) -> FileResult:
    """A file that could not be opened: reported, nothing recorded (the next run tries again)."""
    return FileResult(
        shown_path(obj.uri), "not read", note=f"cannot open it: {exc.strerror or exc}"
    )


def forget(con: duckdb.DuckDBPyConnection, path: str) -> tuple[str, int, int] | None:
    """Remove an ingested file's rows from the raw tables: (its recorded name, lines,
    rejected lines), or None when no ingested file is recorded under `path`.

    `path` is matched as recorded, then as a local path resolved the way ingest records it.
    """
    ensure_raw_schema(con)
    candidates = [path]
    if "://" not in path:
        candidates.append(str(Path(path).resolve()))
    for source_file in candidates:
        [(known,)] = con.execute(
            "select count(*) from raw.ingested_files where source_file = ?", [source_file]
        ).fetchall()
        if known:
            break
    else:
        return None
    counts = []
    con.begin()
    for table in ("quarantine_lines", "rejected_lines", "ingested_files"):
        [(n,)] = con.execute(
            f"select count(*) from raw.{table} where source_file = ?", [source_file]
        ).fetchall()
        counts.append(n)
        con.execute(f"delete from raw.{table} where source_file = ?", [source_file])
    con.commit()
    return source_file, counts[0], counts[1]


def remove_incomplete_loads(con: duckdb.DuckDBPyConnection) -> None:
    """Drop lines of a file whose load was interrupted; the file loads again in full."""
    for table in ("quarantine_lines", "rejected_lines"):
        con.execute(
            f"delete from raw.{table} where file_checksum not in "
            "(select file_checksum from raw.ingested_files)"
        )


def ingest(
    con: duckdb.DuckDBPyConnection,
    arguments: Iterable[str],
    on_file: Callable[[FileResult], None] | None = None,
    *,
    fast: bool = True,
) -> IngestSummary:
    """Load every file that `arguments` name into the raw tables (`fast`: try the fast
    path first; without it every line is read by the careful path)."""
    return ingest_source(con, source_for(arguments), on_file, fast=fast)


def ingest_source(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    on_file: Callable[[FileResult], None] | None = None,
    *,
    fast: bool = True,
) -> IngestSummary:
    """Load every file of `source` into the raw tables."""
    ensure_raw_schema(con)
    # Checkpoint (compress and rewrite) less often: a checkpoint per file dominates the
    # run. (Memory is capped where the connection is opened: loader.warehouse.open_duckdb.)
    con.execute("set checkpoint_threshold = '128MB'")
    con.execute("set preserve_insertion_order = false")  # lines carry their numbers
    remove_incomplete_loads(con)
    now = datetime.now(UTC)
    summary = IngestSummary()
    if isinstance(source, ReadsAhead):
        loaded = con.execute("select file_checksum from raw.ingested_files").fetchall()
        source.read_ahead({checksum for (checksum,) in loaded})
    pending: list[FileResult] = []  # loaded in the open transaction, reported once committed
    pending_bytes = staged_lines = staged_bytes = 0
    con.begin()
    try:
        with (
            staging_folder(con) as folder,
            contextlib.closing(_objects(con, source, folder, fast=fast)) as objects,
        ):
            for obj, prepared in objects:
                try:
                    result = _ingest_one(con, source, obj, now, fast=fast, prepared=prepared)
                finally:
                    if prepared:
                        prepared.discard()
                pending.append(result)
                inserted = result.status in ("loaded", "replaced")
                if inserted and prepared and prepared.staged:
                    staged_lines += prepared.lines
                    staged_bytes += prepared.text_bytes
                elif inserted:
                    pending_bytes += obj.size
                if (
                    pending_bytes >= COMMIT_BYTES
                    or staged_lines >= COMMIT_STAGED_LINES
                    or staged_bytes >= COMMIT_STAGED_BYTES
                ):
                    _commit(con, pending, summary, on_file)
                    pending_bytes = staged_lines = staged_bytes = 0
                    con.begin()
        _commit(con, pending, summary, on_file)
    except BaseException:
        # the files of the open transaction are read again next time (none is open when
        # the error came from reporting files just committed)
        with contextlib.suppress(duckdb.TransactionException):
            con.rollback()
        raise
    finally:
        if isinstance(source, ReadsAhead):
            source.close()
    return summary


def _objects(
    con: duckdb.DuckDBPyConnection, source: Source, folder: Path, *, fast: bool
) -> Generator[tuple[SourceObject, Prepared | None], None, None]:
    """The objects of `source` in order; local files read ahead on every core (`parallel`),
    staged in `folder`."""
    if not (fast and isinstance(source, LocalFiles)):
        for obj in source.objects():
            yield obj, None
        return
    objects = list(source.objects())
    if sum(obj.size for obj in objects) < parallel.PARALLEL_MIN_BYTES:
        for obj in objects:
            yield obj, None
        return
    loaded = con.execute("select file_checksum from raw.ingested_files").fetchall()
    yield from prepared_in_order(objects, {c for (c,) in loaded}, MAX_LINE_BYTES, folder)


def _ingest_one(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    obj: SourceObject,
    now: datetime,
    *,
    fast: bool,
    prepared: Prepared | None = None,
) -> FileResult:
    """`ingest_file`, with an object that could not be read whole reported, none of it kept."""
    try:
        return ingest_file(con, source, obj, now, fast=fast, prepared=prepared)
    except ObjectReadError as exc:
        for table in ("quarantine_lines", "rejected_lines"):
            con.execute(f"delete from raw.{table} where source_file = ?", [obj.uri])
        return FileResult(obj.uri, "not read", note=exc.reason)


def _commit(
    con: duckdb.DuckDBPyConnection,
    pending: list[FileResult],
    summary: IngestSummary,
    on_file: Callable[[FileResult], None] | None,
) -> None:
    """Commit the files loaded since the last commit, then report them."""
    con.commit()
    for result in pending:
        summary.files.append(result)
        summary.rejections.extend(result.rejections)
        if on_file:
            on_file(result)
    pending.clear()
