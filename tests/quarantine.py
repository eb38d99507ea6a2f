"""Builders for quarantine files shaped like mParticle's example quarantine batch."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

EXAMPLE_BATCH = {
    "events": [
        {
            "data": {
                "custom_event_type": "navigation",
                "event_name": "blocked navigation event 1",
                "custom_flags": {},
                "timestamp_unixtime_ms": "1599790566900",
                "event_id": "-7778608565459706417",
                "custom_attributes": {"Test": "value"},
            },
            "event_type": "custom_event",
        },
        {
            "data": {
                "custom_event_type": "navigation",
                "event_name": "blocked navigation event 2",
                "custom_flags": {},
                "timestamp_unixtime_ms": "1599790566900",
                "event_id": "-387480379075294677",
                "custom_attributes": {"testAttr1": "value"},
            },
            "event_type": "custom_event",
        },
        {
            "data": {
                "custom_event_type": "other",
                "event_name": "allowed event",
                "custom_flags": {},
                "timestamp_unixtime_ms": "1599790566900",
                "event_id": "8561854144327985348",
                "custom_attributes": {"testAttr1": "value"},
            },
            "event_type": "custom_event",
        },
    ],
    "device_info": {
        "is_dst": False,
        "ios_advertising_id": "613ff528-afd1-4c1b-9628-e6ed25ece9c0",
    },
    "application_info": {"os": "OutOfBand"},
    "user_attributes": {"$gender": "M", "$age": "40"},
    "deleted_user_attributes": [],
    "user_identities": {"customer_id": "1234", "email": "helpers@mparticle.com"},
    "environment": "development",
    "ip": "",
    "source_info": {"channel": "partner", "partner": "Generic S2S"},
    "timestamp_unixtime_ms": "1599790566900",
    "batch_id": "-5158959812941698317",
    "context": {
        "data_plan": {
            "plan_id": "main_block",
            "plan_version": 1,
            "block_metadata": {
                "dto_version": 1,
                "blocked_user_identities": ["customer_id"],
                "blocked_device_identities": ["ios_advertising_id"],
                "blocked_event_ids": ["-7778608565459706417", "-387480379075294677"],
                "blocked_event_attributes": [
                    {
                        "event_id": "8561854144327985348",
                        "event_attributes": ["./data/custom_attributes/testAttr1"],
                    }
                ],
                "blocked_user_attributes": ["$gender"],
            },
        }
    },
}


def example_batch(timestamp_ms: int | None = None, **overrides) -> dict:
    """A deep copy of the example batch, events at `timestamp_ms`, top-level keys overridden."""
    batch = copy.deepcopy(EXAMPLE_BATCH)
    if timestamp_ms is not None:
        for event in batch["events"]:
            event["data"]["timestamp_unixtime_ms"] = str(timestamp_ms)
        batch["timestamp_unixtime_ms"] = str(timestamp_ms)
    batch.update(overrides)
    return batch


def ndjson(batches: list) -> bytes:
    return b"".join(json.dumps(b).encode() + b"\n" for b in batches)


def write_file(path: Path, batches: list, *, gzipped: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ndjson(batches)
    path.write_bytes(gzip.compress(body) if gzipped else body)
    return path
