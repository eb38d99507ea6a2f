"""`loader push` and `loader status` end to end: a real dbt build, the emulator, the ledger."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.events_api.batch_rules import (
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
)
from loader.push.destinations.events_api import Credentials
from loader.push.ledger import Ledger
from loader.push.runner import PushOptions, push
from tests.conftest import ROOT, built_sample, push_env, query
from tests.html_tables import Tables

SECRET = "Sup3r-Secret-Value-9f8e7d"
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A replay set from a real dbt build on generated quarantine data (~900 events)."""
    return built_sample(tmp_path_factory.mktemp("push"), 3000, seed=5)


@pytest.fixture
def env(built, tmp_path, monkeypatch) -> dict[str, str]:
    """A copy of the built warehouse, a fresh ledger path and credentials, in the environment."""
    credentials = {
        "MPARTICLE_API_KEY": "key",
        "MPARTICLE_API_SECRET": SECRET,
    }
    return push_env(built, tmp_path, monkeypatch, credentials)


@pytest.fixture
def emu():
    with running_emulator(EmulatorConfig(api_key="key", api_secret=SECRET)) as emulator:
        yield emulator


def replay_rows(env) -> dict[str, tuple]:
    rows = query(
        Path(env["BACKFILL_DUCKDB"]),
        "select replay_key, user_key, context_key, event_json::varchar, batch_context::varchar, "
        "timestamp_unixtime_ms from replay_events",
    )
    return {row[0]: row[1:] for row in rows}


def ledger_rows(env, sql: str, params=None) -> list[tuple]:
    with Ledger.open(Path(env["BACKFILL_LEDGER"]), read_only=True) as ledger:
        return ledger.query(sql, params)


def keys_by_batch(env) -> dict[str, list[str]]:
    rows = ledger_rows(
        env,
        "select source_request_id, list(replay_key order by position) from batch_events group by 1",
    )
    return dict(rows)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def push_json(*args: str) -> tuple[int, dict, str]:
    code, stdout, stderr = invoke("push", "--json", *args)
    return code, orjson.loads(stdout), stderr


def assert_delivered_exactly_once(env, emu) -> None:
    """Every replay event accepted once, in a batch of one user and context, byte-exact."""
    rows = replay_rows(env)
    composition = keys_by_batch(env)
    seen: dict[str, int] = {}
    for batch in emu.accepted():
        keys = composition[batch["source_request_id"]]
        users = {rows[k][0] for k in keys}
        contexts = {rows[k][1] for k in keys}
        assert len(users) == 1 and len(contexts) == 1
        context = {k: v for k, v in batch.items() if k not in ("events", "source_request_id")}
        assert context == orjson.loads(rows[keys[0]][3])
        assert batch["events"] == [orjson.loads(rows[k][2]) for k in keys]
        for k, sent in zip(keys, batch["events"], strict=True):
            assert sent["data"]["timestamp_unixtime_ms"] == rows[k][4]
            seen[k] = seen.get(k, 0) + 1
    assert set(seen) == set(rows)
    assert set(seen.values()) == {1}


def test_push_sends_every_event_once_and_a_second_push_sends_nothing(env, emu):
    code, report, stderr = push_json("--endpoint", emu.base_url)
    assert code == 0, stderr
    rows = replay_rows(env)
    assert report["status"] == "completed" and report["ok"]
    assert report["sent"]["events_acknowledged"] == len(rows) == report["planned"]["events"]
    assert_delivered_exactly_once(env, emu)

    # limits, from the ledger's record of what went out
    [(largest_batch, largest_request, most_batches)] = ledger_rows(
        env,
        "select (select max(body_bytes) from batches), max(body_bytes), max(batch_count) "
        "from requests",
    )
    assert largest_batch <= MAX_BATCH_BYTES and largest_request <= MAX_REQUEST_BYTES
    assert most_batches <= MAX_BATCHES_PER_REQUEST
    # one user and one context per batch, as the ledger records them
    assert not ledger_rows(
        env,
        "select source_request_id from batches b join batch_events e using (source_request_id) "
        "group by all having count(distinct b.user_key) > 1",
    )
    [(acknowledged,)] = ledger_rows(env, "select count(*) from acknowledged_events")
    assert acknowledged == len(rows)

    requests_before = len(emu.requests)
    code, again, _ = push_json("--endpoint", emu.base_url)
    assert code == 0
    assert again["plan"]["acknowledged_before"] == len(rows)
    assert again["planned"]["events"] == 0
    assert len(emu.requests) == requests_before  # nothing sent twice

    code, stdout, _ = invoke("status", "--json")
    status = orjson.loads(stdout)
    assert code == 0
    assert status["events"] == {
        "acknowledged": len(rows),
        "pending": 0,
        "failed": 0,
        "rejected": 0,
    }
    assert [r["status"] for r in status["runs"]] == ["completed", "completed"]
    assert status["replay_set"]["to_send"] == 0


def test_dry_run_writes_the_exact_bodies_and_needs_no_credentials(env, tmp_path, monkeypatch):
    monkeypatch.delenv("MPARTICLE_API_KEY")
    monkeypatch.delenv("MPARTICLE_API_SECRET")
    out = tmp_path / "bodies"
    code, stdout, stderr = invoke("push", "--dry-run", "--out", str(out))
    assert code == 0, stderr
    assert "Plan:" in stdout and "by type:" in stdout and "data plan:" in stdout
    [(high,)] = query(
        Path(env["BACKFILL_DUCKDB"]),
        ("select count(*) from replay_events where identity_risk = 'high'"),
    )
    assert high > 0 and f"high {high}" in stdout and "extra MTUs" in stderr
    assert not Path(env["BACKFILL_LEDGER"]).exists()  # a dry run records nothing
    assert "the replay set was built without a suppression list" in stderr

    rows = replay_rows(env)
    files = sorted(out.glob("request-*.json"))
    assert files
    texts = {}
    for path in files:
        body = path.read_bytes()
        assert len(body) <= MAX_REQUEST_BYTES
        batches = orjson.loads(body)
        assert 1 <= len(batches) <= MAX_BATCHES_PER_REQUEST
        for batch in batches:
            assert len(orjson.dumps(batch)) <= MAX_BATCH_BYTES
        texts[path] = body.decode()
    everything = "".join(texts.values())
    for event_json, *_ in (row[2:] for row in rows.values()):
        assert event_json in everything  # byte for byte, as replay_events holds it
    plan = orjson.loads((out / "plan.json").read_bytes())
    assert plan["planned"]["events"] == len(rows)
    assert plan["planned"]["requests"] == len(files)


def test_a_push_can_require_a_suppression_list(env, emu, monkeypatch):
    monkeypatch.setenv("BACKFILL_REQUIRE_SUPPRESSION_LIST", "true")
    code, _, stderr = invoke("push")
    assert code == 2
    assert (
        "not pushing (BACKFILL_REQUIRE_SUPPRESSION_LIST is set): the replay set was built "
        "without a suppression list" in " ".join(stderr.split())
    )
    assert emu.requests == [] and not query(Path(env["BACKFILL_LEDGER"]), "select * from runs")


def test_401_stops_the_run_with_a_clear_message_and_the_next_push_resends(env, emu):
    emu.script(["401"])
    code, stdout, stderr = invoke("push", "--endpoint", emu.base_url, "--workers", "1")
    assert code == 2
    assert "401" in stderr and "MPARTICLE_API_KEY" in stderr
    [(status, message)] = ledger_rows(env, "select status, message from runs")
    assert status == "stopped" and "401" in message
    open_before = {r[0] for r in ledger_rows(env, "select source_request_id from batches")}
    assert not emu.accepted()

    code, report, _ = push_json("--endpoint", emu.base_url)
    assert code == 0
    assert report["plan"]["resumed"] == len(replay_rows(env))  # same batches, same ids
    assert emu.accepted_source_request_ids() == open_before
    assert_delivered_exactly_once(env, emu)


def test_failed_batches_are_resent_with_the_same_ids(env, emu):
    emu.script(["drop", "drop", "drop", "drop"])
    code, report, _ = push_json("--endpoint", emu.base_url, "--max-retries", "0")
    assert code == 1
    assert report["status"] == "completed_with_failures"
    assert report["sent"]["batches_failed"] == report["planned"]["batches"]
    failed = {r[0] for r in ledger_rows(env, "select source_request_id from batches")}

    code, report, _ = push_json("--endpoint", emu.base_url)
    assert code == 0
    assert report["plan"]["resumed_batches"] == len(failed)
    assert emu.accepted_source_request_ids() == failed
    assert_delivered_exactly_once(env, emu)


def test_the_secret_never_appears_in_output_ledger_or_files(env, emu, tmp_path):
    outputs = []
    emu.script(["403"])
    outputs.append(invoke("push", "--endpoint", emu.base_url))
    emu.script(["503", "429", "drop-after", "400"])
    outputs.append(invoke("push", "--endpoint", emu.base_url))
    outputs.append(invoke("status"))
    outputs.append(invoke("status", "--json"))
    outputs.append(invoke("push", "--dry-run", "--out", str(tmp_path / "dry"), "--json"))
    outputs.append(invoke("push", "--endpoint", "http://example.com/v2"))
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    emu.script(["403"])
    outputs.append(
        invoke("push", "--endpoint", emu.base_url, "--api-secret-file", str(secret_file))
    )
    secret_file.write_text(SECRET + "\n" + SECRET + "\n")
    outputs.append(
        invoke("push", "--endpoint", emu.base_url, "--api-secret-file", str(secret_file))
    )
    for _code, stdout, stderr in outputs:
        assert SECRET not in stdout and SECRET not in stderr
    ledger = Path(env["BACKFILL_LEDGER"])
    for path in [ledger, *ledger.parent.glob("ledger.duckdb*"), *(tmp_path / "dry").iterdir()]:
        assert SECRET.encode() not in path.read_bytes(), path
    # and not the Basic auth token built from it
    assert b"a2V5OlN1cDNyLVNlY3JldC1WYWx1ZS05ZjhlN2Q" not in ledger.read_bytes()


def test_changed_content_is_reported_and_resent_only_when_asked(env, emu):
    code, _, _ = push_json("--endpoint", emu.base_url)
    assert code == 0
    [(key, old_event)] = query(
        Path(env["BACKFILL_DUCKDB"]),
        "select replay_key, event_json::varchar from replay_events order by replay_key limit 1",
    )
    with duckdb.connect(env["BACKFILL_DUCKDB"]) as con:  # a fix changed one event
        con.execute(
            "update replay_events set event_json = json_merge_patch(event_json, "
            """'{"data":{"event_name":"Renamed"}}') where replay_key = ?""",
            [key],
        )
    requests_before = len(emu.requests)
    code, report, stderr = push_json("--endpoint", emu.base_url)
    assert code == 0
    assert report["plan"]["changed"] == 1 and report["plan"]["changed_examples"] == [key]
    assert report["planned"]["events"] == 0
    assert len(emu.requests) == requests_before
    code, stdout, stderr = invoke("push", "--endpoint", emu.base_url, "--dry-run")
    assert "changed after they were acknowledged" in stderr and "--resend-changed" in stderr
    # the build's vars are those run 1 recorded: the change came from elsewhere
    assert "this build's vars are those of run 1's build" in " ".join(stderr.split())
    [(fixes,)] = query(Path(env["BACKFILL_DUCKDB"]), "select fixes from replay_build_settings")
    assert fixes  # the example fix chain
    with duckdb.connect(env["BACKFILL_DUCKDB"]) as con:  # rebuilt with another var
        con.execute("update replay_build_settings set fixes = [], warn_event_age_days = 1")
    code, report, stderr = push_json("--endpoint", emu.base_url, "--dry-run")
    assert report["plan"]["changed_since_run"] == 1
    assert report["plan"]["changed_vars"] == [
        f"fixes: {orjson.dumps(fixes).decode()} -> []",
        "warn_event_age_days: 14 -> 1",
    ]
    code, stdout, stderr = invoke("push", "--endpoint", emu.base_url, "--dry-run")
    assert (
        "this build's vars differ from run 1's build: fixes: "
        f"{orjson.dumps(fixes).decode()} -> []; warn_event_age_days: 14 -> 1"
    ) in " ".join(stderr.split())

    code, report, stderr = push_json("--endpoint", emu.base_url, "--resend-changed")
    assert code == 0
    assert report["planned"]["events"] == 1
    sent = [b for b in emu.accepted() if "Renamed" in orjson.dumps(b).decode()]
    assert len(sent) == 1
    assert sent[0]["events"][0]["data"]["event_name"] == "Renamed"
    assert orjson.loads(old_event)["data"]["event_name"] != "Renamed"
    [(times, content_hash)] = ledger_rows(
        env,
        "select times_acknowledged, content_hash from acknowledged_events where replay_key = ?",
        [key],
    )
    assert times == 2
    code, report, _ = push_json("--endpoint", emu.base_url)
    assert report["plan"]["changed"] == 0 and report["planned"]["events"] == 0


def test_events_failing_the_local_checks_are_recorded_and_not_sent(env, emu):
    keys = sorted(replay_rows(env))
    bad, huge = keys[0], keys[1]
    with duckdb.connect(env["BACKFILL_DUCKDB"]) as con:
        con.execute(
            "update replay_events set event_json = json_merge_patch(event_json, "
            """'{"data":{"custom_event_type":"bogus"}}') where replay_key = ?""",
            [bad],
        )
        con.execute(
            "update replay_events set event_json = json_merge_patch(event_json, "
            "json_object('data', json_object('custom_attributes', json_object('blob', "
            "repeat('x', 140000))))) where replay_key = ?",
            [huge],
        )
    code, report, _ = push_json("--endpoint", emu.base_url)
    assert code == 1
    assert report["planned"]["events_rejected_locally"] == 2
    assert report["sent"]["events_acknowledged"] == len(keys) - 2
    reasons = ledger_rows(
        env,
        "select e.replay_key, b.status, b.error from batches b join batch_events e "
        "using (source_request_id) where b.status = 'rejected' order by 1",
    )
    assert [(k, s) for k, s, _ in reasons] == sorted([(bad, "rejected"), (huge, "rejected")])
    messages = {k: error for k, _, error in reasons}
    assert "custom_event_type must be one of" in messages[bad]
    assert "128 KB" in messages[huge]
    composition = keys_by_batch(env)
    sent_keys = {k for b in emu.accepted() for k in composition[b["source_request_id"]]}
    assert bad not in sent_keys and huge not in sent_keys

    code, stdout, stderr = invoke("status")
    assert "2 refused" in stdout and "custom_event_type must be one of" in stderr
    code, report, _ = push_json("--endpoint", emu.base_url)
    assert code == 1  # still not delivered: the backfill is not complete
    assert report["plan"]["rejected_before"] == 2 and report["planned"]["events"] == 0


def test_planned_batches_whose_content_changed_are_replanned(env, emu):
    options = PushOptions(endpoint=emu.base_url)

    def interrupt(report) -> None:
        raise KeyboardInterrupt  # after the plan is recorded, before anything is sent

    with pytest.raises(KeyboardInterrupt):
        push(
            Path(env["BACKFILL_DUCKDB"]),
            Path(env["BACKFILL_LEDGER"]),
            options,
            Credentials("key", SECRET),
            on_planned=interrupt,
        )
    [(planned, status)] = ledger_rows(
        env,
        "select count(*) filter (where status = 'planned'), "
        "(select status from runs where run_id = 1) from batches",
    )
    assert planned > 1 and status == "interrupted"
    [(key,)] = query(
        Path(env["BACKFILL_DUCKDB"]),
        "select replay_key from replay_events order by replay_key limit 1",
    )
    with duckdb.connect(env["BACKFILL_DUCKDB"]) as con:
        con.execute(
            "update replay_events set event_json = json_merge_patch(event_json, "
            """'{"data":{"event_name":"Fixed"}}') where replay_key = ?""",
            [key],
        )
    code, report, _ = push_json("--endpoint", emu.base_url)
    assert code == 0
    assert report["plan"]["superseded_batches"] == 1
    assert report["plan"]["resumed_batches"] == planned - 1
    assert report["plan"]["in_doubt"] == 0  # never sent: nothing is in doubt
    assert_delivered_exactly_once(env, emu)
    [(superseded,)] = ledger_rows(env, "select count(*) from batches where status = 'superseded'")
    assert superseded == 1


def test_ledger_survives_rebuilding_the_warehouse(env, emu, built):
    code, _, _ = push_json("--endpoint", emu.base_url)
    assert code == 0
    os.remove(env["BACKFILL_DUCKDB"])
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 2 and "does not exist" in stderr
    shutil.copy(built, env["BACKFILL_DUCKDB"])  # the same replay set, rebuilt
    requests_before = len(emu.requests)
    code, report, _ = push_json("--endpoint", emu.base_url)
    assert code == 0 and report["planned"]["events"] == 0
    assert len(emu.requests) == requests_before


def test_a_ledger_is_for_one_destination(env, emu):
    code, _, _ = push_json("--endpoint", emu.base_url)
    assert code == 0
    with running_emulator(EmulatorConfig(api_key="key", api_secret=SECRET)) as other:
        code, _, stderr = invoke("push", "--endpoint", other.base_url)
    assert code == 2 and "use another ledger file" in " ".join(stderr.split())


def test_missing_or_locked_warehouse_gives_one_clear_message(env, emu, tmp_path, monkeypatch):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as con:
        con.execute("create table other (x int)")
    monkeypatch.setenv("BACKFILL_DUCKDB", str(tmp_path / "empty.duckdb"))
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 2 and "no replay_events table" in stderr and "dbt build" in stderr
    monkeypatch.setenv("BACKFILL_DUCKDB", env["BACKFILL_DUCKDB"])

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', "
            "flush=True); time.sleep(60)",
            env["BACKFILL_DUCKDB"],
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, _, stderr = invoke("push", "--endpoint", emu.base_url)
        assert code == 2 and f"in use by process {holder.pid}" in stderr
        code, _, stderr = invoke("push", "--dry-run")
        assert code == 2 and "dbt build" in stderr
    finally:
        holder.kill()
        holder.wait()


def test_missing_credentials(env, emu, monkeypatch):
    monkeypatch.delenv("MPARTICLE_API_SECRET")
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 2 and "set MPARTICLE_API_SECRET" in stderr and "--dry-run" in stderr
    code, _, stderr = invoke("push", "--endpoint", "http://s2s.mparticle.com/v2")
    assert code == 2 and "refusing plain http" in stderr


def test_crash_and_resume(env):
    """A push killed with SIGKILL mid-run, then run again: nothing lost, nothing sent twice."""
    config = EmulatorConfig(api_key="key", api_secret=SECRET, latency_ms=400)
    with running_emulator(config) as emu:
        command = [
            sys.executable,
            "-m",
            "loader.cli",
            "push",
            "--endpoint",
            emu.base_url,
            "--workers",
            "1",
            "--rate",
            "40",
        ]
        victim = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while not emu.accepted() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert emu.accepted(), "the first push never sent anything"
            first_request = len(emu.accepted())

            # a second push while the first runs fails fast, saying why
            started = time.monotonic()
            code, _, stderr = invoke("push", "--endpoint", emu.base_url)
            assert code == 2 and f"in use by process {victim.pid}" in stderr
            assert time.monotonic() - started < 10

            # kill it while a later request is being answered (ack not yet recorded)
            while len(emu.accepted()) == first_request and time.monotonic() < deadline:
                time.sleep(0.01)
            victim.send_signal(signal.SIGKILL)
        finally:
            victim.kill()
            victim.wait()
        assert victim.returncode == -signal.SIGKILL

        acknowledged_before = {
            r[0]
            for r in ledger_rows(
                env, "select source_request_id from batches where status = 'acknowledged'"
            )
        }
        unfinished = ledger_rows(
            env, "select count(*) from batches where status in ('planned', 'in_flight')"
        )[0][0]
        assert acknowledged_before and unfinished, "the kill did not land mid-run"

        code, report, stderr = push_json("--endpoint", emu.base_url)
        assert code == 0, stderr
        assert report["plan"]["acknowledged_before"] > 0 and report["plan"]["resumed"] > 0
        resent = {
            sid
            for (ids,) in ledger_rows(
                env, "select source_request_ids from requests where run_id = 2"
            )
            for sid in ids
        }
        assert resent and not resent & acknowledged_before  # nothing acknowledged sent again
        assert_delivered_exactly_once(env, emu)
        [(interrupted,)] = ledger_rows(env, "select status from runs where run_id = 1")
        assert interrupted == "interrupted"
        # the killed run's counters, recomputed from what the ledger holds of it
        [(acked, batches_acked, http, planned)] = ledger_rows(
            env,
            "select events_acknowledged, batches_acknowledged, http_requests, batches_planned "
            "from runs where run_id = 1",
        )
        [(acked_in_1, batches_in_1)] = ledger_rows(
            env,
            "select sum(event_count), count(*) from batches where list_contains("
            "(select flatten(list(source_request_ids)) from requests "
            "where run_id = 1 and outcome = 'accepted'), source_request_id)",
        )
        [(requests_in_1,)] = ledger_rows(env, "select count(*) from requests where run_id = 1")
        assert (acked, batches_acked) == (acked_in_1, batches_in_1) and batches_acked > 0
        assert batches_acked == len(acknowledged_before)
        assert http == requests_in_1 > 0 and planned > batches_acked
        [(total_acked,)] = ledger_rows(env, "select sum(events_acknowledged) from runs")
        assert total_acked == len(replay_rows(env))  # per-run rows add up to the total


def synthetic_replay_set(path: Path, users: int) -> None:
    """A replay_events table written directly (one event per user), for request counts."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"""create table replay_events as
            with rows as (
                select
                    i,
                    1700000000000 + i as ts,
                    json_object('environment', 'development', 'mpid', i + 1) as batch_context,
                from range({users}) t(i)
            )
            select
                'b:' || i as replay_key,
                'mpid:' || (i + 1) as user_key,
                md5(batch_context::varchar) as context_key,
                (i + 1)::varchar as mpid,
                'custom_event' as event_type,
                'E' as event_name,
                ts as timestamp_unixtime_ms,
                make_timestamp(ts * 1000) as event_time,
                json_object('event_type', 'custom_event', 'data', json_object(
                    'event_name', 'E', 'custom_event_type', 'other',
                    'timestamp_unixtime_ms', ts)) as event_json,
                batch_context,
                'blocked_event' as replay_reason,
                1.0 as event_age_days,
                null::varchar as data_plan_note,
                'low' as identity_risk,
                []::varchar[] as fixes_applied,
                'b' as batch_id,
                i::varchar as event_id,
                'f.txt' as source_file,
                1::bigint as line_number,
            from rows"""
        )


def test_the_run_stops_when_the_endpoint_keeps_failing(env, tmp_path, monkeypatch):
    warehouse = tmp_path / "many.duckdb"
    synthetic_replay_set(warehouse, 450)  # 5 requests of up to 100 batches
    monkeypatch.setenv("BACKFILL_DUCKDB", str(warehouse))
    config = EmulatorConfig(api_key="key", api_secret=SECRET, share_503=1.0)
    with running_emulator(config) as emu:
        code, report, _ = push_json(
            "--endpoint", emu.base_url, "--max-retries", "0", "--workers", "1"
        )
        assert code == 2
        assert report["status"] == "stopped"
        assert "3 requests in a row failed after every retry" in report["message"]
        assert "HTTP 503" in report["message"]
        assert len(emu.requests) == 3  # then it stopped
        rows = ledger_rows(
            env,
            "select status, attempts > 0, count(*), min(error) from batches group by all "
            "order by all",
        )
        assert [r[:3] for r in rows] == [
            ("failed", True, 300),
            # 100 handed to a worker, never sent (the run had stopped), and 50 never handed
            ("planned", False, 150),
        ]
        assert "HTTP 503" in rows[0][3]
        sent = report["sent"]
        assert (sent["batches_failed"], sent["batches_not_sent"]) == (300, 100)
        [(failed, not_sent)] = ledger_rows(
            env, "select events_failed, events_not_sent from runs where run_id = 1"
        )
        assert (failed, not_sent) == (300, 100)
        code, stdout, _ = invoke("status")
        assert "300 failed" in stdout and "150 not sent yet" in stdout
        from loader.audit.report import render

        # the report needs a built warehouse; its runs table is the ledger's
        html, _ = render(Path(env["BACKFILL_DUCKDB"]), Path(env["BACKFILL_LEDGER"]))
        [run] = Tables(html).table("run", "started (UTC)")
        assert (run["failed"], run["not sent (the run stopped first)"]) == ("300", "100")

        emu.config.share_503 = 0.0  # the endpoint is back
        code, report, _ = push_json("--endpoint", emu.base_url)
        assert code == 0
        assert report["plan"]["resumed_batches"] == 450
        assert report["sent"]["batches_acknowledged"] == 450


def test_status_report_and_failures_agree_once_a_fix_gets_a_rejected_event_acknowledged(env, emu):
    """A batch refused by mParticle (400), then fixed and acknowledged: no failure remains."""
    from loader.audit.report import render

    warehouse, ledger = Path(env["BACKFILL_DUCKDB"]), Path(env["BACKFILL_LEDGER"])
    # an event alone in its batch (one user, one context): its batch holds only it
    [(key, original)] = query(
        warehouse,
        "select any_value(replay_key), any_value(event_json::varchar) from replay_events "
        "group by user_key, context_key having count(*) = 1 order by 1 limit 1",
    )
    with duckdb.connect(str(warehouse)) as con:  # content mParticle refuses
        con.execute(
            "update replay_events set event_json = json_merge_patch(event_json, "
            """'{"data":{"custom_event_type":"bogus"}}') where replay_key = ?""",
            [key],
        )
    options = PushOptions(endpoint=emu.base_url, validate=False)
    first = push(warehouse, ledger, options, Credentials("key", SECRET))
    assert (first.progress.batches_rejected, first.progress.events_rejected) == (1, 1)
    assert [(f.status, f.events) for f in first.failures] == [("rejected", 1)]

    with duckdb.connect(str(warehouse)) as con:  # a fix makes it valid again
        con.execute(
            "update replay_events set event_json = ?::json where replay_key = ?", [original, key]
        )
    second = push(warehouse, ledger, options, Credentials("key", SECRET))
    assert second.status == "completed" and second.failures == []
    total = len(replay_rows(env))
    assert second.progress.events_acknowledged == 1

    code, stdout, _ = invoke("status", "--json")
    status = orjson.loads(stdout)
    assert code == 0
    assert status["failures"] == []
    assert status["events"] == {"acknowledged": total, "pending": 0, "failed": 0, "rejected": 0}

    html, summary = render(warehouse, ledger)
    assert summary.has_push
    assert "<p>No failed or refused batch.</p>" in html
    assert (
        f"{total:,} of {total:,} replay events acknowledged (HTTP 2xx), 0 failed, 0 refused" in html
    )

    reasons, events = sql_json("analyses/failures.sql")
    assert reasons == [] and events == []


def sql_json(query_or_file: str) -> list[list[dict]]:
    """The results of `loader sql --format json`, each a list of rows."""
    code, stdout, stderr = invoke("sql", str(ROOT / query_or_file), "--format", "json")
    assert code == 0, stderr
    decoder, text, results = json.JSONDecoder(), stdout.strip(), []
    while text:
        value, end = decoder.raw_decode(text)
        results.append(value)
        text = text[end:].strip()
    return results


def test_the_secret_can_come_from_a_file_and_never_shows(env, emu, tmp_path, monkeypatch):
    monkeypatch.delenv("MPARTICLE_API_SECRET")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")  # one trailing newline is not part of the secret
    code, stdout, stderr = invoke(
        "push", "--endpoint", emu.base_url, "--api-secret-file", str(secret_file)
    )
    assert code == 0, stderr
    assert SECRET not in stdout + stderr
    assert_delivered_exactly_once(env, emu)
    for path in Path(env["BACKFILL_LEDGER"]).parent.glob("ledger.duckdb*"):
        assert SECRET.encode() not in path.read_bytes(), path


def test_the_secret_can_come_from_stdin(env, emu, monkeypatch):
    monkeypatch.delenv("MPARTICLE_API_SECRET")
    result = runner.invoke(
        app, ["push", "--endpoint", emu.base_url, "--api-secret-file", "-"], input=SECRET + "\n"
    )
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert_delivered_exactly_once(env, emu)


def test_a_wrong_secret_from_a_file_is_refused_without_showing_it(env, emu, tmp_path):
    wrong = tmp_path / "secret"
    wrong.write_text("Wrong-Secret-1a2b3c\n")
    code, stdout, stderr = invoke(
        "push", "--endpoint", emu.base_url, "--api-secret-file", str(wrong)
    )
    assert code == 2 and "403" in stderr
    assert "Wrong-Secret-1a2b3c" not in stdout + stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file or directory"),
        ("", "the file is empty"),
        ("\n", "the file is empty"),
        (SECRET + "\nsecond line\n", "the file holds more than one line"),
    ],
)
def test_a_bad_secret_file_is_a_clear_error(env, emu, tmp_path, content, message):
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    code, stdout, stderr = invoke(
        "push", "--endpoint", emu.base_url, "--api-secret-file", str(path)
    )
    assert code == 2
    assert f"--api-secret-file {path}: {message}" in stderr
    assert SECRET not in stdout + stderr
    assert not emu.requests


def test_push_has_no_option_taking_the_secret_itself(env):
    code, _, stderr = invoke("push", "--api-secret", SECRET)
    assert code == 2 and "No such option: --api-secret" in stderr
    assert SECRET not in stderr


@pytest.mark.parametrize("mistake", ["api_key", "endpoint"])
def test_a_target_that_refused_every_send_gives_way_to_the_corrected_one(
    env, emu, monkeypatch, mistake
):
    # a typo in the key gets a 403; a URL without /v2 gets a 404: the run stops, nothing
    # reaches the emulator
    if mistake == "api_key":
        monkeypatch.setenv("MPARTICLE_API_KEY", "typo")
        wrong = emu.base_url
    else:
        wrong = emu.base_url.removesuffix("/v2")
    code, _, stderr = invoke("push", "--endpoint", wrong)
    assert code == 2 and ("403" in stderr if mistake == "api_key" else "404" in stderr)
    assert not emu.accepted()

    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    code, stdout, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 0, stderr
    note = " ".join(stderr.split())
    assert "were refused before they were read; nothing was acknowledged and nothing is" in note
    assert f"target, {emu.base_url} (API key " in note and "replaces it" in note
    assert_delivered_exactly_once(env, emu)
    # the ledger's target is now the corrected one: the typo is refused in turn
    monkeypatch.setenv("MPARTICLE_API_KEY", "typo")
    code, _, stderr = invoke("push", "--endpoint", wrong)
    assert code == 2 and "events acknowledged" in stderr


def test_another_target_after_acknowledged_events_says_when_a_new_ledger_is_safe(
    env, emu, monkeypatch
):
    code, report, _ = push_json("--endpoint", emu.base_url)
    assert code == 0
    acknowledged = report["sent"]["events_acknowledged"]
    monkeypatch.setenv("MPARTICLE_API_KEY", "second-key")
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    message = " ".join(stderr.split())
    assert code == 2
    assert f"{acknowledged} events acknowledged" in message
    assert "push to the same endpoint with the same API key" in message
    assert "BACKFILL_LEDGER=other-ledger.duckdb" in message
    assert "safe when the new target is another workspace or input" in message
    assert f"(`loader emulate --port {emu.port}`)" in message


def test_a_send_without_an_answer_keeps_the_target_as_it_may_have_arrived(env, emu, monkeypatch):
    # processed by the emulator, then the connection is dropped without an answer
    emu.script(["drop-after"] * 50)
    _, report, _ = push_json("--endpoint", emu.base_url, "--max-retries", "0", "--workers", "1")
    assert report["sent"]["events_acknowledged"] == 0 and emu.accepted()
    monkeypatch.setenv("MPARTICLE_API_KEY", "second-key")
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    message = " ".join(stderr.split())
    assert code == 2
    assert "batches sent without an answer (they may have arrived)" in message
    assert "not when it reaches the same data" in message
