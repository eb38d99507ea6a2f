"""The Amplitude emulator answers as the Batch Event Upload API documents."""

from __future__ import annotations

import socket
import time

import duckdb
import orjson
import requests

from loader.amplitude_api.contract import MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES
from loader.emulator import http_core
from loader.emulator.amplitude import AmplitudeEmulatorConfig, running_amplitude_emulator
from loader.emulator.http_core import MAX_CONCURRENT_REQUESTS

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


# The hardening shared with the Events API emulator (loader.emulator.http_core)


def raw_exchange(port: int, head: str, body: bytes = b"") -> bytes:
    """Send a raw request, close the sending side, and return everything answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


CHUNKED_HEAD = (
    "POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n\r\n"
)


def test_a_chunked_body_is_read_and_a_bad_chunk_size_is_a_400(tmp_path):
    config = AmplitudeEmulatorConfig(api_key=KEY, db_path=tmp_path / "record.duckdb")
    with running_amplitude_emulator(config) as emu:
        body = orjson.dumps({"api_key": KEY, "events": [event(7, insert_id="c7")]})

        def chunks():
            for start in range(0, len(body), 10):
                yield body[start : start + 10]

        answer = requests.post(
            emu.url, data=chunks(), headers={"Content-Type": "application/json"}, timeout=10
        )
        assert answer.status_code == 200 and answer.json()["events_ingested"] == 1
        assert [e["insert_id"] for e in emu.accepted] == ["c7"]
        bad = raw_exchange(emu.server.port, CHUNKED_HEAD, b"zz\r\n{}\r\n0\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400") and b"bad chunk size 'zz'" in bad
        assert b"Connection: close" in bad
    con = duckdb.connect(str(tmp_path / "record.duckdb"), read_only=True)
    assert con.sql("select insert_id from received_amplitude_events").fetchall() == [("c7",)]
    assert con.sql("select status from received_amplitude_requests order by 1").fetchall() == [
        (200,),
        (400,),
    ]


def test_an_oversized_body_is_drained_refused_413_and_the_connection_stays_usable():
    config = AmplitudeEmulatorConfig(api_key=KEY, max_request_bytes=100_000)
    with running_amplitude_emulator(config) as emu, requests.Session() as session:
        big = b" " * 1_000_000

        def chunks():
            for start in range(0, len(big), 1 << 16):
                yield big[start : start + (1 << 16)]

        headers = {"Content-Type": "application/json"}
        for data in (big, chunks()):
            answer = session.post(emu.url, data=data, headers=headers, timeout=10)
            assert answer.status_code == 413 and answer.json()["error"] == "Payload too large"
        ok = session.post(
            emu.url, data=orjson.dumps({"api_key": KEY, "events": [event(1)]}), headers=headers
        )
        assert ok.status_code == 200
        assert [(entry[1], entry[4]) for entry in emu.log] == [
            (413, len(big)),
            (413, len(big)),
            (200, len(ok.request.body)),
        ]


def test_requests_beyond_the_slots_get_a_503_and_slots_come_back(monkeypatch):
    monkeypatch.setattr(http_core, "SLOT_WAIT_S", 0.5)
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        stalled = []
        body = orjson.dumps({"api_key": KEY, "events": [event(2)]})
        headers = {"Content-Type": "application/json"}
        try:
            for _ in range(MAX_CONCURRENT_REQUESTS):  # each holds a slot, its body unfinished
                sock = socket.create_connection(("127.0.0.1", emu.server.port), timeout=10)
                sock.sendall(b"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
                stalled.append(sock)
            time.sleep(0.3)
            answer = requests.post(emu.url, data=body, headers=headers, timeout=10)
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
            assert emu.log[-1][2] == "busy"
        finally:
            for sock in stalled:
                sock.close()
        deadline = time.monotonic() + 5
        while True:
            answer = requests.post(emu.url, data=body, headers=headers, timeout=10)
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert answer.status_code == 200


def test_user_properties_sync_unless_the_event_skips_it():
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        historical = event(0, user_properties={"plan": "free"}, insert_id="h")
        historical["$skip_user_properties_sync"] = True
        assert post(emu.url, {"api_key": KEY, "events": [historical]}).status_code == 200
        assert emu.profiles == {} and emu.synced_events == 0
        live = event(0, user_properties={"plan": "pro"}, insert_id="l")
        assert post(emu.url, {"api_key": KEY, "events": [live]}).status_code == 200
        assert emu.profiles == {"u:user-00000": {"plan": "pro"}} and emu.synced_events == 1
        synced_old = event(0, user_properties={"plan": "free"}, insert_id="o")
        assert post(emu.url, {"api_key": KEY, "events": [synced_old]}).status_code == 200
        assert emu.profiles == {"u:user-00000": {"plan": "free"}}  # the old value won
        assert "2 synced user properties" in emu.summary()

        bad = event(1, insert_id="b")
        bad["$skip_user_properties_sync"] = "yes"
        answer = post(emu.url, {"api_key": KEY, "events": [bad]})
        assert answer.status_code == 400
        assert answer.json()["events_with_invalid_fields"] == {"$skip_user_properties_sync": [0]}
