"""Amplitude as a destination: packing within the Batch API's limits, answers, the key."""

from __future__ import annotations

import orjson
import pytest

from loader.amplitude_api.contract import MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES
from loader.events_api.reasons import classify
from loader.push.destination import ConfigurationError, Verdict
from loader.push.destinations import amplitude, route
from loader.push.destinations.amplitude import (
    AmplitudeCredentials,
    AmplitudeDestination,
    IdRateLimiter,
    endpoint_url,
)
from loader.push.packing import Group, group_requests

KEY = "0123456789abcdef0123456789abcdef"


def events_group(n: int, size: int, user: str = "user-00001") -> Group:
    texts = []
    for k in range(n):
        head = f'{{"user_id":"{user}","event_type":"E","time":{1795576967792 + k},"insert_id":"i{k}","event_properties":{{"pad":"'  # noqa: E501
        texts.append(head + "x" * max(0, size - len(head) - 3) + '"}}')
    return Group.from_texts(
        "user:" + user, "amplitude", "{}", [f"k{k}" for k in range(n)], texts, None
    )


# the last case fills a request to the byte: the key and framing must still fit
EDGE = (route("amplitude").limits.max_request_bytes - 1) // 25 - 1


@pytest.mark.parametrize(("n", "size"), [(4_500, 100), (2_600, 9_000), (3, 7_000_000), (50, EDGE)])
def test_requests_stay_within_the_documented_limits_and_are_filled_densely(n, size):
    group = events_group(n, size)
    limits = route("amplitude").limits
    requests = list(group_requests(amplitude.pack_events(group, limits.max_batch_bytes), limits))
    destination = AmplitudeDestination(
        "https://api2.amplitude.com/batch", AmplitudeCredentials(KEY)
    )
    assert sum(len(r) for r in requests) == n
    for k, request in enumerate(requests):
        body = destination.request_body(b.body for b in request)
        assert len(body) <= MAX_REQUEST_BYTES
        assert len(request) <= MAX_EVENTS_PER_REQUEST
        parsed = orjson.loads(body)
        assert parsed["api_key"] == KEY and len(parsed["events"]) == len(request)
        if k + 1 < len(requests):  # the next event would not have fit
            nxt = requests[k + 1][0]
            grown = destination.request_body([*(b.body for b in request), nxt.body])
            assert len(request) == MAX_EVENTS_PER_REQUEST or len(grown) > limits.max_request_bytes


def test_each_event_is_its_own_batch_with_a_stable_id():
    group = events_group(3, 200)
    first = list(amplitude.pack_events(group, 10_000))
    again = list(amplitude.pack_events(group, 10_000))
    assert [b.event_count for b in first] == [1, 1, 1]
    assert [b.source_request_id for b in first] == [b.source_request_id for b in again]
    assert [b.body.decode() for b in first] == group.event_texts()


def test_a_throttling_answer_holds_only_the_named_users_and_devices():
    destination = AmplitudeDestination(
        "https://api2.amplitude.com/batch", AmplitudeCredentials(KEY), throttle_wait_s=7
    )
    body = orjson.dumps(
        {"code": 429, "throttled_users": {"user-00001": 1200}, "throttled_devices": {"dev-9": 1}}
    ).decode()
    answer = destination.classify(429, {}, body)
    assert answer.verdict is Verdict.RATE_LIMITED and answer.wait_s == 7
    assert answer.hold is not None
    assert answer.hold(b'{"user_id":"user-00001","event_type":"E"}')
    assert answer.hold(b'{"device_id":"dev-9","event_type":"E"}')
    assert not answer.hold(b'{"user_id":"user-00002","device_id":"dev-1","event_type":"E"}')
    assert destination.classify(429, {}, "{}").hold is None  # names nobody: everyone waits


def test_a_400_names_the_bad_events_and_an_invalid_key_stops_the_run():
    destination = AmplitudeDestination("https://x/batch", AmplitudeCredentials(KEY))
    body = orjson.dumps(
        {
            "code": 400,
            "error": "Invalid field values on some events",
            "events_with_invalid_fields": {"time": [2]},
            "events_with_missing_fields": {"event_type": [0, 2]},
        }
    ).decode()
    answer = destination.classify(400, {}, body)
    assert answer.verdict is Verdict.SPLIT and set(answer.refused or {}) == {0, 2}
    assert "invalid time" in (answer.refused or {})[2]
    assert "missing event_type" in (answer.refused or {})[2]
    # each refusal says its stable code where it is made, not left to text rules
    refused = {i: classify(m) for i, m in (answer.refused or {}).items()}
    assert refused[0] is not None and refused[0].code == "missing_field"
    assert refused[2] is not None and refused[2].code == "invalid_field+missing_field"
    assert refused[2].detail == (answer.refused or {})[2]
    whole = classify(destination.classify(400, {}, '{"code":400,"error":"Bad"}').message)
    assert whole is not None and whole.code == "destination_bad_request"
    too_big = classify(destination.classify(413, {}, '{"error":"Payload too large"}').message)
    assert too_big is not None and too_big.code == "request_too_big"
    # the same text without its code is classified by the text rules
    plain = classify(str((answer.refused or {})[0]))
    assert plain is not None and plain.code != "missing_field"
    stop = destination.classify(400, {}, '{"code":400,"error":"Invalid API key"}')
    assert stop.verdict is Verdict.STOP
    assert destination.classify(413, {}, "{}").verdict is Verdict.SPLIT
    assert destination.classify(503, {}, "").verdict is Verdict.RETRY


def test_the_key_is_redacted_and_masked_in_dry_run_bodies():
    credentials = AmplitudeCredentials(KEY)
    assert KEY not in credentials.redact(f"body {KEY}") and "***" in credentials.redact(KEY)
    assert KEY not in repr(credentials)
    assert orjson.loads(amplitude.dry_run_body([b'{"user_id":"abcde"}']))["api_key"] == "***"


def test_the_key_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="AMPLITUDE_API_KEY"):
        AmplitudeCredentials.load()
    (tmp_path / "key").write_text(KEY + "\n")
    assert AmplitudeCredentials.load(str(tmp_path / "key")).api_key == KEY
    monkeypatch.setenv("AMPLITUDE_API_KEY", "env-key-12345")
    assert AmplitudeCredentials.load().api_key == "env-key-12345"


def test_hosts_and_plain_http_only_to_loopback():
    assert endpoint_url(None, None) == "https://api2.amplitude.com/batch"
    assert endpoint_url("eu", None) == "https://api.eu.amplitude.com/batch"
    assert endpoint_url(None, "http://127.0.0.1:9/batch") == "http://127.0.0.1:9/batch"
    with pytest.raises(ConfigurationError, match="plain http"):
        endpoint_url(None, "http://api2.amplitude.com")
    with pytest.raises(ConfigurationError, match="region"):
        endpoint_url("asia", None)


def test_the_per_id_limiter_keeps_each_id_under_its_rate():
    now = [0.0]
    limiter = IdRateLimiter(10, clock=lambda: now[0])
    assert limiter.reserve({"u:a": 10}) == 0
    assert limiter.reserve({"u:b": 5}) == 0  # another user is not slowed
    assert limiter.reserve({"u:a": 1}) == pytest.approx(1.0)  # a's second is booked
    assert limiter.reserve({"u:b": 1, "u:a": 1}) == pytest.approx(1.1)
