"""Amplitude's Batch Event Upload API: hosts, documented limits, answer bodies.

Sources (docs/destinations/amplitude.md):
- https://amplitude.com/docs/apis/analytics/batch-event-upload: `POST /batch` on
  api2.amplitude.com (EU residency: api.eu.amplitude.com); `{"api_key", "events",
  "options"}` in the JSON body; a payload at most 20MB; user and device ids of 5
  characters or more unless `options.min_id_length`; at most 1000 events per second for
  any one device id or user id, else 429 naming the throttled ids; 400 listing the
  indices of bad events; 413 for a payload too large.
- https://amplitude.com/docs/apis/analytics/http-api-batching-retries: up to 2000 events
  a request; an `insert_id` repeated within 7 days is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

HOSTS = {"us": "https://api2.amplitude.com", "eu": "https://api.eu.amplitude.com"}
DEFAULT_REGION = "us"
BATCH_PATH = "/batch"

# The payload limit is "20MB": read as 20,000,000 bytes, the smaller of 20 MB and 20 MiB.
MAX_REQUEST_BYTES = 20_000_000
MAX_EVENTS_PER_REQUEST = 2_000
MAX_EVENTS_PER_SECOND_PER_ID = 1_000  # per user_id and per device_id, for one API key
DEFAULT_MIN_ID_LENGTH = 5
INSERT_ID_WINDOW_DAYS = 7

# A 429 body names the ids that went over (their rate, or their daily quota).
THROTTLED_USER_KEYS = ("throttled_users", "exceeded_daily_quota_users")
THROTTLED_DEVICE_KEYS = ("throttled_devices", "exceeded_daily_quota_devices")
# A 400 body lists the indices of bad events under these, per field name.
BAD_EVENT_KEYS = ("events_with_invalid_fields", "events_with_missing_fields")


def throttled_ids(body: object) -> tuple[set[str], set[str]]:
    """The user ids and device ids a 429 body names (empty when it names none)."""
    users: set[str] = set()
    devices: set[str] = set()
    if isinstance(body, dict):
        for keys, found in ((THROTTLED_USER_KEYS, users), (THROTTLED_DEVICE_KEYS, devices)):
            for key in keys:
                value = body.get(key)
                if isinstance(value, dict):
                    found.update(str(k) for k in value)
                elif isinstance(value, list):
                    found.update(str(k) for k in value)
    return users, devices


def bad_event_indices(body: object) -> dict[int, list[str]]:
    """Index of each bad event a 400 body lists -> what is wrong ('invalid time', ...)."""
    found: dict[int, list[str]] = {}
    if not isinstance(body, dict):
        return found
    for key, word in zip(BAD_EVENT_KEYS, ("invalid", "missing"), strict=True):
        fields = body.get(key)
        if not isinstance(fields, dict):
            continue
        for field, indices in fields.items():
            for index in _ints(indices):
                found.setdefault(index, []).append(f"{word} {field}")
    for index in _ints(body.get("silenced_events")):
        found.setdefault(index, []).append("silenced device")
    return found


def _ints(values: object) -> Iterable[int]:
    if isinstance(values, list):
        yield from (v for v in values if isinstance(v, int) and not isinstance(v, bool))
