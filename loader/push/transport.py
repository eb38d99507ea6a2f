"""The HTTP transport: rate limit, retries, splitting; the same for every destination.

`Transport.send` delivers one bulk request (a list of batches) to a `Destination` and
says, per batch, what happened: acknowledged, rejected (a refusal isolated to that batch,
with the destination's message), or failed (retries used up, or the run was stopped).
Every HTTP attempt is reported as an `Attempt`.

The destination classifies each answer (`Destination.classify`); the transport acts on
the verdict:
- rate limited: wait as the destination says (at most `MAX_RETRY_AFTER_S`), or back off
  exponentially with jitter, pausing every worker, and lower the shared rate when asked.
  Waiting is not a failed attempt.
- retry (and timeouts, dropped connections): the same body again after a backoff with
  jitter, up to `max_retries` times.
- split: the request is split in halves until each bad batch is alone; its message is
  kept, the other batches are sent. When the answer names the bad batches (`refused`),
  those are rejected at once and the others sent again.
- throttled (a rate-limited answer whose `hold` names some batches): only those wait,
  in this worker; the rest is sent again at once.
- stop: `fatal` is set and the run stops.

Texts that leave this module pass through `Destination.redact`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter

from loader.push.attempts import Attempt
from loader.push.destination import Answer, ConfigurationError, Destination, Verdict

ERROR_TEXT_LIMIT = 2000
# The longest wait a rate-limited answer gets: a `Retry-After` above it (1e9, inf, a
# date years ahead) waits this long, then the request is tried again. mParticle asks for
# seconds; five minutes is far above any real answer, and a run never sleeps forever.
MAX_RETRY_AFTER_S = 300.0
OUTCOMES = {  # an attempt's outcome, as the ledger records it
    Verdict.ACCEPTED: "accepted",
    Verdict.RETRY: "server_error",
    Verdict.RATE_LIMITED: "rate_limited",
    Verdict.SPLIT: "bad_request",
    Verdict.STOP: "refused",
}


class RateLimiter:
    """A shared limit in batches per second for every worker thread.

    Each send reserves its batches' share of time in order (a strict schedule, no
    bursts), so the long-run rate never exceeds `rate`; as a request carries at most a
    second of the rate (`PushOptions.limits`), no second of a run, its first included,
    gets more than one request ahead of the schedule. `pause` stops everyone for a
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
    """A batch to send: its id, size in events and exact body (and its number in the
    ledger, by which the send loop records it)."""

    source_request_id: str
    event_count: int
    body: bytes
    batch_no: int | None = None


@dataclass
class SendResult:
    acknowledged: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)  # HTTP attempts per batch
    fatal: str | None = None


@dataclass
class _Outcome:
    """How a request (or part of one) ended."""

    kind: str  # accepted | split | refused | throttled | failed | fatal | stopped
    message: str | None = None
    refused: dict[int, str] | None = None  # refused: positions in the part -> message
    held: list[Outgoing] | None = None  # throttled: the batches that wait `wait_s`
    wait_s: float = 0.0


FINAL = {Verdict.ACCEPTED: "accepted", Verdict.SPLIT: "split", Verdict.STOP: "fatal"}


class Transport:
    """Sends bulk requests to `destination.url`; thread-safe (a session per thread)."""

    def __init__(
        self,
        destination: Destination,
        limiter: RateLimiter,
        *,
        stop: threading.Event,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_rate_limit_waits: int = 100,
        max_wait_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.destination = destination
        self.url = destination.url
        self.limiter = limiter
        self.stop = stop
        self.timeout = (connect_timeout_s, timeout_s)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_rate_limit_waits = max_rate_limit_waits
        self.max_wait_s = MAX_RETRY_AFTER_S if max_wait_s is None else max_wait_s
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.verify = True  # TLS certificates are always checked
            self.destination.prepare(session)
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._local.session = session
        return session

    def send(self, batches: Sequence[Outgoing], request_no: int) -> SendResult:
        """Deliver `batches` (one bulk request, split when asked); the outcome of each batch."""
        result = SendResult()
        queue: list[tuple[Sequence[Outgoing], float]] = [(batches, 0.0)]
        while queue:
            part, delay = queue.pop(0)
            if delay > 0:  # throttled batches: only this worker waits, the others go on
                self.stop.wait(delay)
            outcome = self._deliver(part, request_no, result)
            ids = [b.source_request_id for b in part]
            if outcome.kind == "accepted":
                result.acknowledged.extend(ids)
            elif outcome.kind == "refused" and outcome.refused:
                for position, message in outcome.refused.items():
                    result.rejected[ids[position]] = message
                rest = [b for k, b in enumerate(part) if k not in outcome.refused]
                if rest:
                    queue.insert(0, (rest, 0.0))
            elif outcome.kind == "throttled" and outcome.held:
                held = {b.source_request_id for b in outcome.held}
                queue[:0] = [
                    ([b for b in part if b.source_request_id not in held], 0.0),
                    (outcome.held, outcome.wait_s),
                ]
            elif outcome.kind == "split" and len(part) > 1:
                half = len(part) // 2
                queue[:0] = [(part[:half], 0.0), (part[half:], 0.0)]
            elif outcome.kind == "split":
                result.rejected[ids[0]] = outcome.message or "400 Bad Request"
            else:
                for sid in ids + [b.source_request_id for rest, _ in queue for b in rest]:
                    result.failed[sid] = outcome.message or outcome.kind
                if outcome.kind == "fatal":
                    result.fatal = outcome.message
                    self.stop.set()  # requests queued behind this one are not sent
                break
        return result

    def _deliver(self, part: Sequence[Outgoing], request_no: int, result: SendResult) -> _Outcome:
        """Post `part` until the destination gives a final answer, or retries run out."""
        body = self.destination.request_body(b.body for b in part)
        ids = [b.source_request_id for b in part]
        failures = rate_limited = 0
        while True:
            if not self._acquire(part, first=failures + rate_limited == 0):
                return _Outcome("stopped", "the run stopped before this batch was acknowledged")
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
            answer = self._post(body, attempt)
            if answer.verdict is Verdict.RATE_LIMITED:
                rate_limited += 1
                if rate_limited > self.max_rate_limit_waits:
                    return _Outcome("failed", f"still rate limited after {rate_limited - 1} waits")
                held = self._held(part, answer)
                if held is None:
                    attempt.wait_ms = self._wait_out(answer, rate_limited)
                elif len(held) < len(part):
                    wait = self._throttle_wait(answer, rate_limited)
                    attempt.wait_ms = round(wait * 1000)
                    return _Outcome("throttled", answer.message, held=held, wait_s=wait)
                else:  # every batch of the part is throttled: this request alone waits
                    attempt.wait_ms = self._sleep(self._throttle_wait(answer, rate_limited))
            elif answer.verdict is Verdict.SPLIT and answer.refused:
                refused = {k: m for k, m in answer.refused.items() if 0 <= k < len(part)}
                if refused:
                    return _Outcome("refused", answer.message, refused=refused)
                return _Outcome("split", answer.message)
            elif answer.verdict is Verdict.RETRY:
                failures += 1
                if failures > self.max_retries:
                    return _Outcome("failed", self._gave_up(answer.message))
                attempt.wait_ms = self._sleep(self._backoff(failures))
            else:
                return _Outcome(FINAL[answer.verdict], answer.message)

    def _post(self, body: bytes, attempt: Attempt) -> Answer:
        """One HTTP attempt, noted in `attempt`; the destination's verdict on its answer."""
        started = time.monotonic()
        try:
            response = self._session().post(
                self.url, data=body, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout as exc:
            attempt.outcome, attempt.error = "timeout", self._text(exc)
            return Answer(Verdict.RETRY, attempt.error)
        except requests.RequestException as exc:
            attempt.outcome, attempt.error = "connection_error", self._text(exc)
            return Answer(Verdict.RETRY, attempt.error)
        finally:
            attempt.latency_ms = round((time.monotonic() - started) * 1000)
        attempt.status_code = response.status_code
        text = self._text(response.text)
        answer = self.destination.classify(response.status_code, response.headers, text)
        attempt.outcome = OUTCOMES[answer.verdict]
        if answer.verdict is not Verdict.ACCEPTED:
            attempt.error = text
        attempt.retry_after = answer.signals.retry_after
        attempt.rate_limit_exceeded = answer.signals.rate_limit_exceeded
        attempt.rate_limit_percentage_used = answer.signals.rate_limit_percentage_used
        return answer

    def _acquire(self, part: Sequence[Outgoing], *, first: bool) -> bool:
        """Wait for the shared rate and, for a part's first attempt, the destination's own
        pace (a resend keeps the slot it had); False when the run is stopping."""
        if not self.limiter.acquire(len(part)) or self.stop.is_set():
            return False
        pace = self.destination.pace(b.body for b in part) if first else 0.0
        return not (pace > 0 and self.stop.wait(pace)) and not self.stop.is_set()

    @staticmethod
    def _held(part: Sequence[Outgoing], answer: Answer) -> list[Outgoing] | None:
        """The batches a throttling answer holds back; None when it names none of them."""
        if answer.hold is None:
            return None
        held = [b for b in part if answer.hold(b.body)]
        return held or None

    def _throttle_wait(self, answer: Answer, waits: int) -> float:
        wait = answer.wait_s if answer.wait_s is not None else self._backoff(waits)
        return min(wait, self.max_wait_s)

    def _wait_out(self, answer: Answer, waits: int) -> int:
        """Pause every worker as a rate-limited answer asks; the wait in ms."""
        if answer.slow_down:
            self.limiter.slow_down()
        wait = answer.wait_s if answer.wait_s is not None else self._backoff(waits)
        wait = min(wait, self.max_wait_s)  # also ends an infinite wait
        self.limiter.pause(wait)
        return round(wait * 1000)

    def _gave_up(self, last_error: str | None) -> str:
        return f"gave up after {self.max_retries + 1} attempts; last error: {last_error}"

    def _backoff(self, n: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2^(n-1), capped."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (n - 1))
        with self._rng_lock:
            return float(ceiling * (0.5 + self._rng.random() / 2))

    def _sleep(self, seconds: float) -> int:
        self.stop.wait(seconds)
        return round(seconds * 1000)

    def _text(self, value: object) -> str:
        text = self.destination.redact(str(value))
        return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "..."
