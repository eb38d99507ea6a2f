"""What a destination is to the push: the seam between the shared sending machinery and an API.

The send plan, packing mechanics, outbox, transport (retry loop, backoff, splitting),
rate limiter and ledger are shared. What differs between APIs is one `Route` per
destination, made by the destination's own module in `loader.push.destinations` and
listed in its registry: the replay set it reads, its packing (limits, framing, local
checks), its settings schema, how its endpoint and credentials are found, and its client,
a `Destination`: the URL and auth of a request, how batch bodies are framed into a request
body, and how an answer is classified (`classify`: status, headers and body in, an
`Answer` out).
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import orjson
import requests

from loader.errors import LoaderError
from loader.push.destination_settings import Setting
from loader.push.packing import Group, Pack, PackedBatch, PackingLimits, Validator


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
    # request alone); the others are sent again at once (throttled users, say)
    hold: Callable[[bytes], bool] | None = None
    # SPLIT: when set, the batches at these positions of the request are refused with
    # these messages and the others sent again, without halving (a 400 naming indices)
    refused: Mapping[int, str] | None = None


class Destination(Protocol):
    """A destination's client: one API that receives bulk requests of batches."""

    url: str  # where each request is posted

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


class Secrets(Protocol):
    """A destination's credentials: the key the ledger fingerprints, and a redactor."""

    @property
    def api_key(self) -> str: ...

    def redact(self, text: str) -> str:
        """`text` without any secret."""
        ...


Settings = Mapping[str, Any]  # a destination's resolved settings (destination_settings)


def no_build_settings(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Route:
    """Everything the loader knows of one destination; its module makes it, the registry
    (`loader.push.destinations`) lists it. No other module names a destination."""

    name: str  # --destination NAME, the ledger's destination, models/destinations/NAME/
    service: str  # who answers, as the user knows it ("mParticle")
    replay_table: str  # the dbt model the push reads
    limits: PackingLimits
    default_rate: float  # events (or batches) per second when the run does not say
    validator: Validator | None  # the local checks of one batch, before sending
    pack: Pack  # a group into batches, in the destination's framing
    assemble: Callable[[Group, str], PackedBatch]  # an open batch again, under its id
    dry_run_body: Callable[[Iterable[bytes]], bytes]  # a request body, secrets masked
    settings: tuple[Setting, ...]  # what --destination-option takes
    endpoint_url: Callable[[Settings, str | None], str]  # settings, --endpoint -> the URL
    credentials: Callable[[Settings], Secrets]  # from env vars or a file a setting names
    client: Callable[[str, Any, Settings], Destination]  # url, credentials, settings
    # settings the build decided (replay_build_settings), used unless given
    build_settings: Callable[[duckdb.DuckDBPyConnection, str], dict[str, Any]] = no_build_settings
    batches_per_request: str | None = None  # the setting that lowers batches a request


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


def json_answer(body: str) -> object:
    """An answer's body parsed as JSON, or None when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def answer_error(parsed: object, body: str) -> str:
    """The `error` text of a JSON answer (`parsed`), else the body as it came."""
    if isinstance(parsed, dict) and isinstance(error := parsed.get("error"), str):
        return error
    return body or "(no body)"
