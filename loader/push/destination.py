"""What a destination is to the push: the seam between the shared sending machinery and an API.

The send plan, packing mechanics, outbox, transport (retry loop, backoff, splitting),
rate limiter and ledger are shared. What differs between APIs sits behind `Destination`:
its packing limits, the URL and auth of a request, how batch bodies are framed into a
request body, the local batch checks, and how an answer is classified (`classify`: status,
headers and body in, an `Answer` out). Implementations live in `loader.push.destinations`.
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import requests

from loader.errors import LoaderError
from loader.push.packing import PackingLimits, Validator


class ConfigurationError(LoaderError):
    """Missing credentials, an endpoint the loader refuses, or an unusable setting."""


class Verdict(enum.Enum):
    """What the transport does with an answer."""

    ACCEPTED = "accepted"  # every batch of the request is taken
    RETRY = "retry"  # the same body again after a backoff (5xx, 408, timeouts, drops)
    RATE_LIMITED = "rate_limited"  # everyone waits, then the same body again; not a failure
    SPLIT = "split"  # something in the request is refused: halve it to find the batch
    STOP = "stop"  # nothing will be accepted (credentials, wrong endpoint): the run stops


@dataclass(frozen=True)
class Signals:
    """What an answer's headers said about the rate limit, as received (the ledger keeps it)."""

    retry_after: str | None = None
    rate_limit_exceeded: str | None = None
    rate_limit_percentage_used: str | None = None


@dataclass(frozen=True)
class Answer:
    """A classified HTTP answer."""

    verdict: Verdict
    message: str | None = None  # RETRY, SPLIT: the error; STOP: why the run stops
    wait_s: float | None = None  # RATE_LIMITED: the wait the destination asks for, if any
    slow_down: bool = False  # RATE_LIMITED: lower the shared rate as well
    signals: Signals = Signals()
    # RATE_LIMITED: when set, only the batches whose body it matches wait (`wait_s`, this
    # request alone); the others are sent again at once (throttled users of Amplitude)
    hold: Callable[[bytes], bool] | None = None
    # SPLIT: when set, the batches at these positions of the request are refused with
    # these messages and the others sent again, without halving (Amplitude's 400 indices)
    refused: Mapping[int, str] | None = None


class Destination(Protocol):
    """One API that receives bulk requests of batches."""

    url: str  # where each request is posted
    limits: PackingLimits  # how batches and requests are cut
    default_rate: float  # batches/s when the run does not say

    @staticmethod
    def validator() -> Validator | None:
        """The local checks of one batch (before sending), or None."""
        ...

    def prepare(self, session: requests.Session) -> None:
        """Set auth and headers on a new HTTP session."""
        ...

    def request_body(self, batch_bodies: Iterable[bytes]) -> bytes:
        """One request's body from its batches' bodies."""
        ...

    def classify(self, status: int, headers: Mapping[str, str], body: str) -> Answer:
        """What an answer means (`body` already redacted and cut short)."""
        ...

    def redact(self, text: str) -> str:
        """`text` without any secret of this destination."""
        ...

    def pace(self, batch_bodies: Iterable[bytes]) -> float:
        """Seconds to wait before sending these batches, beyond the shared rate (limits per
        user, say); 0 when the destination has none."""
        ...


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP Retry-After value as seconds: a number, or an HTTP date.

    None when there is none, or it is no wait (not a number, NaN, negative): the caller
    backs off as without one. It may be huge or infinite: the caller caps the wait.
    """
    if not value:
        return None
    value = value.strip()
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return seconds if seconds >= 0 else None  # NaN compares false
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None
