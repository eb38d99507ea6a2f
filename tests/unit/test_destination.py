"""The Events API destination's answer classification: status, headers and body in, verdict out."""

from __future__ import annotations

import pytest

from loader.events_api.errors import error_body
from loader.push.destination import Answer, Signals, Verdict
from loader.push.destinations.events_api import classify

BAD = error_body("BAD_REQUEST", "batch 0: data.event_name is required", "batch 1: bad mpid")


def test_2xx_is_accepted_with_the_rate_limit_signals_kept():
    answer = classify(202, {"X-MP-Rate-Limit-Percentage-Used": "12"}, "")
    assert answer == Answer(Verdict.ACCEPTED, signals=Signals(rate_limit_percentage_used="12"))


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 425, 599])
def test_5xx_408_and_425_are_retried_with_the_body_as_the_error(status):
    assert classify(status, {}, "down") == Answer(Verdict.RETRY, f"HTTP {status}: down")


def test_429_waits_as_retry_after_says():
    answer = classify(429, {"Retry-After": "3", "X-mp-rate-limit-exceeded": "account"}, "")
    assert answer == Answer(
        Verdict.RATE_LIMITED,
        wait_s=3.0,
        signals=Signals(retry_after="3", rate_limit_exceeded="account"),
    )


def test_429_without_retry_after_leaves_the_wait_to_the_backoff():
    assert classify(429, {}, "") == Answer(Verdict.RATE_LIMITED)


def test_429_acceleration_also_slows_down():
    answer = classify(429, {"X-mp-rate-limit-exceeded": " Acceleration "}, "")
    assert answer == Answer(
        Verdict.RATE_LIMITED, slow_down=True, signals=Signals(rate_limit_exceeded=" Acceleration ")
    )


@pytest.mark.parametrize("status", [400, 413, 415, 422])
def test_400_413_and_other_4xx_split_with_the_messages_of_the_error_body(status):
    assert classify(status, {}, BAD.decode()) == Answer(
        Verdict.SPLIT,
        f"HTTP {status}: batch 0: data.event_name is required; batch 1: bad mpid",
    )


def test_a_4xx_body_that_is_not_an_error_body_is_kept_as_it_is():
    assert classify(400, {}, "<html>nope</html>") == Answer(
        Verdict.SPLIT, "HTTP 400: <html>nope</html>"
    )
    assert classify(413, {}, "") == Answer(Verdict.SPLIT, "HTTP 413: (no body)")


def test_an_error_entry_without_a_message_is_named_by_its_code():
    assert classify(400, {}, '{"errors":[{"code":"BAD_REQUEST"}]}') == Answer(
        Verdict.SPLIT, "HTTP 400: BAD_REQUEST"
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "mParticle refused the credentials (401 Unauthorized)"),
        (403, "mParticle refused the credentials (403 Forbidden)"),
    ],
)
def test_401_and_403_stop_and_name_the_credentials(status, reason):
    assert classify(status, {}, "") == Answer(
        Verdict.STOP,
        f"{reason}: check MPARTICLE_API_KEY and MPARTICLE_API_SECRET, and that they belong "
        "to the pod/endpoint you send to",
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (404, "the endpoint answered 404 Not Found: check --pod / --endpoint"),
        (405, "the endpoint answered 405 Method Not Allowed: check --pod / --endpoint"),
        (301, "the endpoint redirected (301)"),
        (307, "the endpoint redirected (307)"),
    ],
)
def test_a_misrouted_endpoint_stops(status, reason):
    assert classify(status, {"Location": "https://elsewhere"}, "") == Answer(Verdict.STOP, reason)
