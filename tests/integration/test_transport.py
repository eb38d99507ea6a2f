"""The HTTP transport against the Events API emulator on 127.0.0.1: every answer it can give."""

from __future__ import annotations

import random
import threading
import time

import orjson
import pytest

from loader.emulator.server import EmulatorConfig, running_emulator
from loader.push.destination import ConfigurationError, retry_after_seconds
from loader.push.destinations.events_api import Credentials, EventsApiDestination, endpoint_url
from loader.push.transport import Outgoing, RateLimiter, Transport

SECRET = "s3cret-Value-42"


def batch(n: int, **overrides) -> Outgoing:
    body = {
        "source_request_id": f"batch-{n}",
        "environment": "development",
        "mpid": 2**62 + n,
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": f"event {n}",
                    "custom_event_type": "other",
                    "timestamp_unixtime_ms": 1_700_000_000_000 + n,
                },
            }
        ],
        **overrides,
    }
    return Outgoing(f"batch-{n}", 1, orjson.dumps(body))


@pytest.fixture
def emu():
    with running_emulator(EmulatorConfig(api_key="key", api_secret=SECRET)) as emulator:
        yield emulator


def transport(emu, *, secret: str = SECRET, **options) -> Transport:
    stop = threading.Event()
    defaults = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5.0}
    return Transport(
        EventsApiDestination(emu.base_url, Credentials("key", secret)),
        RateLimiter(options.pop("rate", 10_000.0), stop=stop),
        stop=stop,
        **{**defaults, **options},
    )


def test_202_acknowledges_every_batch(emu):
    result = transport(emu).send([batch(1), batch(2)], request_no=1)
    assert result.acknowledged == ["batch-1", "batch-2"]
    assert not result.failed and not result.rejected and result.fatal is None
    [attempt] = result.attempts
    assert attempt.status_code == 202 and attempt.outcome == "accepted"
    assert attempt.rate_limit_percentage_used == "1"  # 2 batches of 270 a second
    assert emu.accepted_source_request_ids() == {"batch-1", "batch-2"}


def test_400_is_split_to_find_the_bad_batch_and_its_message_is_kept(emu):
    bad = batch(3, events=[{"event_type": "custom_event", "data": {"event_name": "x"}}])
    result = transport(emu).send([batch(1), batch(2), bad, batch(4)], request_no=1)
    assert sorted(result.acknowledged) == ["batch-1", "batch-2", "batch-4"]
    assert list(result.rejected) == ["batch-3"]
    assert "timestamp_unixtime_ms is required" in result.rejected["batch-3"]
    assert result.rejected["batch-3"].startswith("HTTP 400: ")
    assert emu.accepted_source_request_ids() == {"batch-1", "batch-2", "batch-4"}
    # [1 2 3 4] refused; [1 2] accepted; [3 4] refused; [3] refused; [4] accepted
    assert [a.outcome for a in result.attempts] == [
        "bad_request",
        "accepted",
        "bad_request",
        "bad_request",
        "accepted",
    ]


def test_a_scripted_400_with_an_error_body_on_one_batch(emu):
    emu.script(["400"])
    result = transport(emu).send([batch(1)], request_no=1)
    assert result.rejected == {
        "batch-1": 'HTTP 400: Required event field "event_type" is missing or empty.'
    }
    assert result.attempts[0].error == (
        '{"errors":[{"code":"BAD_REQUEST","message":'
        '"Required event field \\"event_type\\" is missing or empty."}]}'
    )
    # a 400 on a whole request is split, and the halves go through
    emu.script(["400"])
    result = transport(emu).send([batch(2), batch(3)], request_no=2)
    assert sorted(result.acknowledged) == ["batch-2", "batch-3"]


@pytest.mark.parametrize("code", ["401", "403"])
def test_401_and_403_stop_with_a_clear_message(emu, code):
    emu.script([code])
    result = transport(emu).send([batch(1), batch(2)], request_no=1)
    reason = {"401": "401 Unauthorized", "403": "403 Forbidden"}[code]
    assert result.fatal == (
        f"mParticle refused the credentials ({reason}): check MPARTICLE_API_KEY and "
        "MPARTICLE_API_SECRET, and that they belong to the pod/endpoint you send to"
    )
    assert "MPARTICLE_API_KEY" in result.fatal
    assert set(result.failed) == {"batch-1", "batch-2"}
    assert not result.acknowledged
    assert len(result.attempts) == 1  # not retried


def test_wrong_credentials_are_refused_and_the_secret_is_never_reported(emu):
    wrong = "wrong-" + SECRET
    result = transport(emu, secret=wrong).send([batch(1)], request_no=1)
    assert result.fatal is not None and result.fatal.startswith(
        "mParticle refused the credentials (403 Forbidden)"
    )
    texts = [result.fatal, *result.failed.values(), *(a.error or "" for a in result.attempts)]
    assert all(wrong not in t and SECRET not in t for t in texts)


def test_429_with_retry_after_waits_and_waiting_is_not_an_attempt(emu):
    emu.script(["429:0.2", "429:0.1", "429:0.1"])
    t = transport(emu, max_retries=0)
    result = t.send([batch(1)], request_no=1)
    assert result.acknowledged == ["batch-1"]
    assert [a.status_code for a in result.attempts] == [429, 429, 429, 202]
    assert [a.retry_after for a in result.attempts[:3]] == ["0.2", "0.1", "0.1"]
    assert [a.wait_ms for a in result.attempts[:3]] == [200, 100, 100]


def test_429_without_retry_after_backs_off_with_jitter(emu):
    emu.script(["429", "429"])
    result = transport(emu, max_retries=0, rng=random.Random(7)).send([batch(1)], request_no=1)
    assert result.acknowledged == ["batch-1"]
    waits = [a.wait_ms for a in result.attempts[:2]]
    rng = random.Random(7)  # between half and all of 10 ms, then of 20 ms
    assert waits == [round(base * (0.5 + rng.random() / 2)) for base in (10, 20)]
    assert all(a.retry_after is None for a in result.attempts[:2])


def test_429_acceleration_slows_the_shared_rate(emu):
    emu.script(["429-accel"])
    t = transport(emu, rate=200.0)
    result = t.send([batch(1)], request_no=1)
    assert result.acknowledged == ["batch-1"]
    assert result.attempts[0].rate_limit_exceeded == "acceleration"
    assert t.limiter.rate < 200.0


def test_503_is_retried_with_the_same_body(emu):
    emu.script(["503", "503"])
    result = transport(emu).send([batch(1)], request_no=1)
    assert result.acknowledged == ["batch-1"]
    assert [a.status_code for a in result.attempts] == [503, 503, 202]
    assert [a.attempt for a in result.attempts] == [1, 2, 3]
    assert result.tries == {"batch-1": 3}


def test_retries_are_capped(emu):
    emu.script(["503", "503", "503"])
    result = transport(emu, max_retries=2).send([batch(1)], request_no=1)
    assert "gave up after 3 attempts" in result.failed["batch-1"]
    assert "HTTP 503" in result.failed["batch-1"]
    assert not emu.accepted_source_request_ids()


def test_slow_answer_times_out_and_is_resent_with_the_same_source_request_id(emu):
    emu.script(["slow:1.0"])
    result = transport(emu, timeout_s=0.3).send([batch(1)], request_no=1)
    assert result.acknowledged == ["batch-1"]
    assert [a.outcome for a in result.attempts] == ["timeout", "accepted"]
    # the slow request was processed; the resend was recognised as the same batch
    deadline = time.monotonic() + 5
    while len(emu.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the slow answer is logged when it is finally written
    first, second = sorted(emu.requests, key=lambda r: r.number)
    assert first.n_accepted == 1 and second.n_duplicates == 1
    assert emu.accepted_source_request_ids() == {"batch-1"}


@pytest.mark.parametrize("fault", ["drop", "drop-after"])
def test_dropped_connections_are_retried(emu, fault):
    emu.script([fault])
    result = transport(emu).send([batch(1), batch(2)], request_no=1)
    assert sorted(result.acknowledged) == ["batch-1", "batch-2"]
    assert result.attempts[0].outcome == "connection_error"
    assert len(emu.accepted()) == 2  # processed once, whatever the drop


def test_stop_event_ends_sending_without_acknowledging(emu):
    t = transport(emu)
    t.stop.set()
    result = t.send([batch(1)], request_no=1)
    assert set(result.failed) == {"batch-1"} and not result.attempts


def test_credentials_do_not_show_the_secret():
    credentials = Credentials("key", SECRET)
    assert SECRET not in repr(credentials)
    assert credentials.redact(f"oops {SECRET} and a2V5OnMzY3JldC1WYWx1ZS00Mg==") == (
        "oops *** and ***"
    )


def test_credentials_from_the_environment(monkeypatch):
    monkeypatch.delenv("MPARTICLE_API_KEY", raising=False)
    monkeypatch.setenv("MPARTICLE_API_SECRET", SECRET)
    with pytest.raises(ConfigurationError, match="set MPARTICLE_API_KEY") as exc:
        Credentials.from_env()
    assert SECRET not in str(exc.value)
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    assert Credentials.from_env().api_key == "key"


def test_endpoints():
    assert endpoint_url("us1", None) == "https://s2s.mparticle.com/v2"
    assert endpoint_url("EU1", None) == "https://s2s.eu1.mparticle.com/v2"
    assert endpoint_url("us1", "http://127.0.0.1:8080/v2/") == "http://127.0.0.1:8080/v2"
    assert endpoint_url(None, "http://localhost:1/v2") == "http://localhost:1/v2"
    assert endpoint_url(None, "http://[::1]:1/v2") == "http://[::1]:1/v2"
    with pytest.raises(ConfigurationError, match="refusing plain http"):
        endpoint_url(None, "http://s2s.mparticle.com/v2")
    with pytest.raises(ConfigurationError, match="must not carry credentials"):
        endpoint_url(None, "https://key:secret@s2s.mparticle.com/v2")
    with pytest.raises(ConfigurationError, match="unknown pod"):
        endpoint_url("xx9", None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_spaces_sends_by_their_batch_count():
    clock = Clock()
    limiter = RateLimiter(100.0, clock=clock)
    assert limiter.reserve(50) == 0.0
    assert limiter.reserve(10) == pytest.approx(0.5)
    assert limiter.reserve(1) == pytest.approx(0.6)
    clock.now += 10  # idle time is not saved up as a burst
    assert limiter.reserve(100) == 0.0
    assert limiter.reserve(1) == pytest.approx(1.0)


def test_rate_limiter_pause_and_slow_down_recover():
    clock = Clock()
    limiter = RateLimiter(100.0, clock=clock)
    limiter.pause(2.0)
    assert limiter.reserve(1) == pytest.approx(2.0)
    limiter.slow_down()
    assert limiter.rate == pytest.approx(50.0)
    clock.now += 2.0  # recovers by a tenth of the target each second
    assert limiter.rate == pytest.approx(70.0)
    clock.now += 10.0
    assert limiter.rate == pytest.approx(100.0)


def test_retry_after_forms():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_an_absurd_retry_after_waits_the_cap_and_a_meaningless_one_backs_off(emu):
    emu.script(["429:inf", "429:1e9", "429:nan"])
    t = transport(emu, max_retries=0, max_wait_s=0.05, rng=random.Random(7))
    result = t.send([batch(1)], request_no=1)
    assert result.acknowledged == ["batch-1"]
    assert [a.status_code for a in result.attempts] == [429, 429, 429, 202]
    assert [a.retry_after for a in result.attempts[:3]] == ["inf", "1e+09", "nan"]
    # inf and 1e9 wait the cap (50 ms here); nan is no value: the third backoff, 40 ms
    jitter = 0.5 + random.Random(7).random() / 2
    assert [a.wait_ms for a in result.attempts[:3]] == [50, 50, round(40 * jitter)]


def test_the_retry_after_cap_is_five_minutes(emu):
    from loader.push.transport import MAX_RETRY_AFTER_S

    assert MAX_RETRY_AFTER_S == 300.0
    assert transport(emu).max_wait_s == 300.0


def test_retry_after_values_that_are_not_a_wait_are_absent():
    assert retry_after_seconds("nan") is None
    assert retry_after_seconds("-5") is None
    assert retry_after_seconds("inf") == float("inf")  # the transport waits its cap
    assert retry_after_seconds("1e9") == 1e9
