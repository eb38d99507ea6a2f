"""The HTTP core every local stand-in is built on, so each gets the same hardening.

- Slots: at most `MAX_CONCURRENT_REQUESTS` requests are handled at once; another waits up
  to `SLOT_WAIT_S` for a slot, then gets the stand-in's busy answer (a 503 with
  `Retry-After: 1`), its body unread and the connection closed.
- Bounded reads: a body (by Content-Length or chunked) over `max_read` bytes is not read
  at all (the connection is closed); one over `max_held` bytes is read to its end but not
  kept (`BodyTooLarge`: the stand-in answers 413 and the connection stays usable); a bad
  chunk size is `BadChunk` (the stand-in answers 400 and closes: where the body ends is
  unknown); a client gone mid-body is `ClientGone`.
- gzip bodies decoded with a limit (`gunzip_bounded`).
- Recording: a DuckDB record file opened with a clear error when another process holds it
  (`open_record`), rows buffered and written in blocks (`BufferedRows`).
- Serving in a background thread, with open connections cut when the stand-in stops
  (`serving`).
- The direct destinations' stand-ins' faults: their settings checked (`check_faults`),
  a random fault drawn (`draw_fault`), and the requests counted by status for their
  closing summary (`requests_summary`).
"""

from __future__ import annotations

import collections
import contextlib
import random
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar

import duckdb

from loader.errors import LoaderError
from loader.warehouse import insert_columns, open_duckdb

HOST = "127.0.0.1"
READ_BLOCK_BYTES = 64 * 1024
MAX_READ_BYTES = 64 * 1024 * 1024  # a stand-in reads no larger body: it closes the connection
MAX_CONCURRENT_REQUESTS = 8
SLOT_WAIT_S = 30.0
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")  # a chunk size line, extensions cut off
# the answers a direct destination's stand-in can be scripted to give its first requests
SCRIPT_ENTRIES = ("429", "503", "drop", "drop-after", "200")


class EmulatorError(LoaderError):
    """A stand-in could not start (port in use, record file locked, bad settings)."""


class ClientGone(Exception):
    """The client went away mid-body, or sent more than is ever read: close, no answer."""


class BadChunk(Exception):
    """A chunked body with a chunk size that is not hex: answer 400 and close."""


class BodyTooLarge(Exception):
    """The body was read to its end but is over what a stand-in holds: answer 413."""

    def __init__(self, size: int) -> None:
        super().__init__(f"request body is {size} bytes")
        self.size = size


@dataclass
class Reply:
    """An answer: status, body bytes, extra headers; `events` counts what it accepted."""

    status: int
    payload: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    events: int = 0


def read_body(handler: BaseHTTPRequestHandler, *, max_held: int, max_read: int) -> bytes | None:
    """The request body (Content-Length or chunked), or None when it has neither.

    Raises `ClientGone`, `BadChunk` (after setting the connection to close) or
    `BodyTooLarge` (the body drained) as the module docstring says.
    """
    rfile = handler.rfile
    held: list[bytes] = []
    total = 0

    def take(n: int) -> None:
        nonlocal total
        while n > 0:
            data = rfile.read(min(n, READ_BLOCK_BYTES))
            if not data:
                raise ClientGone
            n -= len(data)
            total += len(data)
            if total <= max_held:
                held.append(data)
            else:
                held.clear()

    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        while True:
            line = rfile.readline(1024)
            if not line:
                raise ClientGone
            text = line.split(b";", 1)[0].strip()
            if not CHUNK_SIZE.fullmatch(text):
                handler.close_connection = True
                raise BadChunk(
                    f"bad chunk size {text.decode('ascii', 'backslashreplace')!r} in a chunked body"
                )
            size = int(text, 16)
            if size == 0:
                while rfile.readline(1024).strip():
                    pass  # trailers
                break
            if total + size > max_read:
                raise ClientGone
            take(size)
            rfile.readline(1024)
    else:
        length = handler.headers.get("Content-Length")
        if length is None:
            return None
        try:
            n = int(length)
        except ValueError:
            raise ClientGone from None
        if n < 0 or n > max_read:
            raise ClientGone
        take(n)
    if total > max_held:
        raise BodyTooLarge(total)
    return b"".join(held)


def gunzip_bounded(body: bytes, limit: int) -> bytes | None:
    """`body` gzip-decoded, or None when it decodes to more than `limit` bytes.

    Raises `zlib.error` when it is not gzip.
    """
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    data = decoder.decompress(body, limit + 1)
    return None if len(data) > limit else data


def safe_headers(headers: Any) -> dict[str, str]:
    """Request headers without credential values."""
    return {
        name: ("<redacted>" if name.lower() in ("authorization", "proxy-authorization") else value)
        for name, value in headers.items()
    }


class StandInServer(ThreadingHTTPServer):
    """A threading server on 127.0.0.1 with request slots and tracked connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], owner: Any) -> None:
        self.owner = owner  # the stand-in's state, for its handler
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        try:
            super().__init__((HOST, port), handler)
        except OSError as exc:
            raise EmulatorError(
                f"cannot listen on {HOST}:{port} ({exc.strerror}); "
                "pick another port or use port 0 for a free one"
            ) from None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and cut the connections still open."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)


class StandInHandler(BaseHTTPRequestHandler):
    """A POST handler that takes a slot first; subclasses write `post` and `busy`."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds an idle keep-alive connection stays open
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: StandInServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # each stand-in keeps its own request log

    def do_POST(self) -> None:  # noqa: N802
        if not self.server.slots.acquire(timeout=SLOT_WAIT_S):
            self.close_connection = True
            return self.send_reply(self.busy())
        try:
            self.post()
        finally:
            self.server.slots.release()

    def post(self) -> None:
        raise NotImplementedError

    def busy(self) -> Reply:
        """The answer when every slot is taken (sent with Connection: close)."""
        raise NotImplementedError

    def send_reply(self, reply: Reply, content_type: str = "application/json") -> None:
        self.send_response(reply.status)
        if reply.payload:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(reply.payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection and "Connection" not in reply.headers:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.payload:
            self.wfile.write(reply.payload)

    def drop(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def open_record(path: Path, ddl: str) -> duckdb.DuckDBPyConnection:
    """The record file at `path`, its tables created; a clear error when it is in use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = open_duckdb(path)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise EmulatorError(
                f"{path} is in use by another process (another emulator, or a reader). "
                "Stop it or pass another --db file."
            ) from None
        raise EmulatorError(f"cannot open {path}: {exc}") from None
    con.execute(ddl).fetchall()
    return con


class BufferedRows:
    """Rows for a record file's tables, written in blocks (a thousand rows at once cost a
    fraction of inserting them one request at a time). Callers serialise access."""

    FLUSH_ROWS = 1000
    FLUSH_SECONDS = 1.0

    def __init__(self, con: duckdb.DuckDBPyConnection, tables: dict[str, dict[str, Any]]) -> None:
        self.con = con
        self.tables = tables  # table -> {column: pyarrow type}
        self.pending: dict[str, list[tuple[Any, ...]]] = {table: [] for table in tables}
        self._flushed = time.monotonic()

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.pending[table].append(row)

    def maybe_flush(self) -> None:
        rows = sum(len(p) for p in self.pending.values())
        if rows >= self.FLUSH_ROWS or time.monotonic() - self._flushed >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        for table, rows in self.pending.items():
            if not rows:
                continue
            columns = self.tables[table]
            values = zip(*rows, strict=True)
            arrays = {
                name: pa.array(column, type=kind)
                for (name, kind), column in zip(columns.items(), values, strict=True)
            }
            insert_columns(self.con, table, arrays)
            self.pending[table] = []
        self._flushed = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.con.execute("checkpoint").fetchall()
        self.con.close()


def arrow_columns(**kinds: str) -> dict[str, Any]:
    """Column name -> pyarrow type, from short kind names."""
    import pyarrow as pa

    types = {
        "timestamp": pa.timestamp("us", tz="UTC"),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "string": pa.string(),
        "strings": pa.list_(pa.string()),
    }
    return {name: types[kind] for name, kind in kinds.items()}


def wait_for_stop(
    stop: threading.Event, url: str, url_file: Path | None, on_ready: Callable[[], object]
) -> None:
    """Write `url` to `url_file` (atomically; removed at the end), call `on_ready`, then
    wait until `stop` is set."""
    if url_file is not None:
        partial = url_file.with_name(url_file.name + ".partial")
        partial.write_text(url + "\n")
        partial.replace(url_file)
    try:
        on_ready()
        while not stop.wait(0.2):
            pass
    finally:
        if url_file is not None:
            url_file.unlink(missing_ok=True)


class _Serves(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


StandInT = TypeVar("StandInT", bound=_Serves)


@contextlib.contextmanager
def serving(stand_in: StandInT) -> Iterator[StandInT]:
    """`stand_in` started for the duration of the block, and stopped after it."""
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def check_faults(shares: tuple[float, float, float], script: Iterable[str]) -> None:
    """Refuse shares of faults (429, 503, drop) outside [0, 1] or summing to over 1, and
    script entries other than `SCRIPT_ENTRIES`."""
    if any(not 0.0 <= s <= 1.0 for s in shares) or sum(shares) > 1.0:
        raise EmulatorError("the shares of faults must be in [0, 1] and sum to at most 1")
    unknown = [e for e in script if e not in SCRIPT_ENTRIES]
    if unknown:
        raise EmulatorError(
            f"unknown script entries {', '.join(unknown)}; use {', '.join(SCRIPT_ENTRIES)}"
        )


def draw_fault(rng: random.Random, shares: tuple[float, float, float]) -> str | None:
    """A random fault by its shares (429, 503, drop): "429", "503", "drop-after" or None."""
    draw = rng.random()
    for name, share in zip(("429", "503", "drop-after"), shares, strict=True):
        if draw < share:
            return name
        draw -= share
    return None


def requests_summary(statuses: Iterable[int]) -> str:
    """How many requests and their answers by status: '3 requests (2x200, 1x429)'."""
    counts = collections.Counter(statuses)
    answered = ", ".join(f"{n}x{s}" for s, n in sorted(counts.items()))
    return f"{counts.total()} requests ({answered or 'none'})"
