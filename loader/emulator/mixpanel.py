"""A strict local stand-in for Mixpanel's Import Events API (`POST /import?strict=1`).

It answers as Mixpanel documents (https://docs.mixpanel.com/reference/import-events,
https://docs.mixpanel.com/troubleshooting/errors/400-bad-request): HTTP Basic auth with
the project token as the username and an empty password, or a service account (username
and secret) with `project_id` in the query, else 401; a body `Content-Encoding: gzip` or
plain, a JSON array of at most 2000 events and 10,000,000 bytes uncompressed, else 413
(the status of an oversized body is not documented: 413 is this stand-in's); `strict=1`
required. Each event needs a non-empty `event`, a `properties` object with an integer
`time`, a text `distinct_id` and an `$insert_id` of 1 to 36 letters, digits or `-`. A
request with bad events is a 400 listing them in `failed_records[{index, insert_id,
field, message}]`, and the good events of it are ingested (a partial success). An event
whose `$insert_id` (with its `distinct_id`, `event` and `time`) was already ingested is
not kept again.

Faults as the other stand-ins': a script for the first requests (429, 503, drop,
drop-after, 200) and random shares of 429, 503 and drops. It keeps what it accepted in
memory (`accepted`); built on `loader.emulator.http_core`, so it has the same request
slots, bounded and chunked reads and bounded gzip decoding.
"""

from __future__ import annotations

import base64
import contextlib
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from loader.emulator import http_core
from loader.emulator.http_core import (
    HOST,
    MAX_READ_BYTES,
    BadChunk,
    BodyTooLarge,
    ClientGone,
    EmulatorError,
    StandInHandler,
    StandInServer,
    check_faults,
    draw_fault,
    gunzip_bounded,
    read_body,
    requests_summary,
    serving,
    wait_for_stop,
)
from loader.emulator.stand_in import Faults, StandIn

NAME = "mixpanel"
KEY_ENV = "MIXPANEL_PROJECT_TOKEN"
IMPORT_PATH = "/import"
MAX_EVENTS = 2_000
MAX_REQUEST_BYTES = 10_000_000
INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")


@dataclass
class MixpanelEmulatorConfig:
    """How the stand-in answers. Shares are probabilities in [0, 1], drawn from `seed`."""

    token: str = "mixpanel-token"
    service_account: tuple[str, str, str] | None = None  # username, secret, project id
    port: int = 0
    latency_ms: int = 0
    share_429: float = 0.0
    share_503: float = 0.0
    share_drop: float = 0.0
    seed: int = 0
    script: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_faults((self.share_429, self.share_503, self.share_drop), self.script)

    def __repr__(self) -> str:  # never show a secret
        return "MixpanelEmulatorConfig(token='***')"


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    drop: bool = False


class MixpanelEmulator:
    """The stand-in's state: accepted events and the request log."""

    def __init__(self, config: MixpanelEmulatorConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.rng = random.Random(config.seed)
        self.script = list(config.script)
        self.accepted: list[dict[str, Any]] = []
        self.keys: set[tuple[Any, ...]] = set()
        self.duplicates = 0
        self.log: list[tuple[int, int, str | None, int]] = []  # number, status, fault, events
        self.request_no = 0
        self.server = StandInServer(config.port, _Handler, self)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.port}{IMPORT_PATH}"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def summary(self) -> str:
        return (
            f"{requests_summary(entry[1] for entry in self.log)}; {len(self.accepted)} events "
            f"accepted, {self.duplicates} duplicates ($insert_id) not kept again"
        )

    def handle(self, body: bytes, headers: Mapping[str, str], query: dict[str, Any]) -> Answer:
        """One request; `headers` by lowercase name."""
        with self.lock:
            self.request_no += 1
            number = self.request_no
            fault = self.script.pop(0) if self.script else self._draw()
        if fault == "503":
            return self._logged(number, Answer(503, _error(503, "Service Unavailable")), fault)
        if fault == "drop":
            return self._logged(number, Answer(0, {}, drop=True), fault)
        answer, events = self._check(body, headers, query, fault)
        if fault == "drop-after":
            answer = Answer(answer.status, answer.body, drop=True)
        return self._logged(number, answer, fault, events)

    def _draw(self) -> str | None:
        c = self.config
        return draw_fault(self.rng, (c.share_429, c.share_503, c.share_drop))

    def _authorized(self, headers: Mapping[str, str], query: dict[str, Any]) -> bool:
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        account = self.config.service_account
        project = query.get("project_id", [None])[0]
        if account is not None and (username, password, project) == account:
            return True
        return username == self.config.token and password == "" and project is None

    def _check(
        self, body: bytes, headers: Mapping[str, str], query: dict[str, Any], fault: str | None
    ) -> tuple[Answer, int]:
        if not self._authorized(headers, query):
            return Answer(401, _error(401, "Invalid credentials")), 0
        if query.get("strict", [""])[0] != "1":
            return Answer(400, _error(400, "this stand-in takes strict=1 only")), 0
        if headers.get("content-encoding", "").lower() == "gzip":
            try:
                unpacked = gunzip_bounded(body, MAX_REQUEST_BYTES)
            except zlib.error:
                return Answer(400, _error(400, "the body is not gzip")), 0
            if unpacked is None:
                return Answer(413, _error(413, "request body too large")), 0
            body = unpacked
        if len(body) > MAX_REQUEST_BYTES:
            return Answer(413, _error(413, "request body too large")), 0
        try:
            events = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Answer(400, _error(400, "the body is not JSON")), 0
        if not isinstance(events, list) or not events:
            return Answer(400, _error(400, "the body must be a JSON array of events")), 0
        if len(events) > MAX_EVENTS:
            return Answer(413, _error(413, f"too many events: at most {MAX_EVENTS}")), 0
        if fault == "429":
            return Answer(429, _error(429, "Project exceeded rate limits.")), len(events)
        failed = [f for k, event in enumerate(events) if (f := _problem(k, event))]
        bad = {f["index"] for f in failed}
        good = [e for k, e in enumerate(events) if k not in bad]
        with self.lock:
            self._keep(good)
        if failed:
            body_400 = _error(400, "some data points in the request failed validation")
            body_400.update(num_records_imported=len(good), failed_records=failed)
            return Answer(400, body_400), len(events)
        return Answer(200, {"code": 200, "num_records_imported": len(good), "status": "OK"}), len(
            events
        )

    def _keep(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            p = event["properties"]
            key = (p["$insert_id"], p["distinct_id"], event["event"], p["time"])
            if key in self.keys:
                self.duplicates += 1
                continue
            self.keys.add(key)
            self.accepted.append(event)

    def _logged(self, number: int, answer: Answer, fault: str | None, events: int = 0) -> Answer:
        with self.lock:
            self.log.append((number, answer.status, fault, events))
        return answer


def _problem(index: int, event: object) -> dict[str, Any] | None:
    """The failed record of a bad event, or None."""
    props = event.get("properties") if isinstance(event, dict) else None
    insert_id = props.get("$insert_id") if isinstance(props, dict) else None
    shown = insert_id if isinstance(insert_id, str) else ""

    def failed(name: str, message: str) -> dict[str, Any]:
        return {"index": index, "insert_id": shown, "field": name, "message": message}

    if not isinstance(event, dict) or not isinstance(event.get("event"), str) or not event["event"]:
        return failed("event", "'event' must be a non-empty string")
    if not isinstance(props, dict):
        return failed("properties", "'properties' must be an object")
    when = props.get("time")
    if not isinstance(when, int) or isinstance(when, bool):
        return failed("properties.time", "'properties.time' is invalid: must be an integer")
    if not isinstance(props.get("distinct_id"), str):
        return failed("properties.distinct_id", "'properties.distinct_id' must be a string")
    if not isinstance(insert_id, str) or not INSERT_ID.fullmatch(insert_id):
        return failed(
            "properties.$insert_id",
            "'properties.$insert_id' must be 1 to 36 letters, digits or '-'",
        )
    return None


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "error": message, "status": "error"}


class _Handler(StandInHandler):
    @property
    def emulator(self) -> MixpanelEmulator:
        owner: MixpanelEmulator = self.server.owner
        return owner

    def post(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != IMPORT_PATH:
            self.close_connection = True
            return self._reply(Answer(404, _error(404, "Not Found")))
        try:
            body = read_body(self, max_held=MAX_REQUEST_BYTES, max_read=MAX_READ_BYTES)
        except (ClientGone, OSError):
            return self.drop()
        except BadChunk as exc:
            return self._reply(Answer(400, _error(400, str(exc))))
        except BodyTooLarge:
            return self._reply(Answer(413, _error(413, "request body too large")))
        if body is None:
            self.close_connection = True
            return self._reply(Answer(411, _error(411, "Content-Length required")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.emulator.handle(body, headers, parse_qs(parts.query))
        if self.emulator.config.latency_ms:
            time.sleep(self.emulator.config.latency_ms / 1000)
        if answer.drop:
            return self.drop()
        return self._reply(answer)

    def busy(self) -> http_core.Reply:
        return http_core.Reply(
            503, orjson.dumps(_error(503, "busy")), {"Retry-After": "1", "Connection": "close"}
        )

    def _reply(self, answer: Answer) -> None:
        self.send_reply(http_core.Reply(answer.status, orjson.dumps(answer.body)))


@contextlib.contextmanager
def running_mixpanel_emulator(
    config: MixpanelEmulatorConfig | None = None,
) -> Iterator[MixpanelEmulator]:
    """Serve on 127.0.0.1 in a background thread for the duration of the block."""
    with serving(MixpanelEmulator(config or MixpanelEmulatorConfig())) as emulator:
        yield emulator


OPTIONS = {
    "service_account": "a service account's username it accepts too (its secret from "
    "MIXPANEL_SERVICE_ACCOUNT_SECRET)",
    "project_id": "the project id that goes with the service account",
}


def serve_from_cli(
    token: str,
    faults: Faults,
    options: Mapping[str, str],
    stop: threading.Event,
    url_file: Path | None,
    on_ready: Callable[[MixpanelEmulator], None],
) -> MixpanelEmulator:
    """`loader emulate --api mixpanel`: `faults` are the common options."""
    import os

    if faults.db is not None:
        raise EmulatorError("the mixpanel stand-in keeps what it accepts in memory: no --db")
    account = None
    if options.get("service_account"):
        secret = os.environ.get("MIXPANEL_SERVICE_ACCOUNT_SECRET", "")
        if not secret or not options.get("project_id"):
            raise EmulatorError(
                "a service account needs MIXPANEL_SERVICE_ACCOUNT_SECRET and "
                "--api-option project_id=ID"
            )
        account = (options["service_account"], secret, options["project_id"])
    config = MixpanelEmulatorConfig(token=token, service_account=account, **faults.settings())
    with serving(MixpanelEmulator(config)) as emulator:
        wait_for_stop(stop, emulator.url, url_file, lambda: on_ready(emulator))
    return emulator


STAND_IN = StandIn(NAME, "Mixpanel Import API emulator", KEY_ENV, OPTIONS, serve_from_cli)
