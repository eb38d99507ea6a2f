"""A local stand-in for mParticle's Events API: checks batches, injects faults, records.

Serves `POST /v2/events`, `/v2/bulkevents` and `/v2/bulkevents/historical` on 127.0.0.1
with HTTP Basic auth. A request first meets the next scripted response, if any (see
`Emulator.script`); otherwise, in order: auth (401 without credentials, 403 with wrong
ones), a random fault (`share_429`, `share_503`, `share_drop`), the checks of
`loader.events_api.batch_rules`, the rate limit (429 with `Retry-After`), de-duplication, recording.
`latency_ms` delays every answer.

Choices where mParticle is opaque or lenient:
- Strict: a request with any invalid batch is refused whole (400 with mParticle's error
  body, one error per bad batch naming batch, event and field) and nothing in it is
  accepted. mParticle answers a bulk request 202 and drops bad batches silently.
- A body over 256 KB gets 413 (with the same error body shape); too many batches or a
  batch over 128 KB gets 400.
- A batch whose `source_request_id` was already accepted (by this run or one recorded in
  the same database file) is acknowledged with 202 but not recorded again.
- `share_drop` closes the connection without an answer *after* processing the request
  (the ambiguous timeout case); the scripted "drop" closes it before processing.
- Hostile clients: at most `MAX_CONCURRENT_REQUESTS` requests are handled at once (others
  wait for a slot, then get a 503); a body over `MAX_HELD_BYTES` is read but not kept
  (413); a bad chunk size is a 400.

With `db_path`, accepted batches go to a DuckDB file: table `received_batches` (one row
a batch, `batch_json` re-serialised compactly by orjson: same values, same key order,
integers exact), view `received_events` (one row an event) and table `received_requests`
(one row a request, with its status). The server process holds the file read-write
until it stops.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import math
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from loader.emulator.http_core import (
    HOST,
    MAX_CONCURRENT_REQUESTS,
    MAX_READ_BYTES,
    BadChunk,
    BodyTooLarge,
    BufferedRows,
    ClientGone,
    EmulatorError,
    Reply,
    StandInHandler,
    StandInServer,
    arrow_columns,
    gunzip_bounded,
    open_record,
    read_body,
    safe_headers,
    serving,
    wait_for_stop,
)
from loader.events_api.batch_rules import check_request, check_request_size, mpid_text
from loader.events_api.errors import error_body
from loader.events_api.limits import ACCOUNT_RATE_LIMIT, MAX_REQUEST_BYTES

__all__ = [
    "HOST",
    "MAX_CONCURRENT_REQUESTS",
    "Emulator",
    "EmulatorConfig",
    "EmulatorError",
    "running_emulator",
    "serve",
    "wait_for_stop",
]
ENDPOINTS = {
    "/v2/events": False,
    "/v2/bulkevents": True,
    "/v2/bulkevents/historical": True,
}
# Bodies over this are read to their end but not kept (a 413): even gzipped, such a body
# decodes to more than the 256 KB a request may hold. A request holds at most this much.
MAX_HELD_BYTES = 2 * MAX_REQUEST_BYTES
# Slots (MAX_CONCURRENT_REQUESTS), bounded and chunked reads: loader.emulator.http_core.

RECORD_DDL = """
create table if not exists received_batches (
    received_at timestamptz not null,
    request_number bigint not null,
    batch_index integer not null,
    source_request_id varchar,
    endpoint varchar not null,
    mpid varchar,
    n_events integer not null,
    batch_json json not null
);
create table if not exists received_requests (
    received_at timestamptz not null,
    request_number bigint not null,
    method varchar not null,
    endpoint varchar not null,
    status integer,
    n_batches integer,
    n_accepted integer,
    n_duplicates integer,
    body_bytes bigint,
    fault varchar,
    errors varchar[]
);
create or replace view received_events as
with unnested as (
    select
        received_at,
        source_request_id,
        endpoint,
        mpid,
        unnest(range(json_array_length(batch_json, '$.events')::bigint)) as event_index,
        unnest(cast(batch_json -> '$.events' as json[])) as event_json,
    from received_batches
)
select
    received_at,
    source_request_id,
    endpoint,
    mpid,
    event_index,
    event_json ->> '$.event_type' as event_type,
    event_json ->> '$.data.event_name' as event_name,
    cast(event_json ->> '$.data.timestamp_unixtime_ms' as bigint) as timestamp_unixtime_ms,
    event_json,
from unnested;
"""


BATCH_COLUMNS = arrow_columns(
    received_at="timestamp",
    request_number="int64",
    batch_index="int32",
    source_request_id="string",
    endpoint="string",
    mpid="string",
    n_events="int32",
    batch_json="string",
)
REQUEST_COLUMNS = arrow_columns(
    received_at="timestamp",
    request_number="int64",
    method="string",
    endpoint="string",
    status="int32",
    n_batches="int32",
    n_accepted="int32",
    n_duplicates="int32",
    body_bytes="int64",
    fault="string",
    errors="strings",
)


@dataclass
class EmulatorConfig:
    """How the emulator answers. Shares are probabilities in [0, 1], drawn from `seed`."""

    api_key: str = "key"
    api_secret: str = "secret"
    db_path: Path | None = None
    latency_ms: int = 0
    rate_limit: float | None = None
    share_429: float = 0.0
    share_503: float = 0.0
    share_drop: float = 0.0
    seed: int = 0
    port: int = 0
    retry_after_s: int = 1  # Retry-After of random 429s
    reset_db: bool = False  # empty the record file's tables first
    keep_in_memory: bool = True  # keep accepted batches for `Emulator.accepted()`

    def __post_init__(self) -> None:
        for name in ("share_429", "share_503", "share_drop"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise EmulatorError(f"{name} must be between 0 and 1 (got {share})")
        if self.share_429 + self.share_503 + self.share_drop > 1.0:
            raise EmulatorError("share_429 + share_503 + share_drop must not exceed 1")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise EmulatorError(f"rate_limit must be positive (got {self.rate_limit})")
        if self.latency_ms < 0:
            raise EmulatorError(f"latency_ms must not be negative (got {self.latency_ms})")

    def __repr__(self) -> str:  # never show the secret
        return f"EmulatorConfig(api_key={self.api_key!r}, api_secret='***', db_path={self.db_path})"


@dataclass
class RequestRecord:
    """One request as the emulator saw it. Authorization values are never kept."""

    number: int
    method: str
    path: str
    status: int | None  # None when the connection was dropped without an answer
    n_batches: int
    body_bytes: int
    headers: dict[str, str]
    time: float
    fault: str | None = None
    errors: list[str] = field(default_factory=list)
    n_accepted: int = 0
    n_duplicates: int = 0


@dataclass(frozen=True)
class Scripted:
    kind: str  # "429", "429-accel", "503", "400", "401", "403", "drop", "drop-after", "slow", "202"
    seconds: float | None = None

    @property
    def label(self) -> str:
        return self.kind if self.seconds is None else f"{self.kind}:{self.seconds:g}"


def parse_script_entry(entry: str) -> Scripted:
    """Turn "429:2", "slow:1.5", "drop", ... into a `Scripted` response; ValueError if unknown."""
    kind, _, arg = entry.partition(":")
    if kind in ("429", "slow") and arg:
        try:
            seconds = float(arg)
        except ValueError:
            raise ValueError(f"bad script entry {entry!r}: {arg!r} is not a number") from None
        if seconds < 0:
            raise ValueError(f"bad script entry {entry!r}: negative seconds")
        return Scripted(kind, seconds)
    if kind == "slow":
        raise ValueError(f"bad script entry {entry!r}: say how long, e.g. slow:1.5")
    if arg or kind not in (
        "429",
        "429-accel",
        "503",
        "400",
        "401",
        "403",
        "drop",
        "drop-after",
        "202",
    ):
        raise ValueError(
            f"bad script entry {entry!r}; expected one of 429, 429:N, 429-accel, 503, 400, "
            "401, 403, drop, drop-after, slow:S, 202"
        )
    return Scripted(kind)


class TokenBucket:
    """A batches/s limit: a request needs as many tokens as it has batches (up to a burst)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self, n: int) -> float:
        """Take `n` tokens and return 0, or return the seconds to wait before trying again."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        needed = min(n, self.capacity)  # a request bigger than the burst may overdraw
        if self.tokens >= needed:
            self.tokens -= n
            return 0.0
        return (needed - self.tokens) / self.rate


class Recorder:
    """Accepted batches and request log: in memory and, optionally, in a DuckDB file.

    Rows for the file are buffered and written in blocks (`http_core.BufferedRows`);
    `close` writes the rest. Nothing else can open the file while the emulator holds it,
    so the buffer is never visible to a reader.
    """

    def __init__(self, db_path: Path | None, *, reset: bool, keep_in_memory: bool) -> None:
        self.lock = threading.Lock()
        self.keep_in_memory = keep_in_memory
        self.batches: list[bytes] = []
        self.ids: set[str] = set()
        self.request_offset = 0
        self.con: duckdb.DuckDBPyConnection | None = None
        self.rows: BufferedRows | None = None
        if db_path is None:
            return
        self.con = _open_record(db_path)
        if reset:
            self.con.execute("delete from received_batches; delete from received_requests")
            self.con.fetchall()
        rows = self.con.execute(
            "select distinct source_request_id from received_batches "
            "where source_request_id is not null"
        ).fetchall()
        self.ids.update(row[0] for row in rows)
        [(self.request_offset,)] = self.con.execute(
            "select coalesce(max(request_number), 0) from received_requests"
        ).fetchall()
        self.rows = BufferedRows(
            self.con, {"received_batches": BATCH_COLUMNS, "received_requests": REQUEST_COLUMNS}
        )

    def accept(
        self, batches: list[dict[str, Any]], endpoint: str, request_number: int
    ) -> tuple[int, int, int]:
        """Record new batches; return (accepted, duplicates, events). Caller holds `lock`."""
        now = datetime.now(UTC)
        accepted = duplicates = events = 0
        for position, batch in enumerate(batches):
            request_id = batch.get("source_request_id")
            if request_id is not None:
                if request_id in self.ids:
                    duplicates += 1
                    continue
                self.ids.add(request_id)
            text = orjson.dumps(batch)
            n_events = len(batch.get("events") or [])
            accepted += 1
            events += n_events
            if self.keep_in_memory:
                self.batches.append(text)
            if self.rows is not None:
                mpid = batch.get("mpid")
                self.rows.add(
                    "received_batches",
                    (
                        now,
                        request_number,
                        position,
                        request_id,
                        endpoint,
                        None if mpid is None else mpid_text(mpid),
                        n_events,
                        text.decode(),
                    ),
                )
        return accepted, duplicates, events

    def log_request(self, record: RequestRecord) -> None:
        """Add one request to the record file's log. Caller holds `lock`."""
        if self.rows is None:
            return
        self.rows.add(
            "received_requests",
            (
                datetime.fromtimestamp(record.time, UTC),
                record.number,
                record.method,
                record.path,
                record.status,
                record.n_batches,
                record.n_accepted,
                record.n_duplicates,
                record.body_bytes,
                record.fault,
                record.errors,
            ),
        )
        self.rows.maybe_flush()

    def flush(self) -> None:
        """Write buffered rows to the file. Caller holds `lock`."""
        if self.rows is not None:
            self.rows.flush()

    def close(self) -> None:
        with self.lock:
            if self.rows is not None:
                self.rows.close()
                self.rows = None
                self.con = None


def _open_record(path: Path) -> duckdb.DuckDBPyConnection:
    return open_record(path, RECORD_DDL)


class Emulator:
    """The server and its state. Use `running_emulator` to start and stop it."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._expected = "Basic " + base64.b64encode(
            f"{config.api_key}:{config.api_secret}".encode()
        ).decode("ascii")
        self._lock = threading.Lock()  # script, rng, bucket, request log, counters
        self._script: deque[Scripted] = deque()
        self._rng = random.Random(config.seed)
        self._bucket = TokenBucket(config.rate_limit) if config.rate_limit else None
        self._recent: deque[tuple[float, int]] = deque()
        self._requests: list[RequestRecord] = []
        self._request_count = 0  # continues the record file's numbering, see below
        self._stopping = threading.Event()
        self.counts = {
            "requests": 0,
            "accepted_batches": 0,
            "accepted_events": 0,
            "duplicate_batches": 0,
            "invalid_requests": 0,
            "invalid_batches": 0,
            "dropped_connections": 0,
        }
        self.statuses: dict[int, int] = {}
        self.recorder = Recorder(
            config.db_path, reset=config.reset_db, keep_in_memory=config.keep_in_memory
        )
        self._request_count = self.recorder.request_offset
        try:
            self.server = StandInServer(config.port, _Handler, self)
        except EmulatorError:
            self.recorder.close()
            raise

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v2"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """Stop serving, cut open connections, and flush and close the record file."""
        self._stopping.set()
        self.server.stop()
        self.recorder.close()

    def script(self, entries: list[str]) -> None:
        """Force the responses to the next requests, in order (see the module docstring)."""
        parsed = [parse_script_entry(entry) for entry in entries]
        with self._lock:
            self._script.extend(parsed)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def accepted(self) -> list[dict[str, Any]]:
        """Accepted batches in arrival order (duplicates not repeated), ints exact.

        Empty when the config says `keep_in_memory=False` (read the record file instead).
        """
        with self.recorder.lock:
            texts = list(self.recorder.batches)
        return [orjson.loads(text) for text in texts]

    def accepted_source_request_ids(self) -> set[str]:
        with self.recorder.lock:
            return set(self.recorder.ids)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counts, "statuses": {str(k): v for k, v in self.statuses.items()}}

    def describe(self) -> list[str]:
        """Lines saying where the emulator listens and how it answers (never the secret)."""
        config = self.config
        lines = [f"Events API emulator listening on {self.base_url}"]
        lines.append(f"  auth: HTTP Basic, API key {config.api_key!r} and its secret")
        if config.db_path is not None:
            lines.append(
                f"  recording accepted batches to {config.db_path} (tables received_batches, "
                "received_requests; view received_events)"
            )
        else:
            lines.append("  not recording to a file (use --db PATH to keep what arrives)")
        faults = [
            f"{label} {share:.0%}"
            for label, share in (
                ("429", config.share_429),
                ("503", config.share_503),
                ("dropped after processing", config.share_drop),
            )
            if share
        ]
        if config.latency_ms:
            faults.append(f"latency {config.latency_ms} ms")
        if config.rate_limit:
            faults.append(f"rate limit {config.rate_limit:g} batches/s")
        if faults:
            lines.append(f"  faults: {', '.join(faults)} (seed {config.seed})")
        with self._lock:
            if self._script:
                lines.append(f"  scripted responses: {', '.join(s.label for s in self._script)}")
        return lines

    def summary(self) -> str:
        """One line: requests by status, what was accepted, duplicates, refusals, drops."""
        stats = self.stats()
        by_status = ", ".join(f"{code}: {n}" for code, n in sorted(stats["statuses"].items()))
        return (
            f"{stats['requests']} requests ({by_status or 'none'}); "
            f"accepted {stats['accepted_batches']} batches, {stats['accepted_events']} events; "
            f"{stats['duplicate_batches']} duplicate batches acknowledged; "
            f"{stats['invalid_requests']} requests refused as invalid "
            f"({stats['invalid_batches']} bad batches); "
            f"{stats['dropped_connections']} connections dropped"
        )

    # Request handling (called from handler threads).

    def next_fault(self) -> Scripted | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def random_fault(self) -> str | None:
        config = self.config
        if not (config.share_429 or config.share_503 or config.share_drop):
            return None
        with self._lock:
            draw = self._rng.random()
        if draw < config.share_429:
            return "429"
        if draw < config.share_429 + config.share_503:
            return "503"
        if draw < config.share_429 + config.share_503 + config.share_drop:
            return "drop-after"
        return None

    def authorized(self, header: str | None) -> int | None:
        """None when the credentials match, else 401 (missing/unreadable) or 403 (wrong)."""
        if not header or not header.startswith("Basic "):
            return 401
        try:
            base64.b64decode(header[6:], validate=True)
        except (binascii.Error, ValueError):
            return 401
        if hmac.compare_digest(header.encode(), self._expected.encode()):
            return None
        return 403

    def rate_wait(self, n_batches: int) -> float:
        if self._bucket is None:
            return 0.0
        with self._lock:
            return self._bucket.take(max(n_batches, 1))

    def percentage_used(self, n_batches: int) -> int:
        limit = self.config.rate_limit or ACCOUNT_RATE_LIMIT
        now = time.monotonic()
        with self._lock:
            self._recent.append((now, n_batches))
            while self._recent and self._recent[0][0] < now - 1.0:
                self._recent.popleft()
            used = sum(n for _, n in self._recent)
        return min(100, round(100 * used / limit))

    def next_number(self) -> int:
        with self._lock:
            self._request_count += 1
            return self._request_count

    def accept(
        self, batches: list[dict[str, Any]], endpoint: str, number: int
    ) -> tuple[int, int, int]:
        """Record new batches; return (accepted, duplicates, events in accepted batches)."""
        with self.recorder.lock:
            if self._stopping.is_set():
                raise ConnectionAbortedError("emulator is stopping")
            return self.recorder.accept(batches, endpoint, number)

    def finish(self, record: RequestRecord, events: int = 0) -> None:
        with self._lock:
            self._requests.append(record)
            self.counts["requests"] += 1
            if record.status is None:
                self.counts["dropped_connections"] += 1
            else:
                self.statuses[record.status] = self.statuses.get(record.status, 0) + 1
            self.counts["accepted_batches"] += record.n_accepted
            self.counts["accepted_events"] += events
            self.counts["duplicate_batches"] += record.n_duplicates
            if record.status in (400, 413) and record.errors:
                self.counts["invalid_requests"] += 1
                self.counts["invalid_batches"] += sum(
                    message.startswith("batch ") for message in record.errors
                )
        with self.recorder.lock:
            self.recorder.log_request(record)

    def pause(self, seconds: float) -> None:
        """Sleep, but wake up when the emulator stops."""
        if seconds > 0:
            self._stopping.wait(seconds)


_Reply = Reply


def _forced_reply(fault: Scripted) -> _Reply:
    """The answer to a scripted (or random) fault that skips normal handling."""
    kind = fault.kind
    if kind == "429":
        headers = {} if fault.seconds is None else {"Retry-After": f"{fault.seconds:g}"}
        return _Reply(429, error_body("TOO_MANY_REQUESTS", "rate limit exceeded"), headers)
    if kind == "429-accel":
        return _Reply(
            429,
            error_body("TOO_MANY_REQUESTS", "rate limit exceeded (acceleration)"),
            {"X-mp-rate-limit-exceeded": "acceleration"},
        )
    if kind == "503":
        return _Reply(503, error_body("SERVICE_UNAVAILABLE", "service unavailable"))
    if kind == "400":
        return _Reply(
            400,
            error_body("BAD_REQUEST", 'Required event field "event_type" is missing or empty.'),
        )
    if kind == "401":
        return _Reply(401, error_body("UNAUTHORIZED", "missing or unreadable credentials"))
    if kind == "403":
        return _Reply(403, error_body("FORBIDDEN", "wrong API key or secret"))
    raise ValueError(f"no forced reply for {kind}")


def _decode(encoding: str | None, body: bytes) -> bytes | _Reply:
    """The body after Content-Encoding (identity or gzip), stopping past the size limit."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        return _Reply(
            415, error_body("UNSUPPORTED_MEDIA_TYPE", f"unsupported Content-Encoding {encoding}")
        )
    try:
        data = gunzip_bounded(body, MAX_REQUEST_BYTES)
    except zlib.error as exc:
        return _Reply(400, error_body("BAD_REQUEST", f"body is not valid gzip ({exc})"))
    if data is None:
        return _Reply(
            413,
            error_body(
                "REQUEST_TOO_LARGE",
                f"request body is over {MAX_REQUEST_BYTES} bytes after gzip decoding; "
                f"the limit is {MAX_REQUEST_BYTES} bytes (256 KB)",
            ),
        )
    return data


class _Handler(StandInHandler):
    server_version = "mParticleEmulator/1"

    def version_string(self) -> str:
        return self.server_version

    @property
    def emulator(self) -> Emulator:
        owner: Emulator = self.server.owner
        return owner

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") == "/_emulator/stats":
            self._send(_Reply(200, orjson.dumps(self.emulator.stats())))
        else:
            self._send(_Reply(404, error_body("NOT_FOUND", f"no such resource: GET {self.path}")))

    def post(self) -> None:
        self._post(self.emulator)

    def busy(self) -> Reply:
        """Too many requests at once: 503 without reading the body, and close."""
        emulator = self.emulator
        record = RequestRecord(
            number=emulator.next_number(),
            method="POST",
            path=self.path.split("?", 1)[0].rstrip("/"),
            status=503,
            n_batches=0,
            body_bytes=0,
            headers=safe_headers(self.headers),
            time=time.time(),
            fault="busy",
        )
        emulator.finish(record)
        message = (
            f"the emulator is serving {MAX_CONCURRENT_REQUESTS} requests already; try again later"
        )
        return _Reply(
            503,
            error_body("SERVICE_UNAVAILABLE", message),
            {"Retry-After": "1", "Connection": "close"},
        )

    def _post(self, emulator: Emulator) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        record = RequestRecord(
            number=emulator.next_number(),
            method="POST",
            path=path,
            status=None,
            n_batches=0,
            body_bytes=0,
            headers=safe_headers(self.headers),
            time=time.time(),
        )
        try:
            body = self._read_body(record)
        except (ClientGone, OSError):
            record.fault = "unreadable body"
            return self._drop(emulator, record, 0)
        if isinstance(body, _Reply):  # a bad chunk size, or a body too large to hold
            record.status = body.status
            record.errors = [orjson.loads(body.payload)["errors"][0]["message"]]
            emulator.finish(record)
            return self._send(body)
        record.body_bytes = len(body or b"")

        forced = emulator.next_fault()
        if forced is not None:
            record.fault = forced.label
        if forced is not None and forced.kind == "drop":
            return self._drop(emulator, record, 0)
        if forced is not None and forced.kind not in ("202", "drop-after", "slow"):
            reply = _forced_reply(forced)
        else:
            try:
                reply = self._process(emulator, path, body, record, random_faults=forced is None)
            except ConnectionAbortedError:
                return self._drop(emulator, record, 0)
            except Exception as exc:  # a bug or a record-file failure: say so, keep serving
                record.errors = [f"emulator error: {type(exc).__name__}: {exc}"]
                reply = _Reply(500, error_body("INTERNAL_ERROR", *record.errors))
        if record.fault == "drop-after":
            return self._drop(emulator, record, reply.events)
        slow = forced.seconds if forced is not None and forced.kind == "slow" else 0.0
        emulator.pause((slow or 0.0) + emulator.config.latency_ms / 1000)
        record.status = reply.status
        emulator.finish(record, reply.events)
        self._send(reply)

    def _process(
        self,
        emulator: Emulator,
        path: str,
        body: bytes | None,
        record: RequestRecord,
        *,
        random_faults: bool,
    ) -> _Reply:
        """Normal handling: endpoint, auth, random fault, body checks, rate limit, record.

        A random "drop-after" is only noted in `record.fault`: the caller drops the
        connection once the request is processed.
        """
        if path not in ENDPOINTS:
            return _Reply(404, error_body("NOT_FOUND", f"no such endpoint: POST {path}"))
        denied = emulator.authorized(self.headers.get("Authorization"))
        if denied == 401:
            reply = _forced_reply(Scripted("401"))
            reply.headers["WWW-Authenticate"] = 'Basic realm="mParticle"'
            return reply
        if denied == 403:
            return _forced_reply(Scripted("403"))
        fault = emulator.random_fault() if random_faults else None
        if fault is not None:
            record.fault = fault
            if fault == "429":
                return _forced_reply(Scripted("429", float(emulator.config.retry_after_s)))
            if fault == "503":
                return _forced_reply(Scripted("503"))
        if body is None:
            return _Reply(411, error_body("BAD_REQUEST", "a Content-Length header is required"))
        decoded = _decode(self.headers.get("Content-Encoding"), body)
        if isinstance(decoded, _Reply):
            return decoded
        result = check_request(decoded, bulk=ENDPOINTS[path])
        record.n_batches = result.n_batches
        if not result.ok:
            record.errors = result.errors
            return _Reply(result.status, error_body("BAD_REQUEST", *result.errors))
        wait = emulator.rate_wait(len(result.batches))
        if wait > 0:
            record.fault = record.fault or "rate-limit"
            return _Reply(
                429,
                error_body("TOO_MANY_REQUESTS", "rate limit exceeded"),
                {
                    "Retry-After": str(max(1, math.ceil(wait))),
                    "X-mp-rate-limit-exceeded": "account",
                },
            )
        accepted, duplicates, events = emulator.accept(result.batches, path, record.number)
        record.n_accepted, record.n_duplicates = accepted, duplicates
        used = emulator.percentage_used(len(result.batches))
        return _Reply(202, b"", {"X-mp-rate-limit-percentage-used": str(used)}, events)

    def _drop(self, emulator: Emulator, record: RequestRecord, events: int) -> None:
        self.close_connection = True
        record.status = None
        emulator.finish(record, events)

    def _read_body(self, record: RequestRecord) -> bytes | _Reply | None:
        """The request body, or None without Content-Length or chunked encoding.

        At most `MAX_HELD_BYTES` are kept: a longer body is read to its end and refused
        with a 413 (so the connection stays usable). A bad chunk size is a 400, and the
        connection is closed (where the body ends is unknown).
        """
        try:
            body = read_body(self, max_held=MAX_HELD_BYTES, max_read=MAX_READ_BYTES)
        except BadChunk as exc:
            return _Reply(400, error_body("BAD_REQUEST", str(exc)), {"Connection": "close"})
        except BodyTooLarge as exc:
            record.body_bytes = exc.size
            return _Reply(413, error_body("REQUEST_TOO_LARGE", check_request_size(exc.size) or ""))
        record.body_bytes = len(body or b"")
        return body

    def _send(self, reply: _Reply) -> None:
        self.send_reply(reply)


@contextlib.contextmanager
def running_emulator(config: EmulatorConfig | None = None) -> Iterator[Emulator]:
    """Serve on 127.0.0.1 in a background thread for the duration of the block."""
    with serving(Emulator(config or EmulatorConfig())) as emulator:
        yield emulator


def serve(
    config: EmulatorConfig,
    stop: threading.Event,
    *,
    script: list[str] | None = None,
    url_file: Path | None = None,
    on_ready: Callable[[Emulator], None] | None = None,
) -> Emulator:
    """Serve until `stop` is set, then stop cleanly; return the emulator for its summary.

    `url_file`, when given, receives the base URL once the server listens (written
    atomically, removed on exit), for scripts that start the emulator in the background.
    """
    emulator = Emulator(config)
    try:
        emulator.script(script or [])
    except ValueError as exc:
        emulator.stop()
        raise EmulatorError(str(exc)) from None
    with serving(emulator):
        wait_for_stop(stop, emulator.base_url, url_file, lambda: on_ready and on_ready(emulator))
    return emulator
