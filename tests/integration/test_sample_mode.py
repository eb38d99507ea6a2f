"""Sample mode (var dev_sample_users_pct): a deterministic share of users, each with all
their events, for writing fixes fast; `loader push` refuses to send such a replay set."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.ingest.samples import generate
from tests.conftest import query, run_dbt
from tests.demo import DEMO_FIXES

runner = CliRunner()
SAMPLE = {**DEMO_FIXES, "dev_sample_users_pct": 20, "replay_attribute_only_events": True}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    warehouse = folder / "backfill.duckdb"
    generate(folder / "q", 4000, seed=11, users=400)
    env = {"BACKFILL_DUCKDB": str(warehouse)}
    assert runner.invoke(app, ["ingest", str(folder / "q")], env=env).exit_code == 0
    return warehouse


def users_and_events(warehouse: Path) -> tuple[set[str], int]:
    users = {u for (u,) in query(warehouse, "select distinct user_key from replay_events")}
    [(events,)] = query(warehouse, "select count(*) from replay_events")
    return users, events


def test_a_sample_is_the_same_users_each_time_with_all_their_events(ingested):
    run_dbt(ingested, "build", dbt_vars={**DEMO_FIXES, "replay_attribute_only_events": True})
    all_users, _ = users_and_events(ingested)
    events_of = dict(query(ingested, "select user_key, count(*) from replay_events group by 1"))

    run_dbt(ingested, "build", dbt_vars=SAMPLE)
    first, first_events = users_and_events(ingested)
    run_dbt(ingested, "build", dbt_vars=SAMPLE)
    second, _ = users_and_events(ingested)

    assert first == second
    assert first < all_users
    assert 0.1 < len(first) / len(all_users) < 0.3
    # a sampled user keeps every event they have in the full build
    assert first_events == sum(events_of[user] for user in first)
    [(pct,)] = query(ingested, "select dev_sample_users_pct from replay_build_settings")
    assert pct == 20


def test_push_refuses_a_sample_and_a_dry_run_says_it_is_one(ingested, tmp_path, monkeypatch):
    run_dbt(ingested, "build", dbt_vars=SAMPLE)
    monkeypatch.setenv("BACKFILL_DUCKDB", str(ingested))
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    monkeypatch.setenv("MPARTICLE_API_SECRET", "secret-sample-1")

    with running_emulator(EmulatorConfig(api_key="key", api_secret="secret-sample-1")) as emu:
        result = runner.invoke(app, ["push", "--endpoint", emu.base_url])
        assert emu.accepted() == []
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "not pushing: the replay set is a sample" in message
    assert "dev_sample_users_pct = 20" in message

    dry = runner.invoke(app, ["push", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "the replay set is a sample" in " ".join(dry.stderr.split())
    as_json = runner.invoke(app, ["push", "--dry-run", "--json"])
    assert orjson.loads(as_json.stdout)["plan"]["sample_users_pct"] == 20

    run_dbt(ingested, "build", dbt_vars=DEMO_FIXES)  # a full build is sent again
    with running_emulator(EmulatorConfig(api_key="key", api_secret="secret-sample-1")) as emu:
        result = runner.invoke(app, ["push", "--endpoint", emu.base_url])
        assert result.exit_code == 0, result.output
        assert emu.accepted()
