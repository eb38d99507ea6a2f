"""Refusal messages get a stable code and reason; the message stays whole as the detail."""

from __future__ import annotations

import pytest

from loader.events_api.batch_rules import check_request, validate_batch
from loader.events_api.reasons import OTHER, REASONS, classify

GOOD_EVENT = {
    "event_type": "screen_view",
    "data": {"screen_name": "home", "timestamp_unixtime_ms": 1},
}
GOOD = {"environment": "production", "mpid": 1, "events": [GOOD_EVENT]}


def event(**data) -> dict:
    return {"event_type": "custom_event", "data": {"timestamp_unixtime_ms": 1, **data}}


BAD_BATCHES = {
    "batch_too_big": {**GOOD, "user_attributes": {f"a{i}": "x" * 4000 for i in range(40)}},
    "forbidden_field": {**GOOD, "context": {"block_metadata": {}}},
    "unknown_field": {**GOOD, "surprise": 1},
    "bad_environment": {**GOOD, "environment": "staging"},
    "bad_mpid": {**GOOD, "mpid": "12x"},
    "identities_list": {**GOOD, "user_identities": [{"type": "email"}]},
    "unknown_identity_type": {**GOOD, "user_identities": {"shoe_size": "9"}},
    "bad_event_type": {**GOOD, "events": [{"event_type": "nope", "data": {}}]},
    "missing_field": {**GOOD, "events": [{"event_type": "screen_view", "data": {}}]},
    "too_many_attributes": {**GOOD, "user_attributes": {f"a{i}": 1 for i in range(101)}},
    "value_too_long": {**GOOD, "events": [event(event_name="n" * 300, custom_event_type="other")]},
    "timestamp_out_of_range": {
        **GOOD,
        "events": [
            {"event_type": "screen_view", "data": {"screen_name": "s", "timestamp_unixtime_ms": -1}}
        ],
    },
    "wrong_type": {**GOOD, "device_info": "phone"},
}


@pytest.mark.parametrize("code", sorted(BAD_BATCHES))
def test_each_local_check_has_its_code(code):
    problems = validate_batch(BAD_BATCHES[code], 3)
    assert problems
    refusal = classify("; ".join(problems))
    assert refusal is not None
    assert refusal.code.split("+")[0] == code, problems
    assert refusal.reason.split("; ")[0] == REASONS[code]
    assert refusal.detail == "; ".join(problems)


def test_messages_that_differ_only_in_their_details_share_code_and_reason():
    messages = [
        f"event is {n} bytes; with its batch context the batch would be {n + 80} bytes, "
        "over the 131072-byte (128 KB) batch limit"
        for n in range(140_000, 140_006)
    ]
    refusals = {(r.code, r.reason) for r in map(classify, messages) if r is not None}
    assert refusals == {("event_too_big", "an event is too big for a batch even alone")}


def test_mparticles_answer_is_classified_without_its_status_prefix():
    [error] = check_request(
        b'[{"environment":"production","events":[{"event_type":"x"}]}]', bulk=True
    ).errors
    refusal = classify(f"HTTP 400: {error}")
    assert refusal is not None
    assert refusal.code == "bad_event_type+wrong_type"
    assert refusal.detail == f"HTTP 400: {error}"


def test_an_unknown_message_groups_by_its_text_without_numbers_or_values():
    first, second = (
        classify('HTTP 400: field "a" is 12 wide'),
        classify('HTTP 400: field "b" is 7 wide'),
    )
    assert first is not None and second is not None
    assert (
        (first.code, first.reason) == (second.code, second.reason) == (OTHER, 'field "…" is N wide')
    )


def code_of(message: str) -> str:
    refusal = classify(message)
    assert refusal is not None
    return refusal.code


def test_failures_of_the_transport_have_codes():
    assert code_of("gave up after 4 attempts; last error: HTTP 503: busy") == "gave_up"
    assert code_of("the run stopped before this batch was acknowledged") == "run_stopped"
    assert code_of("mParticle refused the credentials (401 Unauthorized)") == "credentials_refused"
    assert classify(None) is None
