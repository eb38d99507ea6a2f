"""The Amplitude emulator answers as the Batch Event Upload API documents."""

from __future__ import annotations

import orjson
import requests

from loader.amplitude_api.contract import MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES
from loader.emulator.amplitude import AmplitudeEmulatorConfig, running_amplitude_emulator

KEY = "emulated-key-0123"


def event(k: int, **fields) -> dict:
    return {"user_id": f"user-{k:05d}", "event_type": "E", "time": 1795576967792, **fields}


def post(url: str, body: dict | bytes) -> requests.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30)


def test_limits_of_size_and_count_are_exact():
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        head = orjson.dumps({"api_key": KEY, "events": [event(0, pad="")]})
        pad = MAX_REQUEST_BYTES - len(head)
        at_limit = orjson.dumps({"api_key": KEY, "events": [event(0, pad="x" * pad)]})
        assert len(at_limit) == MAX_REQUEST_BYTES
        assert post(emu.url, at_limit).status_code == 200
        over = orjson.dumps({"api_key": KEY, "events": [event(1, pad="x" * (pad + 1))]})
        assert post(emu.url, over).status_code == 413
        many = [event(k % 50) for k in range(MAX_EVENTS_PER_REQUEST)]
        assert post(emu.url, {"api_key": KEY, "events": many}).status_code == 200
        too_many = [*many, event(1)]
        assert post(emu.url, {"api_key": KEY, "events": too_many}).status_code == 413


def test_a_400_lists_the_bad_events_and_keeps_nothing():
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        events = [
            event(0),
            event(1, time=1.5e12),
            {"event_type": "E", "user_id": "abc"},  # too short: dropped, no id left
            event(3, event_type=""),
        ]
        answer = post(emu.url, {"api_key": KEY, "events": events})
        assert answer.status_code == 400
        body = answer.json()
        assert body["events_with_invalid_fields"] == {"time": [1]}
        assert body["events_with_missing_fields"] == {
            "user_id or device_id": [2],
            "event_type": [3],
        }
        assert emu.accepted == []
        # options.min_id_length lowers the minimum
        short = {"api_key": KEY, "events": [events[2]], "options": {"min_id_length": 3}}
        assert post(emu.url, short).status_code == 200
        assert post(emu.url, {"events": [event(0)]}).json()["missing_field"] == "api_key"
        assert post(emu.url, {"api_key": "other", "events": [event(0)]}).status_code == 400


def test_an_id_over_its_rate_is_named_in_a_429_and_insert_ids_count_once():
    config = AmplitudeEmulatorConfig(api_key=KEY, per_id_limit=0.1, window_s=30)  # 3 events
    with running_amplitude_emulator(config) as emu:
        first = [event(1, insert_id=f"a{k}") for k in range(3)]
        assert post(emu.url, {"api_key": KEY, "events": first}).status_code == 200
        answer = post(emu.url, {"api_key": KEY, "events": [event(2), event(1, device_id="dev-01")]})
        assert answer.status_code == 429
        body = answer.json()
        assert set(body["throttled_users"]) == {"user-00001"} and body["throttled_events"] == [1]
        assert body["throttled_devices"] == {} and body["eps_threshold"] == 0.1
        assert post(emu.url, {"api_key": KEY, "events": [event(2)]}).status_code == 200
        assert len(emu.accepted) == 4
        again = post(emu.url, {"api_key": KEY, "events": [event(3, insert_id="a0")]})
        assert again.status_code == 200 and len(emu.accepted) == 4 and emu.duplicates == 1
