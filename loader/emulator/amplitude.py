"""A strict local stand-in for Amplitude's Batch Event Upload API (`POST /batch`).

It answers as Amplitude documents (`loader.amplitude_api.contract`): a body over the
payload limit or with more than 2000 events is a 413; a body that is not JSON, lacks
`api_key` or `events`, carries another API key, or holds a bad event is a 400 listing
the indices of bad events (`events_with_missing_fields`, `events_with_invalid_fields`,
per field); a user id or device id shorter than `options.min_id_length` (default 5) is
dropped, and an event left with neither is a bad event. An id (user or device) that
would go over `per_id_limit` events per second, counted over the last `window_s`
seconds, gets the whole request refused with a 429 naming it (`throttled_users`,
`throttled_devices`, `throttled_events`, `eps_threshold`). Nothing of a refused request
is kept. An accepted event whose `insert_id` was already accepted is acknowledged and
not recorded again (Amplitude's de-duplication window is 7 days: the emulator's lifetime).

User properties as Amplitude's backfill guide describes them
(https://amplitude.com/docs/data/data-backfill): an accepted event without
`"$skip_user_properties_sync": true` syncs with the user's profile (its `user_properties`
overwrite the profile's, `profiles`), and counts in `synced_events`, so that a test sees
historical values overwrite current ones; with it, the profile is left alone. A
`$skip_user_properties_sync` that is not a boolean is an invalid field (400).

Faults as the Events API emulator's: a script for the first requests (429, 503, drop,
drop-after, 200) and random shares of 429 (naming the first event's ids), 503 and drops
(the request is processed, then the connection closed without an answer).

It is built on `loader.emulator.http_core`, so it has the Events API emulator's
hardening: request slots (a 503 with Retry-After when all are taken), bodies by
Content-Length or chunked, a body over the payload limit drained and refused 413, a bad
chunk size refused 400. With `db_path`, the record file is held while it serves and rows
are written in blocks.
"""

from __future__ import annotations

import collections
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loader.amplitude_api.contract import (
    BATCH_PATH,
    DEFAULT_MIN_ID_LENGTH,
    MAX_EVENTS_PER_REQUEST,
    MAX_EVENTS_PER_SECOND_PER_ID,
    MAX_REQUEST_BYTES,
)
from loader.emulator import http_core
from loader.emulator.http_core import (
    HOST,
    MAX_CONCURRENT_REQUESTS,
    MAX_READ_BYTES,
    BadChunk,
    BodyTooLarge,
    BufferedRows,
    ClientGone,
    EmulatorError,
    StandInHandler,
    StandInServer,
    arrow_columns,
    check_faults,
    draw_fault,
    open_record,
    read_body,
    requests_summary,
    serving,
    wait_for_stop,
)
from loader.emulator.stand_in import Faults, StandIn

SKIP_SYNC = "$skip_user_properties_sync"
RECORD_DDL = """
create table if not exists received_amplitude_events (
    insert_id varchar, user_id varchar, device_id varchar, event_type varchar,
    time bigint, event_json varchar, request_no integer
);
create table if not exists received_amplitude_requests (
    request_no integer, status integer, fault varchar, events integer, body_bytes bigint,
    error varchar
);
"""
RECORD_COLUMNS = {
    "received_amplitude_events": arrow_columns(
        insert_id="string",
        user_id="string",
        device_id="string",
        event_type="string",
        time="int64",
        event_json="string",
        request_no="int32",
    ),
    "received_amplitude_requests": arrow_columns(
        request_no="int32",
        status="int32",
        fault="string",
        events="int32",
        body_bytes="int64",
        error="string",
    ),
}


@dataclass
class AmplitudeEmulatorConfig:
    """How the stand-in answers. Shares are probabilities in [0, 1], drawn from `seed`."""

    api_key: str = "amplitude-key"
    db_path: Path | None = None
    port: int = 0
    latency_ms: int = 0
    share_429: float = 0.0
    share_503: float = 0.0
    share_drop: float = 0.0
    seed: int = 0
    per_id_limit: float = MAX_EVENTS_PER_SECOND_PER_ID  # events/s per user and per device
    window_s: float = 30.0  # Amplitude averages an id's rate over 30 s
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_events: int = MAX_EVENTS_PER_REQUEST
    script: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_faults((self.share_429, self.share_503, self.share_drop), self.script)

    def __repr__(self) -> str:  # never show the key
        return f"AmplitudeEmulatorConfig(api_key='***', db_path={self.db_path})"


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None = None
    drop: bool = False  # close the connection without an answer


class AmplitudeEmulator:
    """The stand-in's state: accepted events, request log, per-id counts."""

    def __init__(self, config: AmplitudeEmulatorConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.rng = random.Random(config.seed)
        self.script = list(config.script)
        self.accepted: list[dict[str, Any]] = []
        self.insert_ids: set[str] = set()
        self.duplicates = 0
        # user properties per user ('u:<user_id>', else 'd:<device_id>'), as synced events
        # left them, and how many accepted events synced (no $skip_user_properties_sync)
        self.profiles: dict[str, dict[str, Any]] = {}
        self.synced_events = 0
        self.log: list[tuple[int, int, str | None, int, int, str | None]] = []
        self.seen: dict[str, collections.deque[float]] = {}
        self.request_no = 0
        self.rows: BufferedRows | None = None
        if config.db_path is not None:
            self.rows = BufferedRows(open_record(config.db_path, RECORD_DDL), RECORD_COLUMNS)
        try:
            self.server = StandInServer(config.port, _Handler, self)
        except EmulatorError:
            if self.rows is not None:
                self.rows.close()
            raise

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.port}{BATCH_PATH}"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
        with self.lock:
            if self.rows is not None:
                self.rows.close()
                self.rows = None

    def summary(self) -> str:
        return (
            f"{requests_summary(entry[1] for entry in self.log)}; {len(self.accepted)} events "
            f"accepted, {self.duplicates} duplicates (insert_id) not recorded again, "
            f"{self.synced_events} synced user properties (no $skip_user_properties_sync)"
        )

    # Answering one request

    def handle(self, body: bytes, content_type: str) -> Reply:
        with self.lock:
            self.request_no += 1
            number = self.request_no
            fault = self._fault()
        if fault == "503":
            return self._logged(number, Reply(503, _error(503, "Service Unavailable")), fault)
        if fault == "drop":  # dropped before it is processed
            return self._logged(number, Reply(0, drop=True), fault, 0, len(body))
        reply, events = self._check(body, content_type, number, fault)
        if fault == "drop-after":  # processed (accepted, maybe), then no answer
            reply = Reply(reply.status, reply.body, drop=True)
        return self._logged(number, reply, fault, events, len(body))

    def _fault(self) -> str | None:
        if self.script:
            return self.script.pop(0)
        c = self.config
        return draw_fault(self.rng, (c.share_429, c.share_503, c.share_drop))

    def _check(
        self, body: bytes, content_type: str, number: int, fault: str | None
    ) -> tuple[Reply, int]:
        c = self.config
        if len(body) > c.max_request_bytes:
            return Reply(413, _error(413, "Payload too large")), 0
        if content_type.split(";")[0].strip().lower() != "application/json":
            return Reply(400, _error(400, "Content-Type must be application/json")), 0
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Reply(400, _error(400, "Invalid JSON request body")), 0
        if not isinstance(request, dict) or not request.get("api_key"):
            return Reply(400, _missing("api_key")), 0
        if request["api_key"] != c.api_key:
            return Reply(400, _error(400, "Invalid API key")), 0
        events = request.get("events")
        if not isinstance(events, list) or not events:
            return Reply(400, _missing("events")), 0
        if len(events) > c.max_events:
            return Reply(413, _error(413, f"Too many events: at most {c.max_events}")), 0
        min_length = (request.get("options") or {}).get("min_id_length", DEFAULT_MIN_ID_LENGTH)
        if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 1:
            return Reply(400, _error(400, "Invalid options.min_id_length")), 0
        cleaned, bad = _validate(events, min_length)
        if bad:
            return Reply(400, bad), len(events)
        if fault == "429":  # names the first event's ids
            return Reply(429, self._throttled([0], _id_keys(cleaned[0]))), len(events)
        with self.lock:
            over, keys = self._over_limit(cleaned)
            if over:
                return Reply(429, self._throttled(over, keys)), len(events)
            self._count(cleaned)
            self._keep(cleaned, number)
        status = Reply(200, {"code": 200, "events_ingested": len(cleaned)})
        return status, len(events)

    def _over_limit(self, events: list[dict[str, Any]]) -> tuple[list[int], set[str]]:
        """Indices of events whose user or device would go over the per-id limit, and
        those ids ('u:<user_id>', 'd:<device_id>')."""
        now = time.monotonic()
        allowed = self.config.per_id_limit * self.config.window_s
        added: collections.Counter[str] = collections.Counter()
        over: list[int] = []
        keys: set[str] = set()
        for k, event in enumerate(events):
            for key in _id_keys(event):
                added[key] += 1
                seen = self.seen.get(key)
                recent = 0
                if seen:
                    while seen and seen[0] < now - self.config.window_s:
                        seen.popleft()
                    recent = len(seen)
                if recent + added[key] > allowed:
                    keys.add(key)
                    if not over or over[-1] != k:
                        over.append(k)
        return over, keys

    def _count(self, events: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for event in events:
            for key in _id_keys(event):
                self.seen.setdefault(key, collections.deque()).append(now)

    def _throttled(self, indices: list[int], keys: Iterable[str]) -> dict[str, Any]:
        """A 429 body naming the ids over the limit (with their rate over the window)."""
        users: dict[str, float] = {}
        devices: dict[str, float] = {}
        for key in keys:
            rate = (len(self.seen.get(key, ())) + 1) / self.config.window_s
            (users if key.startswith("u:") else devices)[key[2:]] = round(rate, 3)
        return {
            "code": 429,
            "error": "Too many requests for some devices and users",
            "eps_threshold": self.config.per_id_limit,
            "throttled_devices": devices,
            "throttled_users": users,
            "throttled_events": indices,
            "exceeded_daily_quota_devices": {},
            "exceeded_daily_quota_users": {},
        }

    def _keep(self, events: list[dict[str, Any]], number: int) -> None:
        for event in events:
            insert_id = event.get("insert_id")
            if insert_id is not None and insert_id in self.insert_ids:
                self.duplicates += 1
                continue
            if insert_id is not None:
                self.insert_ids.add(insert_id)
            if event.get(SKIP_SYNC) is not True:
                self._sync(event)
            self.accepted.append({**event, "_request_no": number})
            if self.rows is not None:
                self.rows.add(
                    "received_amplitude_events",
                    (
                        event.get("insert_id"),
                        event.get("user_id"),
                        event.get("device_id"),
                        event.get("event_type"),
                        event.get("time"),
                        orjson.dumps(event).decode(),
                        number,
                    ),
                )

    def _sync(self, event: dict[str, Any]) -> None:
        """An event without $skip_user_properties_sync: its user properties overwrite the
        profile's."""
        self.synced_events += 1
        keys = _id_keys(event)
        if keys:
            self.profiles.setdefault(keys[0], {}).update(event.get("user_properties") or {})

    def _logged(
        self, number: int, reply: Reply, fault: str | None, events: int = 0, size: int = 0
    ) -> Reply:
        error = reply.body.get("error") if reply.body else None
        entry = (number, reply.status, fault, events, size, error)
        with self.lock:
            self.log.append(entry)
            if self.rows is not None:
                self.rows.add("received_amplitude_requests", entry)
                self.rows.maybe_flush()
        return reply

    def busy(self) -> Reply:
        """Every slot taken: a 503 (its body unread), logged."""
        with self.lock:
            self.request_no += 1
            number = self.request_no
        message = f"the stand-in is serving {MAX_CONCURRENT_REQUESTS} requests already"
        return self._logged(number, Reply(503, _error(503, message)), "busy")

    def refused_unread(self, status: int, message: str, size: int) -> Reply:
        """A body refused before it is parsed (too large to hold, bad chunking), logged."""
        with self.lock:
            self.request_no += 1
            number = self.request_no
        return self._logged(number, Reply(status, _error(status, message)), None, 0, size)


def _validate(
    events: list[Any], min_length: int
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The events with too-short ids dropped, and a 400 body when some are bad."""
    missing: dict[str, list[int]] = {}
    invalid: dict[str, list[int]] = {}
    cleaned: list[dict[str, Any]] = []
    for k, event in enumerate(events):
        if not isinstance(event, dict):
            invalid.setdefault("event", []).append(k)
            cleaned.append({})
            continue
        event = dict(event)
        for name in ("user_id", "device_id"):
            value = event.get(name)
            if value is not None and not isinstance(value, str):
                invalid.setdefault(name, []).append(k)
            elif value is not None and len(value) < min_length:
                del event[name]  # Amplitude drops an id that is too short
        if not event.get("user_id") and not event.get("device_id"):
            missing.setdefault("user_id or device_id", []).append(k)
        if not isinstance(event.get("event_type"), str) or not event["event_type"]:
            missing.setdefault("event_type", []).append(k)
        time_value = event.get("time")
        if time_value is not None and (
            not isinstance(time_value, int) or isinstance(time_value, bool) or time_value < 0
        ):
            invalid.setdefault("time", []).append(k)
        for name in ("event_properties", "user_properties"):
            if name in event and not isinstance(event[name], dict):
                invalid.setdefault(name, []).append(k)
        if SKIP_SYNC in event and not isinstance(event[SKIP_SYNC], bool):
            invalid.setdefault(SKIP_SYNC, []).append(k)
        cleaned.append(event)
    if not (missing or invalid):
        return cleaned, None
    body: dict[str, Any] = {"code": 400, "error": "Invalid field values on some events"}
    if missing:
        body["events_with_missing_fields"] = missing
    if invalid:
        body["events_with_invalid_fields"] = invalid
    return cleaned, body


def _id_keys(event: dict[str, Any]) -> list[str]:
    keys = []
    if event.get("user_id"):
        keys.append("u:" + event["user_id"])
    if event.get("device_id"):
        keys.append("d:" + event["device_id"])
    return keys


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "error": message}


def _missing(name: str) -> dict[str, Any]:
    return {"code": 400, "error": "Request missing required field", "missing_field": name}


class _Handler(StandInHandler):
    @property
    def emulator(self) -> AmplitudeEmulator:
        owner: AmplitudeEmulator = self.server.owner
        return owner

    def post(self) -> None:
        emulator = self.emulator
        if self.path.split("?")[0] != BATCH_PATH:
            self.close_connection = True  # the body is not read
            return self._reply(Reply(404, _error(404, "Not Found")))
        try:
            body = read_body(
                self, max_held=emulator.config.max_request_bytes, max_read=MAX_READ_BYTES
            )
        except (ClientGone, OSError):
            return self.drop()
        except BadChunk as exc:
            return self._reply(emulator.refused_unread(400, str(exc), 0))
        except BodyTooLarge as exc:
            return self._reply(emulator.refused_unread(413, "Payload too large", exc.size))
        if body is None:
            self.close_connection = True
            return self._reply(Reply(411, _error(411, "Content-Length required")))
        reply = emulator.handle(body, self.headers.get("Content-Type", ""))
        if emulator.config.latency_ms:
            time.sleep(emulator.config.latency_ms / 1000)
        if reply.drop:
            return self.drop()
        return self._reply(reply)

    def busy(self) -> http_core.Reply:
        reply = self.emulator.busy()
        return http_core.Reply(
            reply.status, orjson.dumps(reply.body), {"Retry-After": "1", "Connection": "close"}
        )

    def _reply(self, reply: Reply) -> None:
        payload = orjson.dumps(reply.body or {"code": reply.status})
        self.send_reply(http_core.Reply(reply.status, payload))


@contextlib.contextmanager
def running_amplitude_emulator(
    config: AmplitudeEmulatorConfig | None = None,
) -> Iterator[AmplitudeEmulator]:
    """Serve on 127.0.0.1 in a background thread for the duration of the block."""
    with serving(AmplitudeEmulator(config or AmplitudeEmulatorConfig())) as emulator:
        yield emulator


def serve_amplitude(
    config: AmplitudeEmulatorConfig,
    stop: threading.Event,
    *,
    url_file: Path | None = None,
    on_ready: Callable[[AmplitudeEmulator], None] | None = None,
) -> AmplitudeEmulator:
    """Serve until `stop` is set; `url_file` receives the URL once listening."""
    with serving(AmplitudeEmulator(config)) as emulator:
        wait_for_stop(stop, emulator.url, url_file, lambda: on_ready and on_ready(emulator))
    return emulator


NAME = "amplitude"
KEY_ENV = "AMPLITUDE_API_KEY"
OPTIONS = {
    "per_user_limit": "events/s allowed per user_id and device_id (default 1000)",
    "window": "seconds over which an id's rate is counted (default 30)",
}


def serve_from_cli(
    api_key: str,
    faults: Faults,
    options: Mapping[str, str],
    stop: threading.Event,
    url_file: Path | None,
    on_ready: Callable[[AmplitudeEmulator], None],
) -> AmplitudeEmulator:
    """`loader emulate --api amplitude`: `faults` are the common options."""
    try:
        limits = {name: float(options[name]) for name in OPTIONS if name in options}
    except ValueError:
        raise EmulatorError(f"--api-option: {', '.join(OPTIONS)} take numbers") from None
    config = AmplitudeEmulatorConfig(
        api_key=api_key,
        db_path=faults.db,
        per_id_limit=limits.get("per_user_limit", MAX_EVENTS_PER_SECOND_PER_ID),
        window_s=limits.get("window", 30.0),
        **faults.settings(),
    )
    return serve_amplitude(config, stop, url_file=url_file, on_ready=on_ready)


STAND_IN = StandIn(NAME, "Amplitude Batch API emulator", KEY_ENV, OPTIONS, serve_from_cli)
