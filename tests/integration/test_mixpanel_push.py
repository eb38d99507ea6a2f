"""`loader push --destination mixpanel` end to end: a real dbt build with the Mixpanel
folder, the Mixpanel stand-in on 127.0.0.1, the ledger."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.mixpanel import MixpanelEmulatorConfig, running_mixpanel_emulator
from loader.push.destinations.mixpanel import MixpanelCredentials, endpoint_url
from loader.push.ledger import Ledger
from loader.push.runner import PushOptions, push
from tests.conftest import built_sample, push_env, query

TOKEN = "mp-token-0f1e2d3c4b5a69788796a5b4"
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return built_sample(
        tmp_path_factory.mktemp("mixpanel"),
        300,
        seed=5,
        dbt_vars={"direct_destinations": ["mixpanel"]},
    )


@pytest.fixture
def env(built, tmp_path, monkeypatch) -> dict[str, str]:
    return push_env(built, tmp_path, monkeypatch, {"MIXPANEL_PROJECT_TOKEN": TOKEN})


def mixpanel_rows(env) -> dict[str, dict]:
    rows = query(
        Path(env["BACKFILL_DUCKDB"]), "select insert_id, event_json::varchar from mixpanel_events"
    )
    return {insert_id: orjson.loads(text) for insert_id, text in rows}


def run_push(env, url: str):
    options = PushOptions(
        endpoint=endpoint_url({}, url),
        workers=4,
        rate=2_000,
        backoff_s=0.01,
        max_retries=20,
        destination="mixpanel",
        destination_settings={"events_per_request": 9},
    )
    return push(
        Path(env["BACKFILL_DUCKDB"]),
        Path(env["BACKFILL_LEDGER"]),
        options,
        MixpanelCredentials(TOKEN, ""),
    )


def test_the_build_accounts_for_every_replay_event(env):
    warehouse = Path(env["BACKFILL_DUCKDB"])
    [(replay,)] = query(warehouse, "select count(*) from replay_events")
    [(sent,)] = query(warehouse, "select count(*) from mixpanel_events")
    [(skipped,)] = query(warehouse, "select count(*) from mixpanel_events__skipped")
    assert sent > 0 and sent + skipped == replay


def test_push_exactly_once_through_faults_and_a_rerun(env):
    config = MixpanelEmulatorConfig(token=TOKEN, share_429=0.1, share_503=0.1, share_drop=0.15)
    with running_mixpanel_emulator(config) as emu:
        report = run_push(env, emu.url)
        assert report.status == "completed", report.message
        assert any(entry[2] == "drop-after" for entry in emu.log)
        expected = mixpanel_rows(env)
        got = {e["properties"]["$insert_id"]: e for e in emu.accepted}
        assert len(emu.accepted) == len(got) == len(expected)
        assert got == expected  # every field as the model wrote it, time an exact integer
        again = run_push(env, emu.url)
        assert again.events_planned == 0 and again.progress.http_requests == 0
        assert len(emu.accepted) == len(expected)
    with Ledger.open(Path(env["BACKFILL_LEDGER"]), read_only=True) as ledger:
        [(acknowledged,)] = ledger.query(
            "select count(*) from event_states where state = 'acknowledged'"
        )
    assert acknowledged == len(expected)


def test_a_strict_400_refuses_only_the_failed_records(env):
    warehouse = Path(env["BACKFILL_DUCKDB"])
    with duckdb.connect(str(warehouse)) as con:
        [(bad_key,)] = con.execute("select min(replay_key) from mixpanel_events").fetchall()
        con.execute(
            "update mixpanel_events set event_json = json_merge_patch(event_json, "
            '\'{"properties": {"time": "yesterday"}}\') where replay_key = ?',
            [bad_key],
        )
    with running_mixpanel_emulator(MixpanelEmulatorConfig(token=TOKEN)) as emu:
        report = run_push(env, emu.url)
        assert report.status == "completed_with_failures"
        assert report.progress.events_rejected == 1
        assert len(emu.accepted) == len(mixpanel_rows(env)) - 1
    with Ledger.open(Path(env["BACKFILL_LEDGER"]), read_only=True) as ledger:
        rows = ledger.query("select replay_key, error from event_states where state = 'rejected'")
        codes = ledger.query("select code from failures")
    assert [key for key, _ in rows] == [rows[0][0]] and rows[0][0].endswith(bad_key)
    assert "properties.time" in rows[0][1]
    assert codes == [("invalid_field",)]


def test_the_cli_sends_gzip_with_the_token_never_shown(env, tmp_path):
    with running_mixpanel_emulator(MixpanelEmulatorConfig(token=TOKEN)) as emu:
        result = runner.invoke(
            app,
            ["push", "--destination", "mixpanel", "--endpoint", emu.url],
            env=env,
        )
        assert result.exit_code == 0, result.output
        assert len(emu.accepted) == len(mixpanel_rows(env))
    out = tmp_path / "plan"
    result = runner.invoke(
        app, ["push", "--destination", "mixpanel", "--dry-run", "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    assert all(TOKEN.encode() not in p.read_bytes() for p in out.iterdir())
    assert TOKEN.encode() not in Path(env["BACKFILL_LEDGER"]).read_bytes()


def test_wrong_credentials_stop_the_run(env):
    with running_mixpanel_emulator(MixpanelEmulatorConfig(token="another")) as emu:
        report = run_push(env, emu.url)
    assert report.status == "stopped" and "401" in report.message
    assert TOKEN not in report.message
