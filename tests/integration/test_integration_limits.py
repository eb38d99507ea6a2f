"""Each integration's limit on event age: events at, just under and just over it, counted by
the model at build time and by the push plan at send time; an unknown limit stays unknown."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from tests.conftest import ROOT, query, run_dbt
from tests.quarantine import example_batch, write_file

DAY_MS = 86_400_000
LIMIT_MS = 3 * DAY_MS  # google_analytics_4: 72 hours
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, int]:
    tmp = tmp_path_factory.mktemp("integrations")
    warehouse = tmp / "backfill.duckdb"
    now_ms = int(time.time() * 1000)
    ages = {
        "at": LIMIT_MS,
        "under": LIMIT_MS - 1,
        "over": LIMIT_MS + 1,
        "hour": LIMIT_MS - 3_600_000,
    }
    batches = [
        example_batch(now_ms - age, batch_id=str(1000 + n)) for n, age in enumerate(ages.values())
    ]
    write_file(tmp / "q" / "batches.txt", batches)
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(warehouse)})
    assert result.exit_code == 0, result.output
    run_dbt(
        warehouse,
        "build",
        dbt_vars={
            "replay_reference_time_ms": now_ms,
            "integrations": ["google_analytics_4", "mixpanel"],
        },
    )
    return warehouse, now_ms


def test_the_model_counts_only_events_past_the_limit(built):
    warehouse, _ = built
    [(events,)] = query(warehouse, "select count(*) from replay_events")
    assert events == 8  # two blocked events in each of the four batches
    rows = query(
        warehouse,
        "select integration, sum(events), sum(events_over_limit), any_value(max_event_age_days) "
        "from integration_age_limit_events group by 1 order by 1",
    )
    # only the batch 3 days and 1 ms old is over; exactly 3 days old is within the limit
    assert rows == [("google_analytics_4", 8, 2, 3), ("mixpanel", 8, None, None)]


def test_the_model_carries_the_facts(built):
    warehouse, _ = built
    rows = query(
        warehouse,
        "select integration, dedup_key, bad_event_fails_request, can_trigger_messages "
        "from replay_integrations order by position",
    )
    assert rows == [("google_analytics_4", None, None, None), ("mixpanel", None, False, None)]


def test_the_push_plan_counts_at_send_time_and_says_what_is_unknown(built, tmp_path):
    warehouse, _ = built
    env = {"BACKFILL_DUCKDB": str(warehouse), "BACKFILL_LEDGER": str(tmp_path / "l.duckdb")}
    result = runner.invoke(app, ["push", "--dry-run", "--json"], env=env)
    assert result.exit_code == 0, result.output
    limits = orjson.loads(result.stdout)["plan"]["integration_limits"]
    # later than the build: the events at and just under the limit are past it now; the one
    # an hour under is not
    assert limits == [
        {"integration": "google_analytics_4", "max_event_age_days": 3, "events_over_limit": 6},
        {"integration": "mixpanel", "max_event_age_days": None, "events_over_limit": None},
    ]
    plain = runner.invoke(app, ["push", "--dry-run"], env=env)
    text = " ".join((plain.stdout + plain.stderr).split())
    assert "6 events are older than google_analytics_4 accepts (3 days)" in text
    assert "integration mixpanel: limit on event age unknown" in text


def test_the_report_shows_the_limits(built, tmp_path):
    warehouse, _ = built
    out = tmp_path / "report.html"
    result = runner.invoke(
        app, ["report", "--out", str(out)], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Integration limits" in html and "google_analytics_4" in html
    assert "unknown" in html


def test_an_integration_the_seed_does_not_know_fails_the_build(built, tmp_path):
    warehouse, now_ms = built
    result = run_dbt(
        warehouse,
        "build",
        dbt_vars={"replay_reference_time_ms": now_ms, "integrations": ["amplitude", "snowplow"]},
        check=False,
    )
    assert result.returncode != 0
    assert "relationships_replay_integrations_integration" in result.stdout
    result = run_dbt(warehouse, "build", dbt_vars={"integrations": "braze"}, check=False)
    assert result.returncode != 0
    assert "var integrations must be a list of integration names" in result.stdout


def test_every_seeded_limit_cites_its_source():
    with (ROOT / "seeds/integration_limits.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows
    for row in rows:
        assert row["source_url"].startswith("https://"), row
        assert row["checked_on"] and row["other_limits"], row
        assert row["max_event_age_days"] == "" or row["max_event_age_days"].isdigit(), row


FACT_SOURCES = {
    "max_event_age_days": "source_url",
    "historical_events_accepted": "historical_events_source_url",
    "dedup_key": "dedup_key_source_url",
    "dedup_window_days": "dedup_window_source_url",
    "bad_event_fails_request": "bad_event_source_url",
    "historical_attributes_overwrite": "attributes_source_url",
    "can_trigger_messages": "messages_source_url",
}


def seeded_facts() -> dict[str, dict[str, str]]:
    with (ROOT / "seeds/integration_limits.csv").open(newline="") as file:
        return {row["integration"]: row for row in csv.DictReader(file)}


def test_every_known_fact_has_its_page_and_an_unknown_one_stays_empty():
    for name, row in seeded_facts().items():
        for fact, source in FACT_SOURCES.items():
            if row[fact]:
                assert row[source].startswith("https://"), (name, fact)
        for flag in (
            "historical_events_accepted",
            "bad_event_fails_request",
            "historical_attributes_overwrite",
        ):
            assert row[flag] in ("", "true", "false"), (name, flag)
        assert row["can_trigger_messages"] in ("", "true", "false"), name
        assert row["dedup_window_days"] == "" or row["dedup_window_days"].isdigit(), name


def test_the_documented_integration_rules_are_in_the_facts():
    facts = seeded_facts()
    assert {"amplitude", "google_analytics_4", "meta_conversions_api", "mixpanel", "braze"} <= set(
        facts
    ) and "customer_io" in facts
    amplitude = facts["amplitude"]
    assert amplitude["dedup_key"] == "event_name+event_timestamp+session_start"
    assert amplitude["dedup_window_days"] == "7"
    assert amplitude["historical_attributes_overwrite"] == "true"
    assert amplitude["historical_events_accepted"] == "true"
    meta = facts["meta_conversions_api"]
    assert (meta["max_event_age_days"], meta["bad_event_fails_request"]) == ("7", "true")
    assert facts["google_analytics_4"]["max_event_age_days"] == "3"
    assert facts["braze"]["dedup_key"] == "none"
    assert facts["braze"]["can_trigger_messages"] == "true"
    assert facts["customer_io"]["can_trigger_messages"] == "true"
    assert facts["mixpanel"]["bad_event_fails_request"] == "false"
