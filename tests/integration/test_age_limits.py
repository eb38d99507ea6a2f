"""The age limits are dbt vars: a build with other limits changes the push plan and the report."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from loader.audit.report import render
from loader.build_settings import REBUILD_FOR_AGE_CHECKS
from loader.cli import app
from loader.ingest.samples import generate
from tests.conftest import query, run_dbt
from tests.demo import DEMO_FIXES

DAY_MS = 86_400_000
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Events 5 to 6 days old, built with max_event_age_days 7 and warn_event_age_days 3."""
    tmp = tmp_path_factory.mktemp("ages")
    warehouse = tmp / "backfill.duckdb"
    now_ms = int(time.time() * 1000)
    generate(tmp / "q", 600, seed=11, days=1, now_ms=now_ms - 5 * DAY_MS)
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(warehouse)})
    assert result.exit_code == 0, result.output
    run_dbt(
        warehouse,
        "build",
        dbt_vars={
            **DEMO_FIXES,
            "max_event_age_days": 7,
            "warn_event_age_days": 3,
            "replay_reference_time_ms": now_ms,
        },
    )
    return warehouse


def dry_run(warehouse: Path, tmp_path: Path) -> tuple[dict, str]:
    """The plan of `loader push --dry-run --json`, and what the plain dry run prints to stderr."""
    env = {"BACKFILL_DUCKDB": str(warehouse), "BACKFILL_LEDGER": str(tmp_path / "l.duckdb")}
    result = runner.invoke(app, ["push", "--dry-run", "--json"], env=env)
    assert result.exit_code == 0, result.output
    plain = runner.invoke(app, ["push", "--dry-run"], env=env)
    assert plain.exit_code == 0, plain.output
    return orjson.loads(result.stdout)["plan"], " ".join(plain.stderr.split())


def test_the_plan_and_the_report_use_the_build_s_age_limits(built, tmp_path):
    [(events, over_3_days, over_7_days)] = query(
        built,
        "select count(*), count(*) filter (where event_age_days > 3), "
        "count(*) filter (where event_age_days > 7) from replay_events",
    )
    assert events == over_3_days > 0 and over_7_days == 0

    plan, stderr = dry_run(built, tmp_path)
    assert (plan["warn_age_days"], plan["max_age_days"]) == (3, 7)
    assert plan["to_send"] == plan["older_than_warn_days"] == events
    assert plan["older_than_max_days"] == 0
    assert f"{events} events are older than 3 days" in stderr

    _, summary = render(built)
    assert (
        f"{events:,} events are older than 3 days: mParticle advises replaying within 2 weeks; "
        "many downstream tools drop older data (age at build time)."
    ) in summary.warnings


def test_a_warehouse_built_without_the_settings_says_to_rebuild(built, tmp_path):
    warehouse = tmp_path / "old.duckdb"
    shutil.copy(built, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("drop table replay_build_settings")
    plan, stderr = dry_run(warehouse, tmp_path)
    assert (plan["warn_age_days"], plan["max_age_days"]) == (None, None)
    assert (plan["older_than_warn_days"], plan["older_than_max_days"]) == (0, 0)
    assert "rebuild (`dbt build`) to get age checks" in stderr

    _, summary = render(warehouse)
    assert f"No age checks: {REBUILD_FOR_AGE_CHECKS}." in summary.warnings


@pytest.fixture(scope="module")
def past_30_days(tmp_path_factory) -> Path:
    """Events 32 to 33 days old, kept by a build with max_event_age_days 45."""
    tmp = tmp_path_factory.mktemp("ages45")
    warehouse = tmp / "backfill.duckdb"
    now_ms = int(time.time() * 1000)
    generate(tmp / "q", 300, seed=13, days=1, now_ms=now_ms - 32 * DAY_MS)
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(warehouse)})
    assert result.exit_code == 0, result.output
    run_dbt(
        warehouse,
        "build",
        dbt_vars={**DEMO_FIXES, "max_event_age_days": 45, "replay_reference_time_ms": now_ms},
    )
    return warehouse


def test_events_past_the_events_api_age_are_warned_of_by_push_and_report(past_30_days, tmp_path):
    [(events, over_30_days)] = query(
        past_30_days,
        "select count(*), count(*) filter (where event_age_days > 30) from replay_events",
    )
    assert events == over_30_days > 0
    plan, stderr = dry_run(past_30_days, tmp_path)
    assert plan["older_than_api_days"] == events
    warning = (
        f"{events:,} events are older than 30 days: the Events API is for data up to 30 days "
        "old (this build keeps events up to 45 days old: dbt var max_event_age_days)"
    )
    assert f"warning: {warning}" in stderr
    assert f"{events:,} events are older than 14 days: mParticle advises" in stderr

    _, summary = render(past_30_days)
    assert f"{warning} (age at build time)." in summary.warnings
    assert any(w.startswith(f"{events:,} events are older than 14 days") for w in summary.warnings)
