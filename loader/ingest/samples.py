"""A realistic, reproducible Quarantine Output folder, for the demo and benchmarks.

Shaped like mParticle's example quarantine batch: NDJSON files under `YYYY-MM-DD/` date
folders, some gzipped under a `.txt` name, bucket verification files, int64 ids as
strings (sometimes numbers), both `user_identities` shapes, users with and without an
MPID, events blocked whole and events that only lost attributes, and one batch
delivered twice.
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

DAY_MS = 86_400_000
PLANNED_EVENTS = [
    ("Product Viewed", "navigation"),
    ("Add To Cart", "transaction"),
    ("Checkout Complete", "transaction"),
    ("Search", "search"),
]
# (name, custom_event_type): what the data plan blocks
UNPLANNED_EVENTS = [
    ("Chekout Complete", "transaction"),  # a typo in one app version
    ("promo_banner_click", "navigation"),  # never planned
    ("Search", "other"),  # planned name, wrong custom_event_type
]
SCREENS = ["Home", "Cart", "Product Detail"]


@dataclass
class SampleSummary:
    files: int
    batches: int
    events: int
    blocked_events: int
    attribute_only_events: int


def _int64(rng: random.Random) -> int:
    return rng.randint(-(2**63), 2**63 - 1)


def _as_written(rng: random.Random, value: int) -> str | int:
    """int64s arrive as strings; some exports write numbers."""
    return value if rng.random() < 0.1 else str(value)


class _Generator:
    def __init__(self, seed: int, users: int, now_ms: int, days: int):
        self.rng = random.Random(seed)
        self.now_ms, self.days = now_ms, days
        self.users = [self._user(i) for i in range(users)]
        self.summary = SampleSummary(0, 0, 0, 0, 0)

    def _user(self, index: int) -> dict[str, Any]:
        rng = self.rng
        user: dict[str, Any] = {
            "identities": {},
            "device": {},
            "app_version": rng.choice(["4.1.0", "4.2.0"]),
        }
        if rng.random() < 0.7:
            user["mpid"] = _int64(rng)
        if rng.random() < 0.8:
            user["identities"]["customer_id"] = f"C{index:07d}"
            user["identities"]["email"] = f"user{index}@example.com"
        if rng.random() < 0.6:
            user["device"]["ios_advertising_id"] = f"{rng.getrandbits(128):032x}"
        else:
            user["device"]["android_advertising_id"] = f"{rng.getrandbits(128):032x}"
        return user

    def _event(self, timestamp_ms: int, user: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """An event and what the plan blocked of it: 'event', 'attributes' or None."""
        rng = self.rng
        event_id = _int64(rng)
        data: dict[str, Any] = {
            "event_id": _as_written(rng, event_id),
            "timestamp_unixtime_ms": _as_written(rng, timestamp_ms),
            "custom_flags": {},
        }
        roll = rng.random()
        if roll < 0.1:
            data["screen_name"] = rng.choice(SCREENS)
            data["custom_attributes"] = {"referrer": "push"}
            return {"data": data, "event_type": "screen_view"}, None
        blocked = None
        if roll < 0.45:
            name, custom_type = rng.choice(UNPLANNED_EVENTS)
            if name == "Chekout Complete" and user["app_version"] != "4.2.0":
                name = "Checkout Complete"
            else:
                blocked = "event"
        else:
            name, custom_type = rng.choice(PLANNED_EVENTS)
        data["event_name"] = name
        data["custom_event_type"] = custom_type
        data["custom_attributes"] = {"sku": f"SKU-{rng.randint(1, 500)}", "price": "19.99"}
        if blocked is None and rng.random() < 0.2:
            data["custom_attributes"]["debug_info"] = "build 1729"
            blocked = "attributes"
        return {"data": data, "event_type": "custom_event"}, blocked

    def batch(self, day_start_ms: int) -> tuple[dict[str, Any], int]:
        rng = self.rng
        user = rng.choice(self.users)
        batch_ms = day_start_ms + rng.randint(0, DAY_MS - 60_000)
        blocked_ids, blocked_attributes, events = [], [], []
        for _ in range(rng.randint(1, 9)):
            event, blocked = self._event(batch_ms - rng.randint(0, 600_000), user)
            events.append(event)
            event_id = str(event["data"]["event_id"])
            if blocked == "event":
                blocked_ids.append(event_id)
            elif blocked == "attributes":
                attrs = ["./data/custom_attributes/debug_info"]
                blocked_attributes.append({"event_id": event_id, "event_attributes": attrs})
        identities: dict[str, str] | list[dict[str, str]] = dict(user["identities"])
        if user["identities"] and rng.random() < 0.1:  # the outbound (list) shape
            identities = [
                {"identity_type": k, "identity": v} for k, v in user["identities"].items()
            ]
        batch = {
            "events": events,
            "device_info": {"platform": "iOS", **user["device"]},
            "application_info": {"application_version": user["app_version"]},
            "user_attributes": {"$gender": "F", "loyalty_tier": "gold"},
            "deleted_user_attributes": [],
            "user_identities": identities,
            "environment": "production",
            "ip": rng.choice(["", "203.0.113.7"]),
            "source_info": {"channel": "native", "is_history": False},
            "timestamp_unixtime_ms": str(batch_ms),
            "batch_id": _as_written(rng, _int64(rng)),
            "context": {
                "data_plan": {
                    "plan_id": "shop_plan",
                    "plan_version": 3,
                    "block_metadata": {
                        "dto_version": 1,
                        "blocked_event_ids": blocked_ids,
                        "blocked_event_attributes": blocked_attributes,
                        "blocked_user_attributes": ["loyalty_tier"],
                        "blocked_user_identities": [],
                        "blocked_device_identities": [],
                    },
                }
            },
        }
        if "mpid" in user:
            batch["mpid"] = _as_written(rng, user["mpid"])
        self.summary.batches += 1
        self.summary.events += len(events)
        self.summary.blocked_events += len(blocked_ids)
        self.summary.attribute_only_events += len(blocked_attributes)
        return batch, len(events)


def generate(
    out_dir: Path,
    events: int = 2_000,
    *,
    seed: int = 7,
    users: int | None = None,
    days: int = 5,
    now_ms: int | None = None,
    events_per_file: int = 2_000,
) -> SampleSummary:
    """Write about `events` events of quarantine data, spread over the last `days` days."""
    now_ms = now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    gen = _Generator(seed, users or max(5, events // 40), now_ms, days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mParticle_Bucket_Verification_a1b2c3.txt").write_text("{}")
    (out_dir / "mparticle_validation.txt").write_text("")
    per_day = max(1, events // days)
    file_index = 0
    first_line = b""
    for day in range(days, 0, -1):
        day_start = (now_ms // DAY_MS - day) * DAY_MS
        folder = out_dir / datetime.fromtimestamp(day_start / 1000, UTC).strftime("%Y-%m-%d")
        folder.mkdir(exist_ok=True)
        written = 0
        while written < per_day:
            file_index += 1
            stamp = datetime.fromtimestamp(day_start / 1000, UTC).strftime("%Y%m%d%H%M%S")
            path = folder / f"ShopApp_{stamp}_{file_index:05d}.txt"
            lines, in_file = [], 0
            while in_file < events_per_file and written + in_file < per_day:
                batch, count = gen.batch(day_start)
                lines.append(orjson.dumps(batch))
                in_file += count
            written += in_file
            first_line = first_line or lines[0]
            if file_index == 2:
                lines.append(first_line)  # a batch redelivered in another file
            body = b"\n".join(lines) + b"\n"
            path.write_bytes(gzip.compress(body, 1) if file_index % 2 else body)
            gen.summary.files += 1
    return gen.summary
