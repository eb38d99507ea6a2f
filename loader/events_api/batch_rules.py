"""What a replay request and batch must satisfy before the Events API accepts it.

Pure functions, shared by the emulator (which refuses bad batches) and the push loader
(which checks locally before sending). Written from the fields the Events API
documentation describes rather than mParticle's published JSON schema, which is out of
date.

Limits, as the emulator applies them:
- a request body is at most 256 KB (262,144 bytes), measured after any gzip decoding;
- a request holds at most 100 batches;
- a batch is at most 128 KB (131,072 bytes), measured as the batch re-serialised as
  compact JSON by orjson (no whitespace), which is what the loader sends.

Entry points: `validate_batch(batch, index)` (a dict), `validate_batch_json(data, index)`
(bytes already serialised), `check_request(body, bulk=...)` (a whole request body), and
the limit checks `check_request_size`, `check_batch_count`, `check_batch_size`.

Messages name the batch index (when given), the event index and the field, e.g.
`batch 3, event 12: data.timestamp_unixtime_ms must be an integer (got string "159...")`.

One user per batch: a batch is one user by construction (one `mpid` field, one
`user_identities` map). The rules refuse what could smuggle in a second user: an `mpid`
that is not a single 64-bit integer, and `user_identities` in the list shape (which can
name several identities of one type).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from loader.events_api.limits import (
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
)

MAX_EVENT_NAME_CHARS = 256
MAX_EVENT_ATTRIBUTES = 100
MAX_ATTRIBUTE_VALUE_CHARS = 4096
MAX_USER_ATTRIBUTES = 100
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

ENVIRONMENTS = frozenset({"production", "development"})

# Same list as seeds/events_api_event_types.csv (a test keeps them equal).
EVENT_TYPES = frozenset(
    {
        "custom_event",
        "screen_view",
        "session_start",
        "session_end",
        "commerce_event",
        "crash_report",
        "network_performance",
        "breadcrumb",
        "profile",
        "push_registration",
        "application_state_transition",
        "push_message",
        "opt_out",
        "uninstall",
        "media",
    }
)

# `media` and `attribution` are disputed between mParticle's sources; both are accepted.
CUSTOM_EVENT_TYPES = frozenset(
    {
        "navigation",
        "location",
        "search",
        "transaction",
        "user_content",
        "user_preference",
        "social",
        "other",
        "media",
        "attribution",
    }
)
COMMERCE_EVENT_TYPES = CUSTOM_EVENT_TYPES | frozenset(
    {
        "add_to_cart",
        "remove_from_cart",
        "checkout",
        "checkout_option",
        "click",
        "view_detail",
        "purchase",
        "refund",
        "promotion_view",
        "promotion_click",
        "add_to_wishlist",
        "remove_from_wishlist",
        "impression",
        "consent_granted",
        "consent_denied",
    }
)

# The published schema's identity types plus those it lacks but the documentation names.
IDENTITY_TYPES = frozenset(
    {
        "other",
        "customer_id",
        "facebook",
        "twitter",
        "google",
        "microsoft",
        "yahoo",
        "email",
        "alias",
        "facebook_custom_audience_id",
        "other_id_2",
        "other_id_3",
        "other_id_4",
        "other_id_5",
        "other_id_6",
        "other_id_7",
        "other_id_8",
        "other_id_9",
        "other_id_10",
        "mobile_number",
        "phone_number_2",
        "phone_number_3",
    }
)

# Batch-level fields of the published schema, plus `partner_identities`.
BATCH_FIELDS = frozenset(
    {
        "source_request_id",
        "events",
        "device_info",
        "application_info",
        "user_attributes",
        "deleted_user_attributes",
        "user_identities",
        "environment",
        "api_key",
        "api_keys",
        "ip",
        "integration_attributes",
        "context",
        "partner_identity",
        "partner_identities",
        "source_info",
        "mp_deviceid",
        "attribution_info",
        "timestamp_unixtime_ms",
        "batch_id",
        "mpid",
        "origin_mpid",
        "sdk_version",
        "consent_state",
        "job_id",
    }
)

# Fields a replay must not send, and why.
REPLAY_FORBIDDEN = {
    "batch_id": "mParticle would de-duplicate the replay against the original batch",
    "timestamp_unixtime_ms": "each event keeps its own timestamp",
    "source_info": "it describes the original input, not the replay",
}


Add = Callable[[str], None]  # records one problem; validate_batch adds batch/event indexes


@dataclass
class RequestCheck:
    """The outcome of checking one request body: its batches and, per bad batch, one message."""

    batches: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    n_batches: int = 0  # batches in the body, once it parsed
    status: int = 200  # 400 or 413 when `errors` is not empty

    @property
    def ok(self) -> bool:
        return not self.errors


def describe(value: Any) -> str:
    """A short, typed rendering of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"string {orjson.dumps(text).decode()}"
    if isinstance(value, list):
        return f"array of {len(value)}"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def is_int(value: Any) -> bool:
    """A JSON integer (not a boolean, not a float, not a string)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_request_size(n_bytes: int) -> str | None:
    if n_bytes > MAX_REQUEST_BYTES:
        return f"request body is {n_bytes} bytes; the limit is {MAX_REQUEST_BYTES} bytes (256 KB)"
    return None


def check_batch_count(n_batches: int) -> str | None:
    if n_batches > MAX_BATCHES_PER_REQUEST:
        return (
            f"request holds {n_batches} batches; the limit is {MAX_BATCHES_PER_REQUEST} a request"
        )
    return None


def batch_size(batch: Any) -> int:
    """Bytes of `batch` as compact JSON (orjson), the measure of the 128 KB limit."""
    return len(orjson.dumps(batch))


def check_batch_size(n_bytes: int, index: int | None = None) -> str | None:
    if n_bytes > MAX_BATCH_BYTES:
        return (
            f"{_where(index)}batch is {n_bytes} bytes as compact JSON; "
            f"the limit is {MAX_BATCH_BYTES} bytes (128 KB)"
        )
    return None


def _where(index: int | None, event: int | None = None) -> str:
    parts = []
    if index is not None:
        parts.append(f"batch {index}")
    if event is not None:
        parts.append(f"event {event}")
    return ", ".join(parts) + ": " if parts else ""


def validate_batch(batch: Any, index: int | None = None, *, size: int | None = None) -> list[str]:
    """Every problem with one batch, as messages naming batch `index`, event and field.

    `size` is the batch's compact JSON size when the caller already knows it (it is
    measured otherwise). An empty list means mParticle's rules and the replay rules hold.
    """
    if not isinstance(batch, dict):
        return [f"{_where(index)}a batch must be a JSON object (got {describe(batch)})"]
    problems: list[str] = []

    def add(message: str, event: int | None = None) -> None:
        problems.append(_where(index, event) + message)

    if size is None:
        try:
            size = batch_size(batch)
        except TypeError as exc:
            add(f"batch cannot be serialised as JSON ({exc})")
            size = 0
    too_big = check_batch_size(size, index)
    if too_big:
        problems.append(too_big)

    for name in batch:
        if name in REPLAY_FORBIDDEN:
            add(f"{name} must not be sent in a replay ({REPLAY_FORBIDDEN[name]})")
        elif name not in BATCH_FIELDS:
            add(f"unknown batch field {orjson.dumps(name).decode()}")

    environment = batch.get("environment")
    if "environment" not in batch or environment is None:
        add("environment is required (production or development)")
    elif environment not in ENVIRONMENTS:
        add(f"environment must be production or development (got {describe(environment)})")

    _check_source_request_id(batch, add)
    _check_user(batch, add)
    _check_context(batch.get("context"), add)
    _check_user_attributes(batch, add)
    for name in ("device_info", "application_info", "integration_attributes", "consent_state"):
        if batch.get(name) is not None and not isinstance(batch[name], dict):
            add(f"{name} must be an object (got {describe(batch[name])})")
    ip = batch.get("ip")
    if "ip" in batch and (not isinstance(ip, str) or not ip):
        add(f"ip must be a non-empty string when sent (got {describe(ip)})")

    events = batch.get("events")
    if events is not None:
        if not isinstance(events, list):
            add(f"events must be an array (got {describe(events)})")
        else:
            for position, event in enumerate(events):
                _check_event(event, functools.partial(add, event=position))
    return problems


def validate_batch_json(data: bytes, index: int | None = None) -> list[str]:
    """`validate_batch` for a batch already serialised (its length is the size measured)."""
    try:
        batch = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return [f"{_where(index)}batch is not valid JSON ({exc})"]
    return validate_batch(batch, index, size=len(data))


def _check_source_request_id(batch: dict[str, Any], add: Add) -> None:
    if "source_request_id" in batch:
        value = batch["source_request_id"]
        if not isinstance(value, str) or not value:
            add(f"source_request_id must be a non-empty string (got {describe(value)})")


def _check_user(batch: dict[str, Any], add: Add) -> None:
    mpid = batch.get("mpid")
    if mpid is not None and mpid_text(mpid) is None:
        add(f"mpid must be one 64-bit integer (one user per batch; got {describe(mpid)})")
    identities = batch.get("user_identities")
    if identities is None:
        return
    if isinstance(identities, list):
        add(
            "user_identities must be an object mapping identity type to value "
            "(the list shape can name several users; send the map)"
        )
        return
    if not isinstance(identities, dict):
        add(f"user_identities must be an object (got {describe(identities)})")
        return
    for name, value in identities.items():
        if name not in IDENTITY_TYPES:
            add(f"user_identities.{name} is not a known identity type")
        elif not isinstance(value, str):
            add(f"user_identities.{name} must be a string (got {describe(value)})")


def mpid_text(mpid: Any) -> str | None:
    """The mpid as exact decimal text, or None when it is not one signed 64-bit integer.

    mParticle documents an integer; exports sometimes write it as a decimal string.
    """
    if is_int(mpid):
        value = mpid
    elif isinstance(mpid, str) and mpid.lstrip("-").isdigit() and mpid.isascii():
        value = int(mpid)
    else:
        return None
    return str(value) if INT64_MIN <= value <= INT64_MAX else None


def _check_context(context: Any, add: Add) -> None:
    if context is None:
        return
    if not isinstance(context, dict):
        add(f"context must be an object (got {describe(context)})")
        return
    for path in _paths_of_key(context, "block_metadata", "context"):
        add(f"{path} must not be sent in a replay (it describes the original block)")
    plan = context.get("data_plan")
    if plan is None:
        return
    if not isinstance(plan, dict):
        add(f"context.data_plan must be an object (got {describe(plan)})")
        return
    plan_id = plan.get("plan_id")
    if not isinstance(plan_id, str) or not plan_id:
        add(f"context.data_plan.plan_id is required (got {describe(plan_id)})")
    version = plan.get("plan_version")
    if version is not None and not is_int(version):
        add(f"context.data_plan.plan_version must be an integer (got {describe(version)})")


def _paths_of_key(value: Any, key: str, path: str) -> list[str]:
    """Dotted paths of every member named `key` inside `value`."""
    found = []
    if isinstance(value, dict):
        for name, child in value.items():
            child_path = f"{path}.{name}"
            if name == key:
                found.append(child_path)
            found.extend(_paths_of_key(child, key, child_path))
    elif isinstance(value, list):
        for position, child in enumerate(value):
            found.extend(_paths_of_key(child, key, f"{path}[{position}]"))
    return found


def _check_attribute_bag(
    attributes: Any, field: str, limit: int, add: Add, *, lists: bool = False
) -> None:
    """An attributes object: at most `limit` members, each a valid value (or, with
    `lists`, a list of valid values; the first bad item is reported)."""
    if attributes is None:
        return
    if not isinstance(attributes, dict):
        add(f"{field} must be an object (got {describe(attributes)})")
        return
    if len(attributes) > limit:
        add(f"{field} has {len(attributes)} attributes; the limit is {limit}")
    for name, value in attributes.items():
        values = value if lists and isinstance(value, list) else [value]
        for item in values:
            problem = _attribute_value_problem(item)
            if problem:
                add(f"{field}.{name} {problem}")
                break


def _check_user_attributes(batch: dict[str, Any], add: Add) -> None:
    _check_attribute_bag(
        batch.get("user_attributes"), "user_attributes", MAX_USER_ATTRIBUTES, add, lists=True
    )
    deleted = batch.get("deleted_user_attributes")
    if deleted is not None and (
        not isinstance(deleted, list) or not all(isinstance(name, str) for name in deleted)
    ):
        add("deleted_user_attributes must be an array of strings")


def _attribute_value_problem(value: Any) -> str | None:
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_VALUE_CHARS:
            return f"value is {len(value)} characters; the limit is {MAX_ATTRIBUTE_VALUE_CHARS}"
        return None
    if value is None or isinstance(value, bool | int | float):
        return None
    return f"must be a string, number, boolean or null (got {describe(value)})"


def _check_event(event: Any, add: Add) -> None:
    if not isinstance(event, dict):
        add(f"an event must be a JSON object (got {describe(event)})")
        return
    for name in event:
        if name not in ("event_type", "data"):
            add(f"unknown event field {orjson.dumps(name).decode()}")
    event_type = event.get("event_type")
    if event_type is None or event_type == "":
        add("event_type is required")
    elif event_type not in EVENT_TYPES:
        add(f"event_type {describe(event_type)} is not a valid event type")
    data = event.get("data")
    if not isinstance(data, dict):
        add(f"data must be an object (got {describe(data)})")
        return

    timestamp = data.get("timestamp_unixtime_ms")
    if "timestamp_unixtime_ms" not in data or timestamp is None:
        add("data.timestamp_unixtime_ms is required (a replay keeps the event's time)")
    elif not is_int(timestamp):
        add(f"data.timestamp_unixtime_ms must be an integer (got {describe(timestamp)})")
    elif not 0 <= timestamp <= INT64_MAX:
        add(f"data.timestamp_unixtime_ms is out of range (got {timestamp})")
    if "event_id" in data:
        add("data.event_id must not be sent (it is assigned by mParticle)")

    name = data.get("event_name")
    if event_type == "custom_event":
        if not isinstance(name, str) or not name:
            add(f"data.event_name is required for a custom_event (got {describe(name)})")
        custom_type = data.get("custom_event_type")
        if custom_type not in CUSTOM_EVENT_TYPES:
            add(
                f"data.custom_event_type must be one of "
                f"{', '.join(sorted(CUSTOM_EVENT_TYPES))} (got {describe(custom_type)})"
            )
    elif event_type == "commerce_event":
        custom_type = data.get("custom_event_type")
        if custom_type is not None and custom_type not in COMMERCE_EVENT_TYPES:
            add(f"data.custom_event_type {describe(custom_type)} is not valid for a commerce_event")
    elif event_type == "screen_view":
        screen = data.get("screen_name")
        if not isinstance(screen, str) or not screen:
            add(f"data.screen_name is required for a screen_view (got {describe(screen)})")
    if name is not None:
        if not isinstance(name, str):
            add(f"data.event_name must be a string (got {describe(name)})")
        elif len(name) > MAX_EVENT_NAME_CHARS:
            add(f"data.event_name is {len(name)} characters; the limit is {MAX_EVENT_NAME_CHARS}")

    _check_attribute_bag(
        data.get("custom_attributes"), "data.custom_attributes", MAX_EVENT_ATTRIBUTES, add
    )
    flags = data.get("custom_flags")
    if flags is not None and not isinstance(flags, dict):
        add(f"data.custom_flags must be an object (got {describe(flags)})")


def check_request(body: bytes, *, bulk: bool) -> RequestCheck:
    """Parse and check one request body for `/events` (bulk=False) or `/bulkevents`.

    Request-level problems (size, JSON, shape, batch count) stop the check with one
    message; otherwise every batch is validated and each bad batch gives one message
    (its problems joined with "; ").
    """
    result = RequestCheck()

    def refuse(message: str, status: int = 400) -> RequestCheck:
        result.errors.append(message)
        result.status = status
        return result

    too_big = check_request_size(len(body))
    if too_big:
        return refuse(too_big, 413)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return refuse(f"request body is not valid JSON ({exc})")
    if bulk:
        if not isinstance(payload, list):
            return refuse(
                f"a bulk request must be a JSON array of batches (got {describe(payload)})"
            )
        result.n_batches = len(payload)
        too_many = check_batch_count(len(payload))
        if too_many:
            return refuse(too_many)
        batches = payload
    else:
        if not isinstance(payload, dict):
            return refuse(
                "/events takes one batch (a JSON object); send arrays to /bulkevents "
                f"(got {describe(payload)})"
            )
        batches = [payload]
    result.n_batches = len(batches)
    for position, batch in enumerate(batches):
        problems = validate_batch(batch, position)
        if problems:
            result.errors.append("; ".join(problems))
    if result.errors:
        result.status = 400
    else:
        result.batches = batches
    return result
