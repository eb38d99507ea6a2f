import concurrent.futures
import gzip
import os
import signal
import subprocess
import sys
import time

import duckdb
import orjson
import pytest
import requests

from loader.emulator.server import EmulatorConfig, parse_script_entry, running_emulator

BIG_MPID = 2**62 + 3
BIG_TS = 2**53 + 7


def batch(request_id: str = "r-1", n_events: int = 1, **overrides) -> dict:
    events = [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": f"event {i}",
                "custom_event_type": "other",
                "timestamp_unixtime_ms": BIG_TS + i,
            },
        }
        for i in range(n_events)
    ]
    return {
        "source_request_id": request_id,
        "environment": "development",
        "mpid": BIG_MPID,
        "user_identities": {"customer_id": "1234"},
        "events": events,
        **overrides,
    }


@pytest.fixture
def emu():
    with running_emulator(EmulatorConfig(api_key="key", api_secret="s3cr3t-value")) as emulator:
        yield emulator


@pytest.fixture
def session():
    with requests.Session() as s:
        s.auth = ("key", "s3cr3t-value")
        yield s


def post(session, emu, path, payload, **kwargs) -> requests.Response:
    return session.post(emu.base_url + path, data=orjson.dumps(payload), timeout=10, **kwargs)


def test_events_and_bulkevents_accept_valid_batches(emu, session):
    one = post(session, emu, "/events", batch("a"))
    bulk = post(session, emu, "/bulkevents", [batch("b"), batch("c", 3)])
    historical = post(session, emu, "/bulkevents/historical", [batch("d")])

    for response in (one, bulk, historical):
        assert response.status_code == 202
        assert response.content == b""
        assert 0 <= int(response.headers["X-mp-rate-limit-percentage-used"]) <= 100
    accepted = emu.accepted()
    assert [b["source_request_id"] for b in accepted] == ["a", "b", "c", "d"]
    assert accepted[2]["events"][2]["data"]["timestamp_unixtime_ms"] == BIG_TS + 2
    assert accepted[0]["mpid"] == BIG_MPID
    assert emu.accepted_source_request_ids() == {"a", "b", "c", "d"}
    assert [(r.path, r.status, r.n_batches) for r in emu.requests] == [
        ("/v2/events", 202, 1),
        ("/v2/bulkevents", 202, 2),
        ("/v2/bulkevents/historical", 202, 1),
    ]


def test_auth_401_without_credentials_403_with_wrong_ones(emu):
    url = emu.base_url + "/events"
    body = orjson.dumps(batch())
    missing = requests.post(url, data=body, timeout=10)
    wrong = requests.post(url, data=body, auth=("key", "nope"), timeout=10)
    garbled = requests.post(url, data=body, headers={"Authorization": "Basic %%%"}, timeout=10)

    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    assert wrong.status_code == 403
    assert garbled.status_code == 401
    assert orjson.loads(wrong.content)["errors"][0]["code"] == "FORBIDDEN"
    assert emu.accepted() == []


def test_credentials_never_recorded(emu, session):
    post(session, emu, "/events", batch())
    [record] = emu.requests
    assert record.headers["Authorization"] == "<redacted>"
    assert "s3cr3t-value" not in repr(record)
    assert "s3cr3t-value" not in repr(emu.config)


def test_invalid_batch_refuses_the_whole_request_with_mparticle_error_body(emu, session):
    bad = batch("bad")
    bad["events"][0]["data"]["timestamp_unixtime_ms"] = "1599790566900"
    response = post(session, emu, "/bulkevents", [batch("good"), bad, batch("bad2", batch_id=1)])

    assert response.status_code == 400
    assert orjson.loads(response.content) == {
        "errors": [
            {
                "code": "BAD_REQUEST",
                "message": "batch 1, event 0: data.timestamp_unixtime_ms must be an integer "
                '(got string "1599790566900")',
            },
            {
                "code": "BAD_REQUEST",
                "message": "batch 2: batch_id must not be sent in a replay "
                "(mParticle would de-duplicate the replay against the original batch)",
            },
        ]
    }
    assert emu.accepted() == []
    assert emu.stats()["invalid_requests"] == 1
    assert emu.stats()["invalid_batches"] == 2


def test_limits_request_size_and_batch_count(emu, session):
    padded = batch(user_attributes={"pad": "x" * 4000})
    too_big = post(session, emu, "/bulkevents", [padded] * 70)
    too_many = post(session, emu, "/bulkevents", [{"environment": "production"}] * 101)

    assert too_big.status_code == 413
    assert "the limit is 262144 bytes" in too_big.json()["errors"][0]["message"]
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["message"] == (
        "request holds 101 batches; the limit is 100 a request"
    )


def test_deduplicates_on_source_request_id(emu, session):
    assert post(session, emu, "/bulkevents", [batch("x"), batch("y")]).status_code == 202
    again = post(session, emu, "/bulkevents", [batch("y"), batch("z")])

    assert again.status_code == 202
    assert [b["source_request_id"] for b in emu.accepted()] == ["x", "y", "z"]
    assert emu.stats()["duplicate_batches"] == 1
    assert emu.requests[-1].n_duplicates == 1


def test_scripted_rate_limit_and_server_faults(emu, session):
    emu.script(["429:2", "429", "429-accel", "503", "400", "401", "403", "202"])
    responses = [post(session, emu, "/events", batch(f"s{i}")) for i in range(9)]

    assert [r.status_code for r in responses] == [429, 429, 429, 503, 400, 401, 403, 202, 202]
    assert responses[0].headers["Retry-After"] == "2"
    assert "Retry-After" not in responses[1].headers
    assert responses[2].headers["X-mp-rate-limit-exceeded"] == "acceleration"
    assert responses[4].json()["errors"][0]["code"] == "BAD_REQUEST"
    assert emu.accepted_source_request_ids() == {"s7", "s8"}


def test_scripted_drop_does_not_process(emu, session):
    emu.script(["drop"])
    with pytest.raises(requests.ConnectionError):
        post(session, emu, "/events", batch("lost"))
    assert emu.accepted() == []
    assert emu.requests[0].status is None
    assert post(session, emu, "/events", batch("next")).status_code == 202


def test_scripted_drop_after_processes_then_closes(emu, session):
    emu.script(["drop-after"])
    with pytest.raises(requests.ConnectionError):
        post(session, emu, "/events", batch("kept"))
    assert emu.accepted_source_request_ids() == {"kept"}
    resent = post(session, emu, "/events", batch("kept"))
    assert resent.status_code == 202
    assert len(emu.accepted()) == 1


def test_scripted_slow_processes_then_answers_late(emu, session):
    emu.script(["slow:1.5"])
    with pytest.raises(requests.Timeout):
        session.post(emu.base_url + "/events", data=orjson.dumps(batch("slow")), timeout=0.3)
    assert emu.accepted_source_request_ids() == {"slow"}


def test_script_entries_are_checked():
    assert parse_script_entry("429:2").seconds == 2
    for entry in ("418", "slow", "drop:3", "429:x"):
        with pytest.raises(ValueError):
            parse_script_entry(entry)


def test_records_accepted_batches_in_duckdb_readable_after_shutdown(tmp_path):
    db = tmp_path / "received.duckdb"
    config = EmulatorConfig(api_key="key", api_secret="secret", db_path=db)
    with running_emulator(config) as emu, requests.Session() as s:
        s.auth = ("key", "secret")
        assert post(s, emu, "/bulkevents", [batch("a", 2), batch("b", 1)]).status_code == 202
        assert post(s, emu, "/events", batch("a", 2)).status_code == 202  # duplicate

    with duckdb.connect(str(db), read_only=True) as con:
        batches = con.execute(
            "select source_request_id, endpoint, mpid, n_events from received_batches "
            "order by source_request_id"
        ).fetchall()
        events = con.execute(
            "select source_request_id, event_index, event_type, event_name, "
            "timestamp_unixtime_ms from received_events order by all"
        ).fetchall()
        stored = con.execute(
            "select batch_json::varchar from received_batches where source_request_id = 'a'"
        ).fetchone()[0]
    assert batches == [
        ("a", "/v2/bulkevents", str(BIG_MPID), 2),
        ("b", "/v2/bulkevents", str(BIG_MPID), 1),
    ]
    assert events == [
        ("a", 0, "custom_event", "event 0", BIG_TS),
        ("a", 1, "custom_event", "event 1", BIG_TS + 1),
        ("b", 0, "custom_event", "event 0", BIG_TS),
    ]
    assert orjson.loads(stored) == batch("a", 2)


def test_gzip_request_body(emu, session):
    body = gzip.compress(orjson.dumps([batch("gz")]))
    response = session.post(
        emu.base_url + "/bulkevents",
        data=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 202
    assert emu.accepted_source_request_ids() == {"gz"}


def test_rate_limit_gives_429_with_retry_after():
    config = EmulatorConfig(api_key="key", api_secret="secret", rate_limit=2)
    with running_emulator(config) as emu, requests.Session() as s:
        s.auth = ("key", "secret")
        first = post(s, emu, "/bulkevents", [batch("a"), batch("b")])
        second = post(s, emu, "/bulkevents", [batch("c"), batch("d")])

    assert first.status_code == 202
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"  # 2 tokens a second, 2 needed, none left
    assert second.headers["X-mp-rate-limit-exceeded"] == "account"
    assert emu.accepted_source_request_ids() == {"a", "b"}


def run_random_faults(seed: int) -> tuple[list, set]:
    config = EmulatorConfig(
        api_key="key", api_secret="secret", share_429=0.3, share_503=0.2, share_drop=0.2, seed=seed
    )
    outcomes = []
    with running_emulator(config) as emu, requests.Session() as s:
        s.auth = ("key", "secret")
        for i in range(40):
            try:
                response = post(s, emu, "/events", batch(f"r{i}"))
                outcomes.append((response.status_code, response.headers.get("Retry-After")))
            except requests.ConnectionError:
                outcomes.append(("dropped", None))
        return outcomes, emu.accepted_source_request_ids()


def test_random_faults_are_seeded_and_drops_happen_after_processing():
    outcomes, accepted = run_random_faults(seed=1)

    kinds = {status for status, _ in outcomes}
    assert kinds == {202, 429, 503, "dropped"}
    assert all(retry == "1" for status, retry in outcomes if status == 429)
    processed = {f"r{i}" for i, (status, _) in enumerate(outcomes) if status in (202, "dropped")}
    assert accepted == processed
    assert run_random_faults(seed=1) == (outcomes, accepted)
    assert run_random_faults(seed=2)[0] != outcomes


def test_latency_delays_the_answer_not_the_processing():
    config = EmulatorConfig(api_key="key", api_secret="secret", latency_ms=3000)
    with running_emulator(config) as emu, requests.Session() as s:
        s.auth = ("key", "secret")
        with pytest.raises(requests.Timeout):
            s.post(emu.base_url + "/events", data=orjson.dumps(batch("late")), timeout=0.3)
        assert emu.accepted_source_request_ids() == {"late"}


def test_concurrent_keep_alive_sessions(tmp_path):
    config = EmulatorConfig(api_key="key", api_secret="secret", db_path=tmp_path / "r.duckdb")

    def client(n: int, base_url: str) -> list[int]:
        with requests.Session() as s:
            s.auth = ("key", "secret")
            bodies = [[batch(f"c{n}-{i}-{j}", 2) for j in range(5)] for i in range(10)]
            return [
                s.post(base_url + "/bulkevents", data=orjson.dumps(b), timeout=10).status_code
                for b in bodies
            ]

    with running_emulator(config) as emu:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client, range(8), [emu.base_url] * 8))
        assert len(emu.accepted_source_request_ids()) == 400
    assert all(status == 202 for statuses in results for status in statuses)
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from received_batches").fetchall() == [(400,)]
        assert con.execute("select count(*) from received_events").fetchall() == [(800,)]
        assert con.execute("select count(*) from received_requests").fetchall() == [(80,)]


def test_chunked_request_body(emu, session):
    def chunks():
        body = orjson.dumps([batch("chunked")])
        yield body[:10]
        yield body[10:]

    response = session.post(emu.base_url + "/bulkevents", data=chunks(), timeout=10)
    assert response.status_code == 202
    assert emu.accepted_source_request_ids() == {"chunked"}


def test_wrong_shapes_paths_and_encodings(emu, session):
    array_to_events = post(session, emu, "/events", [batch()])
    unknown_path = post(session, emu, "/identify", batch())
    deflate = session.post(
        emu.base_url + "/events",
        data=orjson.dumps(batch()),
        headers={"Content-Encoding": "br"},
        timeout=10,
    )
    stats = session.get(emu.base_url.removesuffix("/v2") + "/_emulator/stats", timeout=10)

    assert array_to_events.status_code == 400
    assert array_to_events.json()["errors"][0]["message"].startswith("/events takes one batch")
    assert unknown_path.status_code == 404
    assert deflate.status_code == 415
    assert stats.json()["requests"] == 3
    assert emu.accepted() == []


def test_record_file_deduplicates_across_restarts_and_can_be_reset(tmp_path):
    db = tmp_path / "r.duckdb"

    def send(config, *ids):
        with running_emulator(config) as emu, requests.Session() as s:
            s.auth = ("key", "secret")
            assert post(s, emu, "/bulkevents", [batch(i) for i in ids]).status_code == 202
            return emu.stats()

    config = EmulatorConfig(api_key="key", api_secret="secret", db_path=db)
    send(config, "a")
    assert send(config, "a", "b")["duplicate_batches"] == 1
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "select list(source_request_id order by source_request_id) from received_batches"
        ).fetchall() == [(["a", "b"],)]
        assert con.execute(
            "select list(request_number order by request_number) from received_requests"
        ).fetchall() == [([1, 2],)]

    reset = EmulatorConfig(api_key="key", api_secret="secret", db_path=db, reset_db=True)
    assert send(reset, "a")["duplicate_batches"] == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from received_batches").fetchall() == [(1,)]


def test_port_in_use_is_a_clear_error(emu):
    from loader.emulator.server import Emulator, EmulatorError

    with pytest.raises(EmulatorError, match="cannot listen on 127.0.0.1"):
        Emulator(EmulatorConfig(port=emu.port))


def test_bad_fault_settings_are_refused():
    from loader.emulator.server import EmulatorError

    with pytest.raises(EmulatorError, match="share_503 must be between 0 and 1"):
        EmulatorConfig(share_503=1.5)
    with pytest.raises(EmulatorError, match="must not exceed 1"):
        EmulatorConfig(share_429=0.6, share_drop=0.6)


CLI_ENV = {**os.environ, "MPARTICLE_API_KEY": "key", "MPARTICLE_API_SECRET": "cli-s3cret"}


def start_cli(tmp_path, *args: str) -> tuple[subprocess.Popen, str, object]:
    """Start `loader emulate` in the background; return it, its URL and its URL file."""
    url_file = tmp_path / "emulator.url"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loader.cli", "emulate", "--url-file", str(url_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CLI_ENV,
    )
    deadline = time.monotonic() + 20
    while not url_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"emulator did not start: {proc.communicate()}")
        time.sleep(0.05)
    return proc, url_file.read_text().strip(), url_file


def test_cli_emulate_serves_and_stops_on_sigterm(tmp_path):
    db = tmp_path / "record.duckdb"
    proc, url, url_file = start_cli(tmp_path, "--port", "0", "--db", str(db), "--script", "503")
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v2")
        with requests.Session() as s:
            s.auth = ("key", "cli-s3cret")
            body = orjson.dumps([batch("cli", 2)])
            assert s.post(url + "/bulkevents", data=body, timeout=10).status_code == 503
            assert s.post(url + "/bulkevents", data=body, timeout=10).status_code == 202
        second = subprocess.run(
            [sys.executable, "-m", "loader.cli", "emulate", "--db", str(db)],
            capture_output=True,
            text=True,
            env=CLI_ENV,
            timeout=30,
        )
        assert second.returncode == 2
        assert "in use by another process" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)

    assert proc.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == f"Events API emulator listening on {url}"
    assert lines[-1] == (
        "emulator stopped: 2 requests (202: 1, 503: 1); accepted 1 batches, 2 events; "
        "0 duplicate batches acknowledged; 0 requests refused as invalid (0 bad batches); "
        "0 connections dropped"
    )
    assert "cli-s3cret" not in stdout + stderr
    assert not url_file.exists()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "select source_request_id, timestamp_unixtime_ms from received_events order by all"
        ).fetchall() == [("cli", BIG_TS), ("cli", BIG_TS + 1)]
        assert con.execute(
            "select status, fault from received_requests order by request_number"
        ).fetchall() == [(503, "503"), (202, None)]
