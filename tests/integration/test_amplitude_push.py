"""`loader push --destination amplitude` end to end: a real dbt build, the Amplitude
emulator, the ledger shared with the Events API."""

from __future__ import annotations

import os
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
from loader.emulator.amplitude import AmplitudeEmulatorConfig, running_amplitude_emulator
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.push.destinations.amplitude import AmplitudeCredentials
from loader.push.destinations.events_api import Credentials
from loader.push.ledger import EventCounts, Ledger
from loader.push.runner import PushOptions, push
from tests.conftest import ROOT, built_sample, push_env, query, run_dbt

KEY = "amp-Key-0f1e2d3c4b5a69788796a5b4"
AMPLITUDE_BUILD = {"direct_destinations": ["amplitude"]}  # its models are built only then
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return built_sample(
        tmp_path_factory.mktemp("amplitude"), 800, seed=11, dbt_vars=AMPLITUDE_BUILD
    )


@pytest.fixture
def env(built, tmp_path, monkeypatch) -> dict[str, str]:
    credentials = {
        "AMPLITUDE_API_KEY": KEY,
    }
    return push_env(built, tmp_path, monkeypatch, credentials)


def amplitude_rows(env) -> dict[str, str]:
    rows = query(
        Path(env["BACKFILL_DUCKDB"]), "select insert_id, event_json::varchar from amplitude_events"
    )
    return dict(rows)


def options(url: str, per_request: int = 7, **settings) -> PushOptions:
    """Small requests (`per_request` events), so that a run makes many."""
    return PushOptions(
        batches_per_request=per_request,
        endpoint=url,
        workers=4,
        rate=2_000,
        backoff_s=0.01,
        max_retries=20,
        destination="amplitude",
        destination_settings={"throttle_wait_s": 0.2, **settings},
    )


def run_push(env, url: str, per_request: int = 7, **settings):
    return push(
        Path(env["BACKFILL_DUCKDB"]),
        Path(env["BACKFILL_LEDGER"]),
        options(url, per_request, **settings),
        AmplitudeCredentials(KEY),
    )


def assert_delivered_exactly_once(env, emu) -> None:
    expected = amplitude_rows(env)
    got = [{k: v for k, v in e.items() if k != "_request_no"} for e in emu.accepted]
    assert len(got) == len({e["insert_id"] for e in got}) == len(expected)
    for event in got:  # every field as the model wrote it, time an exact integer
        assert event == orjson.loads(expected[event["insert_id"]])


def test_push_exactly_once_through_429_503_and_drops(env):
    config = AmplitudeEmulatorConfig(
        api_key=KEY, share_429=0.15, share_503=0.15, share_drop=0.15, seed=3
    )
    with running_amplitude_emulator(config) as emu:
        report = run_push(env, emu.url)
        assert report.status == "completed", report.message
        statuses = {entry[1] for entry in emu.log}
        assert {200, 429, 503}.issubset(statuses) and any(e[2] == "drop-after" for e in emu.log)
        assert_delivered_exactly_once(env, emu)
        assert emu.duplicates > 0  # a dropped answer's events came again, de-duplicated
        again = run_push(env, emu.url)
        assert again.events_planned == 0 and again.progress.http_requests == 0


def test_per_user_pace_keeps_every_id_under_the_limit(env):
    # 20 events/s per id counted over 1 s: at 10/s per id, requests of 7 events of one
    # id are 0.7 s apart, so no 1-second window holds more than 14 of its events
    config = AmplitudeEmulatorConfig(api_key=KEY, per_id_limit=20, window_s=1.0)
    with running_amplitude_emulator(config) as emu:
        report = run_push(env, emu.url, per_user_rate=10)
        assert report.status == "completed", report.message
        assert [e for e in emu.log if e[1] == 429] == []
        assert_delivered_exactly_once(env, emu)


def test_throttled_users_wait_alone_and_still_arrive_once(env):
    config = AmplitudeEmulatorConfig(api_key=KEY, per_id_limit=20, window_s=1.0)
    with running_amplitude_emulator(config) as emu:
        report = run_push(env, emu.url, per_user_rate=1000)
        assert report.status == "completed", report.message
        throttled = [e for e in emu.log if e[1] == 429]
        assert throttled, "the emulator never throttled: the test proves nothing"
        assert_delivered_exactly_once(env, emu)
    with Ledger.open(Path(env["BACKFILL_LEDGER"]), read_only=True) as ledger:
        [(held,)] = ledger.query("select count(*) from requests where outcome = 'rate_limited'")
        [(accepted_between,)] = ledger.query(
            "select count(*) from requests where outcome = 'accepted' and batch_count > 0"
        )
    assert held and accepted_between  # the others went on while throttled ones waited


def test_a_400_refuses_only_the_bad_events_with_amplitudes_message(env):
    warehouse = Path(env["BACKFILL_DUCKDB"])
    con = duckdb.connect(str(warehouse))
    [(bad_key,)] = con.execute("select min(replay_key) from amplitude_events").fetchall()
    con.execute(
        "update amplitude_events set event_json = json_merge_patch(event_json, "
        '\'{"time": "yesterday"}\') where replay_key = ?',
        [bad_key],
    )
    con.close()
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        report = run_push(env, emu.url)
        assert report.status == "completed_with_failures"
        assert report.progress.events_rejected == 1
        assert len(emu.accepted) == len(amplitude_rows(env)) - 1
    with Ledger.open(Path(env["BACKFILL_LEDGER"]), read_only=True) as ledger:
        rows = ledger.query("select replay_key, error from event_states where state = 'rejected'")
        codes = ledger.query("select code, reason from failures")
    assert rows == [(bad_key, rows[0][1])]
    assert "invalid time" in rows[0][1]
    assert codes == [("invalid_field", "a field has a value the destination refuses")]


def test_the_push_output_names_amplitude_as_the_side_that_refused(env):
    warehouse = Path(env["BACKFILL_DUCKDB"])
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update amplitude_events set event_json = json_merge_patch(event_json, "
            '\'{"time": "yesterday"}\') '
            "where replay_key = (select min(replay_key) from amplitude_events)"
        )
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        result = runner.invoke(
            app, ["push", "--destination", "amplitude", "--endpoint", emu.url], env=env
        )
    assert result.exit_code == 1, result.output
    assert ", 1 refused by Amplitude, " in " ".join(result.stdout.split())
    assert "mParticle" not in result.output  # nor its MTU warning: profiles are its own


def test_the_push_sends_the_builds_min_id_length(env):
    """A build that kept 3-character ids (var amplitude_min_id_length: 3) is sent with
    options.min_id_length 3, or Amplitude would refuse those events."""
    with duckdb.connect(env["BACKFILL_DUCKDB"]) as con:
        con.execute("update replay_build_settings set amplitude_min_id_length = 3")
        con.execute(
            "update amplitude_events set event_json = json_merge_patch(event_json, "
            '\'{"user_id": "u42"}\') '
            "where replay_key = (select min(replay_key) from amplitude_events)"
        )
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        result = runner.invoke(
            app, ["push", "--destination", "amplitude", "--endpoint", emu.url], env=env
        )
        assert result.exit_code == 0, result.output
        assert "u42" in {event.get("user_id") for event in emu.accepted}


def test_a_build_without_amplitude_leaves_a_table_the_push_refuses(env):
    """`dbt build -s replay_events` (or a build without var direct_destinations) rebuilds
    the replay set but not amplitude_events: that table is out of date."""
    warehouse = Path(env["BACKFILL_DUCKDB"])
    run_dbt(warehouse, "build", "-s", "replay_events")
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        result = runner.invoke(
            app, ["push", "--destination", "amplitude", "--endpoint", emu.url], env=env
        )
        assert emu.accepted == []
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "amplitude_events is out of date" in said
    assert "its destination in var direct_destinations" in said

    with duckdb.connect(str(warehouse)) as con:
        con.execute("drop table amplitude_events")
    result = runner.invoke(app, ["push", "--destination", "amplitude", "--dry-run"], env=env)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "has no amplitude_events table yet" in said
    assert "var direct_destinations" in said


def test_events_api_and_amplitude_are_independent_in_one_ledger(env, monkeypatch):
    secret = "Events-Secret-77aa99bb"
    ledger_path = Path(env["BACKFILL_LEDGER"])
    with (
        running_emulator(EmulatorConfig(api_key="key", api_secret=secret)) as events,
        running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as amp,
    ):
        report = push(
            Path(env["BACKFILL_DUCKDB"]),
            ledger_path,
            PushOptions(endpoint=events.base_url, backoff_s=0.01),
            Credentials("key", secret),
        )
        assert report.status == "completed", report.message
        first = run_push(env, amp.url)
        assert first.status == "completed" and first.plan.acknowledged_before == 0
        assert_delivered_exactly_once(env, amp)
        again = push(
            Path(env["BACKFILL_DUCKDB"]),
            ledger_path,
            PushOptions(endpoint=events.base_url, backoff_s=0.01),
            Credentials("key", secret),
        )
        assert again.events_planned == 0
    with Ledger.open(ledger_path, read_only=True) as ledger:
        assert ledger.destinations() == ["events_api", "amplitude"]
        assert ledger.event_counts("amplitude").acknowledged == len(amplitude_rows(env))
        assert [r.destination for r in ledger.runs()] == ["events_api", "amplitude", "events_api"]
    status = runner.invoke(app, ["status"], env=env)
    assert status.exit_code == 0, status.output
    total = len(amplitude_rows(env))
    assert f"amplitude: {total} events acknowledged, 0 not sent yet" in status.output
    assert "amplitude replay set" in status.output and "next push sends 0" in status.output
    page = Path(env["BACKFILL_LEDGER"]).with_name("report.html")
    report = runner.invoke(app, ["report", "--out", str(page)], env=env)
    assert report.exit_code == 0, report.output
    assert f"amplitude (a direct destination): {total} events acknowledged" in page.read_text()


def test_a_push_to_one_destination_leaves_the_others_open_batches_open(env):
    """Each destination's open batches are its own: a push to Amplitude neither supersedes
    nor sends the Events API's failed batches, which the next Events API push resumes."""
    secret = "Events-Secret-77aa99bb"
    warehouse, ledger_path = Path(env["BACKFILL_DUCKDB"]), Path(env["BACKFILL_LEDGER"])

    def events_api_push(url: str, **settings):
        options = PushOptions(endpoint=url, backoff_s=0.01, workers=1, **settings)
        return push(warehouse, ledger_path, options, Credentials("key", secret))

    with running_emulator(EmulatorConfig(api_key="key", api_secret=secret)) as events:
        events.script(["503"])  # the first request's batches fail (no retries)
        first = events_api_push(events.base_url, max_retries=0, batches_per_request=10)
        assert first.status == "completed_with_failures", first.message
        with Ledger.open(ledger_path, read_only=True) as ledger:
            rows = ledger.query("select source_request_id from failed_batches")
        failed = {sid for (sid,) in rows}
        assert failed
        with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as amp:
            assert run_push(env, amp.url).status == "completed"
            assert_delivered_exactly_once(env, amp)
        with Ledger.open(ledger_path, read_only=True) as ledger:
            assert ledger.query(
                "select distinct status from batches where list_contains(?, source_request_id)",
                [sorted(failed)],
            ) == [("failed",)]
            assert ledger.event_counts("events_api").failed > 0
        resumed = events_api_push(events.base_url)
        assert resumed.status == "completed", resumed.message
        assert resumed.plan.resumed_batches == len(failed)
        assert failed <= events.accepted_source_request_ids()
    with Ledger.open(ledger_path, read_only=True) as ledger:
        assert ledger.event_counts("events_api") == EventCounts(
            acknowledged=query(warehouse, "select count(*) from replay_events")[0][0]
        )
        assert ledger.query("select count(*) from batches where status = 'superseded'") == [(0,)]


def test_the_key_stays_out_of_the_ledger_and_dry_run_bodies(env, tmp_path):
    out = tmp_path / "plan"
    result = runner.invoke(
        app, ["push", "--destination", "amplitude", "--dry-run", "--out", str(out)], env=env
    )
    assert result.exit_code in (0, 1), result.output
    bodies = sorted(out.glob("request-*.json"))
    assert bodies
    for body in bodies:
        assert orjson.loads(body.read_bytes())["api_key"] == "***"
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY, script=["503"])) as emu:
        run_push(env, emu.url)
    ledger = Path(env["BACKFILL_LEDGER"])
    assert KEY.encode() not in ledger.read_bytes()
    assert all(KEY.encode() not in p.read_bytes() for p in out.iterdir())


def test_kill_and_resume_sends_nothing_acknowledged_again(env):
    config = AmplitudeEmulatorConfig(api_key=KEY, latency_ms=300)
    with running_amplitude_emulator(config) as emu:
        command = [
            sys.executable, "-m", "loader.cli", "push", "--destination", "amplitude",
            "--endpoint", emu.url, "--workers", "1", "--rate", "60",
            "--events-per-request", "10",
        ]  # fmt: skip
        victim = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while not emu.accepted and time.monotonic() < deadline:
                time.sleep(0.02)
            first = len(emu.accepted)
            # the third request is being answered: the first's answer is recorded by now
            while len(emu.accepted) < 3 * first and time.monotonic() < deadline:
                time.sleep(0.01)
            victim.send_signal(signal.SIGKILL)
        finally:
            victim.kill()
            victim.wait()
        assert victim.returncode == -signal.SIGKILL
        ledger_path = Path(env["BACKFILL_LEDGER"])
        with Ledger.open(ledger_path, read_only=True) as ledger:
            acknowledged = {
                r[0]
                for r in ledger.query(
                    "select source_request_id from batches where status = 'acknowledged'"
                )
            }
            [(unfinished,)] = ledger.query(
                "select count(*) from batches where status in ('planned', 'in_flight')"
            )
        assert acknowledged and unfinished, "the kill did not land mid-run"
        report = run_push(env, emu.url)
        assert report.status == "completed", report.message
        with Ledger.open(ledger_path, read_only=True) as ledger:
            resent = {
                sid
                for (ids,) in ledger.query(
                    "select source_request_ids from requests where run_id = 2"
                )
                for sid in ids
            }
        assert resent and not resent & acknowledged
        assert_delivered_exactly_once(env, emu)


def test_historical_events_skip_user_property_sync_unless_the_build_turns_it_on(env):
    warehouse, ledger = Path(env["BACKFILL_DUCKDB"]), Path(env["BACKFILL_LEDGER"])
    # the users' blocked user attributes go with their events: Amplitude user_properties
    with_attributes = {**AMPLITUDE_BUILD, "replay_blocked_user_attributes": True}
    run_dbt(warehouse, "build", dbt_vars=with_attributes)
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        assert run_push(env, emu.url).status == "completed"
        assert emu.accepted and all(e["$skip_user_properties_sync"] is True for e in emu.accepted)
        with_properties = [e for e in emu.accepted if e.get("user_properties")]
        assert with_properties, "no event sets user properties: the test proves nothing"
        assert emu.synced_events == 0 and emu.profiles == {}

    syncing = {**with_attributes, "amplitude_skip_user_properties_sync": False}
    run_dbt(warehouse, "build", "-s", "int_amplitude__mapped+", dbt_vars=syncing)
    ledger.unlink()
    with running_amplitude_emulator(AmplitudeEmulatorConfig(api_key=KEY)) as emu:
        assert run_push(env, emu.url).status == "completed"
        assert not any("$skip_user_properties_sync" in e for e in emu.accepted)
        assert emu.synced_events == len(emu.accepted) and emu.profiles
