"""Mixpanel as a destination: its endpoint, credentials and answers, as its docs state."""

from __future__ import annotations

import gzip

import orjson
import pytest

from loader.push.destination import ConfigurationError, Verdict
from loader.push.destinations.mixpanel import (
    MixpanelCredentials,
    MixpanelDestination,
    classify,
    endpoint_url,
    load_credentials,
)


def test_the_endpoint_is_the_residency_host_with_strict_and_the_project():
    assert endpoint_url({}, None) == "https://api.mixpanel.com/import?strict=1"
    assert endpoint_url({"region": "eu"}, None) == "https://api-eu.mixpanel.com/import?strict=1"
    assert (
        endpoint_url({"region": "in", "project_id": "42"}, None)
        == "https://api-in.mixpanel.com/import?strict=1&project_id=42"
    )
    with pytest.raises(ConfigurationError, match="plain http"):
        endpoint_url({}, "http://example.com")


def test_a_strict_400_refuses_each_failed_record_with_its_field():
    body = orjson.dumps(
        {
            "code": 400,
            "error": "some data points in the request failed validation",
            "num_records_imported": 1,
            "failed_records": [
                {"index": 1, "insert_id": "x", "field": "properties.time", "message": "bad"},
                {"index": 2, "insert_id": "y", "field": "event", "message": "required"},
            ],
        }
    ).decode()
    answer = classify(400, {}, body)
    assert answer.verdict is Verdict.SPLIT
    assert answer.refused is not None and sorted(answer.refused) == [1, 2]
    assert "properties.time: bad" in answer.refused[1]
    assert [answer.refused[i].code for i in (1, 2)] == ["invalid_field", "missing_field"]
    assert classify(400, {}, "{}").refused is None  # none named: the request is halved


def test_429_slows_everyone_and_credentials_stop_the_run():
    limited = classify(429, {"Retry-After": "3"}, '{"error": "Project exceeded rate limits."}')
    assert limited.verdict is Verdict.RATE_LIMITED and limited.slow_down
    assert limited.wait_s == 3
    assert classify(401, {}, "").verdict is Verdict.STOP
    assert classify(503, {}, "").verdict is Verdict.RETRY


def test_requests_are_gzip_json_arrays_and_secrets_are_redacted():
    credentials = MixpanelCredentials("svc-user", "s3cret-value", "42")
    destination = MixpanelDestination("https://api.mixpanel.com/import?strict=1", credentials)
    body = destination.request_body([b'{"event":"a"}', b'{"event":"b"}'])
    assert orjson.loads(gzip.decompress(body)) == [{"event": "a"}, {"event": "b"}]
    assert "s3cret-value" not in destination.redact("auth failed for s3cret-value")
    assert "s3cret" not in repr(credentials)


def test_credentials_come_from_env_or_say_what_to_set():
    assert load_credentials({}, {"MIXPANEL_PROJECT_TOKEN": "tok"}).username == "tok"
    account = load_credentials(
        {"service_account": "svc", "project_id": "7"},
        {"MIXPANEL_SERVICE_ACCOUNT_SECRET": "sec"},
    )
    assert (account.username, account.secret, account.project_id) == ("svc", "sec", "7")
    with pytest.raises(ConfigurationError, match="MIXPANEL_PROJECT_TOKEN"):
        load_credentials({}, {})
    with pytest.raises(ConfigurationError, match="project_id"):
        load_credentials({"service_account": "svc"}, {"MIXPANEL_SERVICE_ACCOUNT_SECRET": "s"})
