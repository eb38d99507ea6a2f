"""Amplitude's Batch Event Upload API as a push destination: `POST {host}/batch`.

The replay set is `amplitude_events` (dbt decides every field); its rows are recorded in
the ledger under the destination `amplitude`, so a push to Amplitude and one to the
Events API of the same replay set are independent in one ledger.

- Packing: one ledger batch is one Amplitude event (its body is the event's JSON, exactly
  as the model wrote it), so a refusal or a throttle names exactly the events it concerns;
  a request is `{"api_key": ..., "events": [...]}` of at most 2000 events and 20,000,000
  bytes (`loader.amplitude_api.contract`).
- Pace: the shared rate (events/s for all workers) and, per user_id and per device_id, at
  most `per_id_rate` events/s (`IdRateLimiter`), under Amplitude's 1000.
- Answers (`classify`):
  - 200: accepted;
  - 429: throttled: when the body names throttled users or devices, only their events
    wait (`Answer.hold`) and the others go at once; otherwise everyone waits;
  - 400: the bad events the body lists are refused with Amplitude's message, the others
    sent again (`Answer.refused`); a 400 that lists none splits the request to find them;
    413 splits too; a 400 about the API key (invalid, missing) stops the run;
  - 5xx, 408, timeouts, drops: the same body again (insert_id de-duplicates);
  - 401, 403, 404, 405, redirects: the run stops.
- Settings (`--destination-option NAME=VALUE`, see `SETTINGS`): region (us, eu),
  api_key_file, per_user_rate, events_per_request, min_id_length (default: the build's var
  amplitude_min_id_length), throttle_wait_s.
- The API key (AMPLITUDE_API_KEY, or the file `api_key_file` names) travels in the body:
  it is never written anywhere. Dry-run bodies carry
  `"api_key":"***"`; the ledger keeps batch bodies' sizes only, and texts that leave the
  loader pass through `redact`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import duckdb
import orjson
import requests

from loader.amplitude_api.contract import (
    BATCH_PATH,
    DEFAULT_MIN_ID_LENGTH,
    DEFAULT_REGION,
    HOSTS,
    MAX_EVENTS_PER_REQUEST,
    MAX_EVENTS_PER_SECOND_PER_ID,
    MAX_REQUEST_BYTES,
    bad_event_indices,
    throttled_ids,
)
from loader.build_settings import read_build_setting
from loader.push.destination import (
    Answer,
    ConfigurationError,
    Route,
    Settings,
    Signals,
    Verdict,
    answer_error,
    json_answer,
    retry_after_seconds,
)
from loader.push.destination_settings import Setting
from loader.push.destinations.events_api import is_loopback
from loader.push.packing import OneEventPacking, PackingLimits
from loader.refusals import Coded, coded
from loader.settings import read_secret_file

NAME = "amplitude"
KEY_ENV = "AMPLITUDE_API_KEY"
# a batch's id is computed over `amplitude:<replay_key>`, as by the releases that recorded
# that text as the ledger's key: the same event keeps its id
ID_KEY_PREFIX = b"amplitude:"
REPLAY_TABLE = "amplitude_events"
DEFAULT_RATE = 1_000.0  # events/s for all workers together
DEFAULT_PER_ID_RATE = 800.0  # events/s per user_id and per device_id, under 1000
DEFAULT_THROTTLE_WAIT_S = 30.0  # Amplitude averages an id's rate over 30 s
# Packing counts a request as `[` + event bodies joined by commas + `]`; the real body
# also holds `{"api_key":...,"events":` and `,"options":{...}}`: room kept for them.
MAX_KEY_CHARS = 512
FRAMING_BYTES = 1_024
LIMITS = PackingLimits(
    max_batch_bytes=MAX_REQUEST_BYTES - FRAMING_BYTES - 2,  # one event alone fits a request
    max_request_bytes=MAX_REQUEST_BYTES - FRAMING_BYTES,
    max_batches_per_request=MAX_EVENTS_PER_REQUEST,
)
_KEY_PLACEHOLDER = "***"
FATAL_STATUSES = {
    401: "Amplitude refused the API key (401)",
    403: "Amplitude refused the API key (403)",
    404: "the endpoint answered 404 Not Found: check the region setting / --endpoint",
    405: "the endpoint answered 405 Method Not Allowed: check the region setting / --endpoint",
}


@dataclass(frozen=True)
class AmplitudeCredentials:
    """The project's API key (it is sent in each request's body, never written anywhere)."""

    api_key: str = field(repr=False)

    @classmethod
    def load(cls, key_file: str | None = None) -> AmplitudeCredentials:
        """From `key_file` (a path, or '-' for stdin), else from AMPLITUDE_API_KEY."""
        if key_file is not None:
            return cls(read_secret_file(key_file, "api_key_file"))
        key = os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise ConfigurationError(
                f"set {KEY_ENV} (the Amplitude project's API key) or use --destination-option "
                "api_key_file=PATH (- for stdin), or use --dry-run to see the plan without "
                "sending"
            )
        return cls(key)

    def __post_init__(self) -> None:
        if len(self.api_key) > MAX_KEY_CHARS or not self.api_key.isprintable():
            raise ConfigurationError(
                f"the Amplitude API key must be printable and at most {MAX_KEY_CHARS} "
                "characters (an Amplitude key has 32)"
            )

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, _KEY_PLACEHOLDER) if self.api_key else text


def endpoint_url(region: str | None, endpoint: str | None) -> str:
    """The full URL to post to: `{host}/batch` for a region, or `endpoint` as given.

    Plain http is refused except to a loopback address (the key travels in the body).
    """
    if endpoint:
        url = endpoint.rstrip("/")
        if not url.endswith(BATCH_PATH):
            url += BATCH_PATH
    else:
        name = (region or DEFAULT_REGION).lower()
        if name not in HOSTS:
            raise ConfigurationError(
                f"unknown Amplitude region {region!r}; use one of {', '.join(HOSTS)} or "
                "--endpoint URL"
            )
        url = HOSTS[name] + BATCH_PATH
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"endpoint {url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigurationError("the endpoint URL must not carry credentials")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain http to {parts.hostname}: the API key would travel "
            "unencrypted. Use https (plain http is allowed to 127.0.0.1/localhost only)."
        )
    return url


# Packing: one event per ledger batch


PACKING = OneEventPacking(
    b"amplitude",
    ID_KEY_PREFIX,
    LIMITS.max_batch_bytes,
    lambda size, limit: f"event is {size} bytes, over the {limit}-byte request limit",
)
pack_events = PACKING.pack
assemble_event = PACKING.assemble


def request_body(
    api_key: str, event_bodies: Iterable[bytes], min_id_length: int = DEFAULT_MIN_ID_LENGTH
) -> bytes:
    """`{"api_key": ..., "events": [...]}`, with `options.min_id_length` when not the default."""
    head = b'{"api_key":' + orjson.dumps(api_key) + b',"events":['
    tail = b"]}"
    if min_id_length != DEFAULT_MIN_ID_LENGTH:
        tail = b'],"options":{"min_id_length":' + str(min_id_length).encode() + b"}}"
    return head + b",".join(event_bodies) + tail


def dry_run_body(event_bodies: Iterable[bytes]) -> bytes:
    """A request body as it would be sent, with the API key replaced by "***"."""
    return request_body(_KEY_PLACEHOLDER, event_bodies)


def event_ids(body: bytes) -> tuple[str | None, str | None]:
    """The user_id and device_id of one event body."""
    event = orjson.loads(body)
    user, device = event.get("user_id"), event.get("device_id")
    return (str(user) if user is not None else None, str(device) if device is not None else None)


class IdRateLimiter:
    """At most `rate` events per second for each user_id and each device_id.

    A strict schedule per id, as `RateLimiter` keeps for the whole run: `reserve` books
    the events of a request and says how long to wait before sending it.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ConfigurationError(f"the per-user rate must be positive (got {rate})")
        self.rate = rate
        self._clock = clock
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, counts: Mapping[str, int]) -> float:
        with self._lock:
            now = self._clock()
            start = max([now, *(self._next.get(i, now) for i in counts)])
            for i, n in counts.items():
                self._next[i] = start + n / self.rate
            if len(self._next) > 100_000:  # forget ids whose slot is long past
                self._next = {i: t for i, t in self._next.items() if t > now}
            return start - now


class AmplitudeDestination:
    """The Batch Event Upload API at `url` (a region's, or the emulator's)."""

    def __init__(
        self,
        url: str,
        credentials: AmplitudeCredentials,
        *,
        per_id_rate: float = DEFAULT_PER_ID_RATE,
        throttle_wait_s: float = DEFAULT_THROTTLE_WAIT_S,
        min_id_length: int = DEFAULT_MIN_ID_LENGTH,
    ) -> None:
        if per_id_rate > MAX_EVENTS_PER_SECOND_PER_ID:
            raise ConfigurationError(
                f"per_user_rate {per_id_rate:g} is above Amplitude's "
                f"{MAX_EVENTS_PER_SECOND_PER_ID} events/s per user or device"
            )
        self.url = url
        self.credentials = credentials
        self.id_limiter = IdRateLimiter(per_id_rate)
        self.throttle_wait_s = throttle_wait_s
        self.min_id_length = min_id_length

    def prepare(self, session: requests.Session) -> None:
        session.headers.update(
            {"Content-Type": "application/json", "User-Agent": "mparticle-backfill-loader"}
        )

    def request_body(self, batch_bodies: Iterable[bytes]) -> bytes:
        return request_body(self.credentials.api_key, batch_bodies, self.min_id_length)

    def redact(self, text: str) -> str:
        return self.credentials.redact(text)

    def pace(self, batch_bodies: Iterable[bytes]) -> float:
        """Seconds to wait so that no user or device goes over `per_id_rate`."""
        counts: dict[str, int] = {}
        for body in batch_bodies:
            user, device = event_ids(body)
            for key in (f"u:{user}" if user else None, f"d:{device}" if device else None):
                if key is not None:
                    counts[key] = counts.get(key, 0) + 1
        return self.id_limiter.reserve(counts)

    def classify(self, status: int, headers: Mapping[str, str], body: str) -> Answer:
        return classify(status, headers, body, self.throttle_wait_s)


def classify(status: int, headers: Mapping[str, str], body: str, throttle_wait_s: float) -> Answer:
    """What a Batch API answer means; see the module docstring."""
    lowered = {name.lower(): value for name, value in headers.items()}
    retry_after = lowered.get("retry-after")
    signals = Signals(retry_after=retry_after)
    if 200 <= status < 300:
        return Answer(Verdict.ACCEPTED, signals=signals)
    parsed = json_answer(body)
    if status == 429:
        wait = retry_after_seconds(retry_after)
        users, devices = throttled_ids(parsed)
        hold = _holder(users, devices) if users or devices else None
        return Answer(
            Verdict.RATE_LIMITED,
            f"HTTP 429: {answer_error(parsed, body)}",
            wait_s=wait if wait is not None else throttle_wait_s,
            signals=signals,
            hold=hold,
        )
    if status == 400 and _refuses_the_key(parsed):
        return Answer(
            Verdict.STOP,
            f"Amplitude refused the API key ({answer_error(parsed, body)}): check {KEY_ENV} (or "
            "the api_key_file setting) and the region setting",
            signals=signals,
        )
    if status in (400, 413):
        text = f"HTTP {status}: {answer_error(parsed, body)}"
        bad = bad_event_indices(parsed) if status == 400 else {}
        refused = {
            i: coded(f"{text} ({', '.join(what)})", [_problem_code(w) for w in what])
            for i, what in bad.items()
        }
        code = REQUEST_REFUSALS[status]
        message = Coded(text, *code)
        return Answer(Verdict.SPLIT, message, signals=signals, refused=refused or None)
    if status in FATAL_STATUSES or 300 <= status < 400:
        reason = FATAL_STATUSES.get(status, f"the endpoint redirected ({status})")
        if status in (401, 403):
            reason += f": check {KEY_ENV} (or the api_key_file setting) and the region setting"
        return Answer(Verdict.STOP, reason, signals=signals)
    if status in (408, 425) or status >= 500:
        return Answer(Verdict.RETRY, f"HTTP {status}: {body}", signals=signals)
    message = Coded(f"HTTP {status}: {answer_error(parsed, body)}", *REQUEST_REFUSALS[400])
    return Answer(Verdict.SPLIT, message, signals=signals)


# Refusal codes (loader.refusals): of a request refused whole, by status, and of one bad
# event by what its 400 body lists ("invalid time", "missing event_type", ...).
REQUEST_REFUSALS = {
    400: ("destination_bad_request", "the destination refused the batch as a bad request"),
    413: ("request_too_big", "a request is over the destination's size or event-count limit"),
}
EVENT_REFUSALS = {
    "invalid": ("invalid_field", "a field has a value the destination refuses"),
    "missing": ("missing_field", "a required field is missing or empty"),
    "silenced": ("silenced_device", "the destination silenced the event's device"),
}


def _problem_code(what: str) -> tuple[str, str]:
    """The code of one problem of a bad event ("invalid time" -> invalid_field)."""
    return EVENT_REFUSALS.get(what.split(" ", 1)[0], REQUEST_REFUSALS[400])


def _holder(users: set[str], devices: set[str]) -> Callable[[bytes], bool]:
    def held(batch_body: bytes) -> bool:
        user, device = event_ids(batch_body)
        return (user is not None and user in users) or (device is not None and device in devices)

    return held


def _refuses_the_key(parsed: object) -> bool:
    """A 400 about the API key itself: no event would ever be accepted."""
    if not isinstance(parsed, dict):
        return False
    error = parsed.get("error")
    return parsed.get("missing_field") == "api_key" or (
        isinstance(error, str) and "api key" in error.lower()
    )


SETTINGS = (
    Setting("region", "the data center: us (api2.amplitude.com) or eu", choices=tuple(HOSTS)),
    Setting("api_key_file", f"a file holding the API key (- for stdin) instead of {KEY_ENV}"),
    Setting(
        "per_user_rate",
        f"events/s per user_id and per device_id (default {DEFAULT_PER_ID_RATE:g}; Amplitude "
        f"throttles above {MAX_EVENTS_PER_SECOND_PER_ID})",
        float,
        minimum=0.1,
        maximum=MAX_EVENTS_PER_SECOND_PER_ID,
    ),
    Setting(
        "events_per_request",
        f"events a request (default and at most {MAX_EVENTS_PER_REQUEST})",
        int,
        minimum=1,
        maximum=MAX_EVENTS_PER_REQUEST,
    ),
    Setting(
        "min_id_length",
        f"sent as options.min_id_length when not {DEFAULT_MIN_ID_LENGTH} (default: the "
        "build's var amplitude_min_id_length)",
        int,
        minimum=1,
    ),
    Setting(
        "throttle_wait_s",
        f"seconds to wait after a 429 without Retry-After (default {DEFAULT_THROTTLE_WAIT_S:g})",
        float,
        minimum=0,
    ),
)


def _client(
    url: str, credentials: AmplitudeCredentials, settings: Settings
) -> AmplitudeDestination:
    return AmplitudeDestination(
        url,
        credentials,
        per_id_rate=settings.get("per_user_rate", DEFAULT_PER_ID_RATE),
        throttle_wait_s=settings.get("throttle_wait_s", DEFAULT_THROTTLE_WAIT_S),
        min_id_length=settings.get("min_id_length", DEFAULT_MIN_ID_LENGTH),
    )


def _built(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, int]:
    """The shortest id the build's amplitude_events kept (var amplitude_min_id_length)."""
    built = read_build_setting(con, catalog, "amplitude_min_id_length")
    return {} if built is None else {"min_id_length": int(str(built))}


ROUTE = Route(
    name=NAME,
    service="Amplitude",
    replay_table=REPLAY_TABLE,
    limits=LIMITS,
    default_rate=DEFAULT_RATE,
    validator=None,  # dbt's amplitude_events decides; Amplitude's 400 names what it refuses
    pack=pack_events,
    assemble=assemble_event,
    dry_run_body=dry_run_body,
    settings=SETTINGS,
    endpoint_url=lambda settings, endpoint: endpoint_url(settings.get("region"), endpoint),
    credentials=lambda settings: AmplitudeCredentials.load(settings.get("api_key_file")),
    client=_client,
    build_settings=_built,
    batches_per_request="events_per_request",
)
