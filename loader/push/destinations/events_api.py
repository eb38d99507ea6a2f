"""mParticle's Events API as a push destination: `POST {pod}/bulkevents`.

- Packing (`pack_group`, `assemble`, `request_body`): a batch is the context's members,
  a deterministic `source_request_id` and `"events": [...]`, the texts embedded byte for
  byte; a request is a JSON array of batches.

- Limits: a batch at most 128 KB, a request at most 256 KB and 100 batches; sends at
  250 batches/s by default, under the account's default limit of 270.
- Settings: `pod` (us1, us2, eu1, au1; `--pod`) and `api_secret_file` (`--api-secret-file`).
- Auth: HTTP Basic with the input's (or feed's) API key and secret, from
  MPARTICLE_API_KEY and MPARTICLE_API_SECRET (or a file, `--api-secret-file`). The secret
  is never logged, stored or put in a message: texts that leave the loader pass through
  `Credentials.redact`.
- Answers (`classify`):
  - 2xx: accepted;
  - 429: rate limited: wait as `Retry-After` says (or back off); with
    `X-mp-rate-limit-exceeded: acceleration` the shared rate is lowered too;
  - 5xx, 408, 425: retried with the same body (the same `source_request_id`s, so
    mParticle de-duplicates what it already had);
  - 400, 413 and any other 4xx: about the content: the request is split until the bad
    batch is alone, keeping mParticle's messages from the error body;
  - 401, 403 (credentials), 404, 405 and redirects (a misrouted endpoint): the run stops.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
import requests

from loader.events_api.batch_rules import validate_batch
from loader.events_api.errors import error_messages
from loader.events_api.limits import MAX_BATCH_BYTES, MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES
from loader.events_api.pods import BULK_PATH, DEFAULT_POD, PODS
from loader.push.destination import (
    Answer,
    ConfigurationError,
    Route,
    Settings,
    Signals,
    Verdict,
    retry_after_seconds,
)
from loader.push.destination_settings import Setting
from loader.push.packing import ID_LENGTH, Group, PackedBatch, PackingLimits, batch_id
from loader.settings import read_secret_file

NAME = "events_api"

KEY_ENV, SECRET_ENV = "MPARTICLE_API_KEY", "MPARTICLE_API_SECRET"
DEFAULT_RATE = 250.0  # batches/s, under mParticle's default 270
LIMITS = PackingLimits(
    max_batch_bytes=MAX_BATCH_BYTES,
    max_request_bytes=MAX_REQUEST_BYTES,
    max_batches_per_request=MAX_BATCHES_PER_REQUEST,
)
SPLIT_STATUSES = frozenset({400, 413})
RETRYABLE_STATUSES = frozenset({408, 425, 500, 502, 503, 504})
FATAL_STATUSES = {
    401: "mParticle refused the credentials (401 Unauthorized)",
    403: "mParticle refused the credentials (403 Forbidden)",
    404: "the endpoint answered 404 Not Found: check --pod / --endpoint",
    405: "the endpoint answered 405 Method Not Allowed: check --pod / --endpoint",
}


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str = field(repr=False)

    @classmethod
    def from_env(cls, api_secret: str | None = None) -> Credentials:
        """The key from MPARTICLE_API_KEY; the secret `api_secret` (read from a file by the
        caller), else from MPARTICLE_API_SECRET."""
        key = os.environ.get(KEY_ENV, "")
        secret = api_secret or os.environ.get(SECRET_ENV, "")
        missing = [name for name, value in ((KEY_ENV, key), (SECRET_ENV, secret)) if not value]
        if missing:
            where = " and ".join(missing)
            if not secret:
                where += " (or give --api-secret-file PATH, - for stdin)"
            raise ConfigurationError(
                f"set {where}: the API key and secret of the input or feed to send to; or "
                "use --dry-run to see the plan without sending"
            )
        return cls(key, secret)

    def redact(self, text: str) -> str:
        """`text` without the secret (and without the Basic auth token made from it)."""
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
        name = (pod or DEFAULT_POD).lower()
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
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain http to {parts.hostname}: the API secret would travel "
            "unencrypted. Use https (plain http is allowed to 127.0.0.1/localhost only)."
        )
    return base


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_message(status: int, body: str | None) -> str:
    """mParticle's error messages from a 4xx body, else the body itself."""
    messages = error_messages(body)
    if messages:
        return f"HTTP {status}: " + "; ".join(messages)
    return f"HTTP {status}: {body or '(no body)'}"


class EventsApiDestination:
    """The Events API under `base_url` (a pod's URL, or the emulator's)."""

    def __init__(self, base_url: str, credentials: Credentials) -> None:
        self.url = base_url.rstrip("/") + BULK_PATH
        self.credentials = credentials

    def prepare(self, session: requests.Session) -> None:
        session.auth = (self.credentials.api_key, self.credentials.api_secret)
        session.headers.update(
            {"Content-Type": "application/json", "User-Agent": "mparticle-backfill-loader"}
        )

    def request_body(self, batch_bodies: Iterable[bytes]) -> bytes:
        return request_body(batch_bodies)

    def redact(self, text: str) -> str:
        return self.credentials.redact(text)

    def classify(self, status: int, headers: Mapping[str, str], body: str) -> Answer:
        return classify(status, headers, body)

    def pace(self, batch_bodies: Iterable[bytes]) -> float:
        return 0.0  # the shared rate is the Events API's only limit


def classify(status: int, headers: Mapping[str, str], body: str) -> Answer:
    """What an Events API answer means; see the module docstring."""
    lowered = {name.lower(): value for name, value in headers.items()}
    retry_after = lowered.get("retry-after")
    exceeded = lowered.get("x-mp-rate-limit-exceeded")
    signals = Signals(retry_after, exceeded, lowered.get("x-mp-rate-limit-percentage-used"))
    if 200 <= status < 300:
        return Answer(Verdict.ACCEPTED, signals=signals)
    if status == 429:
        return Answer(
            Verdict.RATE_LIMITED,
            wait_s=retry_after_seconds(retry_after),
            slow_down=(exceeded or "").strip().lower() == "acceleration",
            signals=signals,
        )
    if status in SPLIT_STATUSES:
        return Answer(Verdict.SPLIT, error_message(status, body), signals=signals)
    if status in FATAL_STATUSES or 300 <= status < 400:
        reason = FATAL_STATUSES.get(status, f"the endpoint redirected ({status})")
        if status in (401, 403):
            reason += (
                f": check {KEY_ENV} and {SECRET_ENV}, and that they belong to the "
                "pod/endpoint you send to"
            )
        return Answer(Verdict.STOP, reason, signals=signals)
    if status in RETRYABLE_STATUSES or status >= 500:
        return Answer(Verdict.RETRY, f"HTTP {status}: {body}", signals=signals)
    return Answer(Verdict.SPLIT, error_message(status, body), signals=signals)  # other 4xx


# Framing: a batch is the context's members, a deterministic `source_request_id`, and
# `"events": [...]`. Event and context texts are embedded exactly as `replay_events`
# holds them: never parsed and serialised again, so 64-bit integers, number spellings,
# key order and every other byte stay as the replay set says.
_HEAD = b'{"source_request_id":"'
_EVENTS = b'"events":['
_TAIL = b"]}"
_RESERVED_MEMBERS = ("events", "source_request_id")


def _context_members(group: Group) -> tuple[bytes, str | None]:
    """The context's members as bytes (without braces), or an error when unusable."""
    text = group.batch_context
    if not (text[:1] == "{" and text[-1:] == "}"):
        text = text.strip()
        if not (text[:1] == "{" and text[-1:] == "}"):
            return b"", "batch_context is not a JSON object"
    inner = text[1:-1]
    if '"events"' in inner or '"source_request_id"' in inner:
        try:
            members = orjson.loads(text)
        except orjson.JSONDecodeError:
            return b"", "batch_context is not valid JSON"
        clash = [name for name in _RESERVED_MEMBERS if name in members]
        if clash:
            return b"", f"batch_context must not hold {' or '.join(clash)} (the loader sets it)"
    inner = inner.strip()
    return inner.encode(), None


def _head(batch_id_text: str, members: bytes) -> bytes:
    if members:
        return b"".join((_HEAD, batch_id_text.encode(), b'",', members, b",", _EVENTS))
    return b"".join((_HEAD, batch_id_text.encode(), b'",', _EVENTS))


def _head_bytes(members: bytes) -> int:
    """Bytes of a batch without its events."""
    return len(_HEAD) + ID_LENGTH + 2 + (len(members) + 1 if members else 0) + len(_EVENTS) + 2


def pack_group(group: Group, max_batch_bytes: int) -> Iterator[PackedBatch]:
    """Fill batches densely, in order: each takes as many of the next events as fit."""
    members, context_error = _context_members(group)
    head_bytes = _head_bytes(members)
    offsets = group.offsets
    n = len(offsets) - 1
    # a batch of events i..j-1 has head_bytes + offsets[j] - offsets[i] - 1 bytes
    if context_error is None and head_bytes + offsets[n] - offsets[0] - 1 <= max_batch_bytes:
        if n:
            yield _batch(group, members, 0, n, None)
        return
    i = 0
    while i < n:
        if context_error is not None:
            j, error = i + 1, context_error
        else:
            j = bisect_right(offsets, offsets[i] + max_batch_bytes - head_bytes + 1, i, n + 1) - 1
            error = None
            if j == i:
                j = i + 1
                error = (
                    f"event is {group.size(i)} bytes; with its batch context the batch would "
                    f"be {head_bytes + group.size(i)} bytes, over the {max_batch_bytes}-byte "
                    f"({max_batch_bytes / 1024:g} KB) batch limit"
                )
        yield _batch(group, members, i, j, error)
        i = j


def _batch(group: Group, members: bytes, i: int, j: int, error: str | None) -> PackedBatch:
    offsets, key_offsets = group.offsets, group.key_offsets
    base, key_base = offsets[0], key_offsets[0]
    events = memoryview(group.events)[offsets[i] - base : offsets[j] - base - 1]
    keys = group.keys[key_offsets[i] - key_base : key_offsets[j] - key_base]
    sid = batch_id(members, keys, events)
    if members:
        body = b"".join((_HEAD, sid.encode(), b'",', members, b",", _EVENTS, events, _TAIL))
    else:
        body = b"".join((_HEAD, sid.encode(), b'",', _EVENTS, events, _TAIL))
    hashes = group.content_hashes
    if hashes is not None and (i or j < len(hashes)):
        hashes = hashes[i:j]
    return PackedBatch(sid, group.user_key, group.context_key, j - i, keys, hashes, body, error)


def assemble(group: Group, source_request_id: str) -> PackedBatch:
    """All of `group` as one batch under a given id (an earlier run's batch, sent again)."""
    members, error = _context_members(group)
    body = b"".join((_head(source_request_id, members), group.events[:-1], _TAIL))
    return PackedBatch(
        source_request_id,
        group.user_key,
        group.context_key,
        len(group),
        group.keys,
        group.content_hashes,
        body,
        error,
    )


def request_body(bodies: Iterable[bytes]) -> bytes:
    """A `/bulkevents` body: the batches' bodies as one JSON array."""
    return b"[" + b",".join(bodies) + b"]"


SETTINGS = (
    Setting("pod", "the mParticle pod (data region) to send to; also --pod", choices=tuple(PODS)),
    Setting(
        "api_secret_file",
        "a file holding the API secret (- for stdin) instead of MPARTICLE_API_SECRET; "
        "also --api-secret-file",
    ),
)


def _credentials(settings: Settings) -> Credentials:
    path = settings.get("api_secret_file")
    return Credentials.from_env(None if path is None else read_secret_file(path))


ROUTE = Route(
    name=NAME,
    service="mParticle",
    replay_table="replay_events",
    limits=LIMITS,
    default_rate=DEFAULT_RATE,
    validator=validate_batch,
    pack=pack_group,
    assemble=assemble,
    dry_run_body=request_body,
    settings=SETTINGS,
    endpoint_url=lambda settings, endpoint: endpoint_url(settings.get("pod"), endpoint),
    credentials=_credentials,
    client=lambda url, credentials, settings: EventsApiDestination(url, credentials),
)
