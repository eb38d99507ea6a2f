"""The HTTP door to the Events API: endpoint, credentials, rate limit, retries, splitting.

`Transport.send` delivers one bulk request (a list of batches) and says, per batch, what
happened: acknowledged (2xx), rejected (a 400 isolated to that batch, with mParticle's
message), or failed (retries used up, or the run was stopped). Every HTTP attempt is
reported as a `ledger.Attempt`.

- 429: wait as `Retry-After` says (or back off exponentially with jitter), pausing every
  worker; `X-mp-rate-limit-exceeded: acceleration` also lowers the shared rate. Waiting
  is not a failed attempt.
- 5xx, 408, timeouts, dropped connections: the same body again after a backoff with
  jitter, up to `max_retries` times (the same `source_request_id`s, so mParticle
  de-duplicates what it already had).
- 400 / 413: the request is split in halves until each bad batch is alone; its message
  is kept, the other batches are sent.
- 401 / 403 (or a misrouted endpoint: 404, 405, a redirect): `fatal` is set and the run
  stops.

The API secret is never logged, stored or put in a message: texts that leave this module
pass through `Credentials.redact`.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter

from loader.errors import LoaderError
from loader.push.ledger import Attempt
from loader.push.packing import request_body

PODS = {
    "us1": "https://s2s.mparticle.com/v2",
    "us2": "https://s2s.us2.mparticle.com/v2",
    "eu1": "https://s2s.eu1.mparticle.com/v2",
    "au1": "https://s2s.au1.mparticle.com/v2",
}
KEY_ENV, SECRET_ENV = "MPARTICLE_API_KEY", "MPARTICLE_API_SECRET"
DEFAULT_RATE = 250.0  # batches/s, under mParticle's default 270
ERROR_TEXT_LIMIT = 2000
RETRYABLE_STATUSES = frozenset({408, 425, 500, 502, 503, 504})
FATAL_STATUSES = {
    401: "mParticle refused the credentials (401 Unauthorized)",
    403: "mParticle refused the credentials (403 Forbidden)",
    404: "the endpoint answered 404 Not Found: check --pod / --endpoint",
    405: "the endpoint answered 405 Method Not Allowed: check --pod / --endpoint",
}


class ConfigurationError(LoaderError):
    """Missing credentials or an endpoint the loader refuses."""


class CredentialsRejected(LoaderError):
    """mParticle answered 401/403 (or the endpoint is wrong): the run stopped."""


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str = field(repr=False)

    @classmethod
    def from_env(cls) -> Credentials:
        key, secret = os.environ.get(KEY_ENV, ""), os.environ.get(SECRET_ENV, "")
        missing = [name for name, value in ((KEY_ENV, key), (SECRET_ENV, secret)) if not value]
        if missing:
            raise ConfigurationError(
                f"set {' and '.join(missing)} (the API key and secret of the input or feed "
                "to send to), or use --dry-run to see the plan without sending"
            )
        return cls(key, secret)

    def redact(self, text: str) -> str:
        """`text` without the secret (and without the Basic auth token made from it)."""
        import base64

        token = base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()
        for value in (self.api_secret, token):
            if value:
                text = text.replace(value, "***")
        return text


def endpoint_url(pod: str | None, endpoint: str | None) -> str:
    """The base URL (ending in /v2 or similar) to post `/bulkevents` under.

    `endpoint` wins over `pod`. Plain http is refused except to a loopback address, and
    URLs carrying credentials are refused.
    """
    if endpoint:
        base = endpoint.rstrip("/")
    else:
        name = (pod or "us1").lower()
        if name not in PODS:
            raise ConfigurationError(
                f"unknown pod {pod!r}; use one of {', '.join(PODS)} or --endpoint URL"
            )
        base = PODS[name]
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"endpoint {base!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigurationError(
            "the endpoint URL must not carry credentials; set MPARTICLE_API_KEY and "
            "MPARTICLE_API_SECRET instead"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain http to {parts.hostname}: the API secret would travel "
            "unencrypted. Use https (plain http is allowed to 127.0.0.1/localhost only)."
        )
    return base


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RateLimiter:
    """A shared limit in batches per second for every worker thread.

    Each send reserves its batches' share of time in order (a strict schedule, no
    bursts), so the long-run rate never exceeds `rate`. `pause` stops everyone for a
    while (a 429); `slow_down` halves the rate, which then recovers by a tenth of the
    target each second.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        if rate <= 0:
            raise ConfigurationError(f"the rate must be positive (got {rate})")
        self.target = rate
        self._rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()
        self._slowed_at: float | None = None
        self._stop = stop or threading.Event()

    @property
    def rate(self) -> float:
        with self._lock:
            return self._current_rate(self._clock())

    def _current_rate(self, now: float) -> float:
        if self._slowed_at is not None:
            self._rate = min(self.target, self._rate + self.target * 0.1 * (now - self._slowed_at))
            self._slowed_at = None if self._rate >= self.target else now
        return self._rate

    def reserve(self, n_batches: int) -> float:
        """Reserve a slot for `n_batches`; return how long to wait before sending."""
        with self._lock:
            now = self._clock()
            start = max(self._next, now)
            self._next = start + n_batches / self._current_rate(now)
            return start - now

    def acquire(self, n_batches: int) -> bool:
        """Wait for a slot; False when the run is stopping."""
        wait = self.reserve(n_batches)
        if wait > 0:
            return not self._stop.wait(wait)
        return not self._stop.is_set()

    def pause(self, seconds: float) -> None:
        """Nobody sends for `seconds` from now."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)

    def slow_down(self) -> None:
        with self._lock:
            now = self._clock()
            self._rate = max(self.target * 0.05, self._current_rate(now) / 2)
            self._slowed_at = now


@dataclass
class Outgoing:
    """A batch to send: its id, size in events and exact body."""

    source_request_id: str
    event_count: int
    body: bytes


@dataclass
class SendResult:
    acknowledged: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)  # HTTP attempts per batch
    fatal: str | None = None


@dataclass
class _Answer:
    kind: str  # accepted | bad_request | failed | fatal | stopped
    message: str | None = None


class Transport:
    """Sends bulk requests to `base_url + /bulkevents`; thread-safe (a session per thread)."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        limiter: RateLimiter,
        *,
        stop: threading.Event,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_rate_limit_waits: int = 100,
        rng: random.Random | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/bulkevents"
        self.credentials = credentials
        self.limiter = limiter
        self.stop = stop
        self.timeout = (connect_timeout_s, timeout_s)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_rate_limit_waits = max_rate_limit_waits
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = (self.credentials.api_key, self.credentials.api_secret)
            session.verify = True  # TLS certificates are always checked
            session.headers.update(
                {"Content-Type": "application/json", "User-Agent": "mparticle-backfill-loader"}
            )
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._local.session = session
        return session

    def send(self, batches: Sequence[Outgoing], request_no: int) -> SendResult:
        """Deliver `batches` (one bulk request, split on 400); the outcome of each batch."""
        result = SendResult()
        queue: list[Sequence[Outgoing]] = [batches]
        while queue:
            part = queue.pop(0)
            answer = self._deliver(part, request_no, result)
            ids = [b.source_request_id for b in part]
            if answer.kind == "accepted":
                result.acknowledged.extend(ids)
            elif answer.kind == "bad_request" and len(part) > 1:
                half = len(part) // 2
                queue[:0] = [part[:half], part[half:]]
            elif answer.kind == "bad_request":
                result.rejected[ids[0]] = answer.message or "400 Bad Request"
            else:
                for sid in ids + [b.source_request_id for rest in queue for b in rest]:
                    result.failed[sid] = answer.message or answer.kind
                if answer.kind == "fatal":
                    result.fatal = answer.message
                break
        return result

    def _deliver(self, part: Sequence[Outgoing], request_no: int, result: SendResult) -> _Answer:
        body = request_body(b.body for b in part)
        ids = [b.source_request_id for b in part]
        failures = rate_limited = 0
        while True:
            if not self.limiter.acquire(len(part)) or self.stop.is_set():
                return _Answer("stopped", "the run stopped before this batch was acknowledged")
            attempt = Attempt(
                request_no=request_no,
                attempt=failures + rate_limited + 1,
                sent_at=datetime.now(UTC),
                latency_ms=None,
                status_code=None,
                outcome="",
                source_request_ids=ids,
                body_bytes=len(body),
            )
            result.attempts.append(attempt)
            for sid in ids:
                result.tries[sid] = result.tries.get(sid, 0) + 1
            started = time.monotonic()
            try:
                response = self._session().post(
                    self.url, data=body, timeout=self.timeout, allow_redirects=False
                )
            except requests.Timeout as exc:
                attempt.outcome, attempt.error = "timeout", self._text(exc)
                response = None
            except requests.RequestException as exc:
                attempt.outcome, attempt.error = "connection_error", self._text(exc)
                response = None
            attempt.latency_ms = round((time.monotonic() - started) * 1000)
            if response is None:
                failures += 1
                if failures > self.max_retries:
                    return _Answer("failed", self._gave_up(attempt.error))
                attempt.wait_ms = self._sleep(self._backoff(failures))
                continue

            status = response.status_code
            attempt.status_code = status
            headers = response.headers
            attempt.retry_after = headers.get("Retry-After")
            attempt.rate_limit_exceeded = headers.get("X-mp-rate-limit-exceeded")
            attempt.rate_limit_percentage_used = headers.get("X-mp-rate-limit-percentage-used")
            if 200 <= status < 300:
                attempt.outcome = "accepted"
                return _Answer("accepted")
            attempt.error = self._text(response.text)
            if status == 429:
                attempt.outcome = "rate_limited"
                rate_limited += 1
                if rate_limited > self.max_rate_limit_waits:
                    return _Answer("failed", f"still rate limited after {rate_limited - 1} waits")
                if (attempt.rate_limit_exceeded or "").strip().lower() == "acceleration":
                    self.limiter.slow_down()
                wait = _retry_after_seconds(attempt.retry_after)
                if wait is None:
                    wait = self._backoff(rate_limited)
                self.limiter.pause(wait)
                attempt.wait_ms = round(wait * 1000)
                continue
            if status in (400, 413):
                attempt.outcome = "bad_request"
                return _Answer("bad_request", _error_message(status, attempt.error))
            if status in FATAL_STATUSES or 300 <= status < 400:
                attempt.outcome = "refused"
                reason = FATAL_STATUSES.get(status, f"the endpoint redirected ({status})")
                if status in (401, 403):
                    reason += (
                        f": check {KEY_ENV} and {SECRET_ENV}, and that they belong to the "
                        "pod/endpoint you send to"
                    )
                return _Answer("fatal", reason)
            if status in RETRYABLE_STATUSES or status >= 500:
                attempt.outcome = "server_error"
                failures += 1
                if failures > self.max_retries:
                    return _Answer("failed", self._gave_up(f"HTTP {status}: {attempt.error}"))
                attempt.wait_ms = self._sleep(self._backoff(failures))
                continue
            attempt.outcome = "bad_request"  # any other 4xx: about the content
            return _Answer("bad_request", _error_message(status, attempt.error))

    def _gave_up(self, last_error: str | None) -> str:
        return f"gave up after {self.max_retries + 1} attempts; last error: {last_error}"

    def _backoff(self, n: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2^(n-1), capped."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (n - 1))
        with self._rng_lock:
            return ceiling * (0.5 + self._rng.random() / 2)

    def _sleep(self, seconds: float) -> int:
        self.stop.wait(seconds)
        return round(seconds * 1000)

    def _text(self, value: object) -> str:
        text = self.credentials.redact(str(value))
        return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "..."


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


def _error_message(status: int, body: str | None) -> str:
    """mParticle's error messages from a 4xx body, else the body itself."""
    with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
        errors = orjson.loads(body or "").get("errors") or []
        messages = [e.get("message") or e.get("code") for e in errors if isinstance(e, dict)]
        if messages:
            return f"HTTP {status}: " + "; ".join(str(m) for m in messages)
    return f"HTTP {status}: {body or '(no body)'}"
