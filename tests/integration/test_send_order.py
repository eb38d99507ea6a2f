"""Deadline-first sending and its ETA: the users closest to the strictest age deadline of
var integrations go first, and the plan says per integration how many events pass their
window before they can be sent at the run's rate. A real dbt build of events at known ages."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.push.runner import PushOptions, dry_run
from tests.conftest import run_dbt
from tests.quarantine import write_file

NOW_MS = int(time.time() * 1000)
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
INTEGRATIONS = ["google_analytics_4", "meta_conversions_api"]  # 3 and 7 days
SOON = [str(1000 + k) for k in range(80)]  # 10 minutes before GA4's 72 hours
runner = CliRunner()


def batch(mpid: str, age_ms: int) -> dict:
    event_id = f"{mpid}1"
    return {
        "batch_id": mpid,
        "mpid": mpid,
        "environment": "production",
        "user_identities": {"customer_id": f"C{mpid}"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_id": event_id,
                    "event_name": "Deadline",
                    "custom_event_type": "other",
                    "timestamp_unixtime_ms": str(NOW_MS - age_ms),
                },
            }
        ],
        "context": {
            "data_plan": {"block_metadata": {"dto_version": 1, "blocked_event_ids": [event_id]}}
        },
    }


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("order")
    path = tmp / "backfill.duckdb"
    batches = [
        batch("2001", 1 * HOUR_MS),  # fresh: GA4's deadline in 71 hours
        batch("3001", 8 * DAY_MS),  # ancient: past both windows
        batch("4001", 5 * DAY_MS),  # past GA4's; Meta's deadline in 2 days
        *(batch(mpid, 3 * DAY_MS - 600_000) for mpid in reversed(SOON)),
    ]
    write_file(tmp / "q/Order_1.txt", batches)
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(path)})
    assert result.exit_code == 0, result.output
    run_dbt(
        path,
        "build",
        dbt_vars={"replay_reference_time_ms": NOW_MS, "integrations": INTEGRATIONS},
    )
    return path


def sent_mpids(folder: Path) -> list[str]:
    return [
        str(batch["mpid"])
        for path in sorted(folder.glob("request-*.json"))
        for batch in orjson.loads(path.read_bytes())
    ]


def test_users_closest_to_the_strictest_deadline_go_first(warehouse, tmp_path):
    out = tmp_path / "dry"
    options = PushOptions(endpoint="http://127.0.0.1:9/v2", rate=0.1, at_ms=NOW_MS)
    report = dry_run(warehouse, tmp_path / "ledger.duckdb", options, out)
    # deadlines: SOON in 10 min (GA4), 4001 in 2 days (Meta), 2001 in 71 hours (GA4); 3001
    # has none ahead and goes last; ties by user_key
    assert sent_mpids(out) == [*SOON, "4001", "2001", "3001"]

    # at 0.1 batches/s batch p goes out at +10p s: SOON users 61..80 miss the 10 minutes
    eta = {item["integration"]: item for item in report.plan.integration_eta}
    assert eta["google_analytics_4"]["events_too_old_at_send"] == 20 + 2
    assert eta["google_analytics_4"]["events_too_old_now"] == 2  # 3001 and 4001
    assert eta["meta_conversions_api"]["events_too_old_at_send"] == 1
    assert eta["meta_conversions_api"]["events_too_old_now"] == 1  # 3001
    assert sum(eta["google_analytics_4"]["verdicts"].values()) == len(SOON) + 3


def test_at_the_default_rate_only_the_events_past_the_window_miss_it(warehouse, tmp_path):
    options = PushOptions(endpoint="http://127.0.0.1:9/v2", at_ms=NOW_MS)  # 250 batches/s
    report = dry_run(warehouse, tmp_path / "ledger.duckdb", options)
    eta = {item["integration"]: item for item in report.plan.integration_eta}
    assert eta["google_analytics_4"]["events_too_old_at_send"] == 2


def test_the_dry_run_prints_the_eta_per_integration(warehouse, tmp_path):
    env = {"BACKFILL_DUCKDB": str(warehouse), "BACKFILL_LEDGER": str(tmp_path / "l.duckdb")}
    result = runner.invoke(app, ["push", "--dry-run", "--rate", "0.1"], env=env)
    assert result.exit_code == 0, result.output
    text = " ".join((result.stdout + result.stderr).split())
    ga4 = re.search(
        r"google_analytics_4: (\d+) land, .*?; (\d+) events pass the 72-hour window before "
        r"they can be sent at 0.1 batches/s \((\d+) of them are past it already\)",
        text,
    )
    assert ga4 is not None, text
    # the CLI plans as of now: more of both once the clock moved on since the build (the
    # SOON users are 10 minutes from GA4's window at NOW_MS)
    assert int(ga4.group(2)) >= 22 and int(ga4.group(3)) >= 2
    assert int(ga4.group(3)) <= int(ga4.group(2))
    assert "meta_conversions_api: " in text and "pass the 7-day window" in text
