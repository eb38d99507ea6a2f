"""What each integration does with each replay event: quarantine batches at known ages, each
with two blocked events and one attribute-only event, judged by the facts of seed
integration_limits at the event's expected send time (deadline-first order, one batch a
second), in a real DuckDB warehouse built by dbt."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from loader.cli import app
from tests.conftest import ROOT, query, run_dbt
from tests.demo import DEMO_FIXES
from tests.quarantine import example_batch, write_file

NOW_MS = 1_800_000_000_000  # the build's reference time (2027-01-15 08:00 UTC)
DAY_MS = 86_400_000
GA4_LIMIT_MS = 3 * DAY_MS
INTEGRATIONS = ["amplitude", "google_analytics_4", "meta_conversions_api", "braze"]
# user -> age of its batch at the reference time; each user is one batch group
AGES = {
    "edge": GA4_LIMIT_MS - 1_500,  # 1.5 s inside the GA4 limit; sent first, 1 s after the build
    "edge2": GA4_LIMIT_MS - 1_800,  # 1.8 s inside it; sent second, 2 s after: too late
    "renamed": 2 * DAY_MS,
    "day1": DAY_MS + 3_600_000,  # GA4 deadline an hour before day5's Meta deadline
    "renamed5": 5 * DAY_MS + 1_800_000,  # a blocked event the fix renames, too old for GA4
    "day5": 5 * DAY_MS,
    "day10": 10 * DAY_MS,
}
ATTRIBUTE_ONLY = "allowed event"  # the example batch's event that lost attribute testAttr1
runner = CliRunner()


def batch(user: str, age_ms: int, number: int) -> dict:
    body = example_batch(
        NOW_MS - age_ms,
        batch_id=str(7000 + number),
        user_identities={"customer_id": f"customer-{user}", "email": f"{user}@example.com"},
    )
    if user == "renamed":  # fix_rename_checkout_event renames it: its dedup key changes
        body["events"][2]["data"]["event_name"] = "Chekout Complete"
    if user == "renamed5":
        body["events"][0]["data"]["event_name"] = "Chekout Complete"
    return body


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("outcomes")
    warehouse = tmp / "backfill.duckdb"
    batches = [batch(user, age, n) for n, (user, age) in enumerate(AGES.items())]
    write_file(tmp / "q" / "batches.txt", batches)
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(warehouse)})
    assert result.exit_code == 0, result.output
    run_dbt(warehouse, "build", dbt_vars=build_vars())
    return warehouse


def build_vars() -> dict:
    return {
        "replay_reference_time_ms": NOW_MS,
        "integrations": INTEGRATIONS,
        "replay_attribute_only_events": True,
        **DEMO_FIXES,  # fix_rename_checkout_event renames "Chekout Complete"
        "expected_send_rate_batches_per_s": 1,
    }


def verdicts(warehouse: Path) -> dict[tuple[str, str, str], tuple[str, str, str | None]]:
    """(user, attribute_only|blocked, integration) -> (verdict, reason, source_url); both
    blocked events of a user get the same verdict."""
    rows = query(
        warehouse,
        """select distinct split_part(json_extract_string(r.batch_context,
                '$.user_identities.email'), '@', 1),
            r.replay_reason, o.integration, o.verdict, o.reason, o.source_url
        from replay_integration_outcomes o join replay_events r using (replay_key)""",
    )
    found: dict[tuple[str, str, str], tuple[str, str, str | None]] = {}
    for user, replay_reason, integration, verdict, reason, source in rows:
        kind = "attribute_only" if replay_reason == "blocked_attributes" else "blocked"
        key = (user, kind, integration)
        assert key not in found, f"two verdicts for {key}"
        found[key] = (verdict, reason, source)
    return found


def test_every_replay_event_has_a_verdict_per_integration(built):
    [(events, rows)] = query(
        built,
        "select (select count(*) from replay_events), "
        "(select count(*) from replay_integration_outcomes)",
    )
    assert events == 3 * len(AGES) and rows == events * len(INTEGRATIONS)


def test_an_attribute_only_replay_inside_amplitudes_window_is_dropped(built):
    found = verdicts(built)
    for user in ("edge", "edge2", "day1", "day5"):
        verdict, reason, source = found[(user, "attribute_only", "amplitude")]
        assert verdict == "dropped_as_duplicate", (user, reason)
        assert source == "https://docs.mparticle.com/integrations/amplitude/event"
    _, reason, _ = found[("day1", "attribute_only", "amplitude")]
    assert reason == (
        "amplitude drops a repeated event_name+event_timestamp+session_start within 7 days; "
        "this copy has its original's and is sent 1.0 days after it, so its blocked "
        "attributes (testAttr1) will not land there"
    )


def test_past_the_window_or_with_a_renamed_event_amplitude_keeps_both_copies(built):
    found = verdicts(built)
    verdict, reason, source = found[("day10", "attribute_only", "amplitude")]
    assert verdict == "duplicated"
    assert "sent 10.0 days after its original, past amplitude's 7-day window" in reason
    assert source == "https://amplitude.com/docs/get-started/track-your-progress"
    verdict, reason, _ = found[("renamed", "attribute_only", "amplitude")]
    assert verdict == "duplicated"
    assert reason.startswith("fix fix_rename_checkout_event changed the event name, so the copy's")


def test_blocked_events_land_within_the_limit_and_not_past_it_at_the_expected_send(built):
    found = verdicts(built)
    assert found[("day1", "blocked", "google_analytics_4")][0] == "lands"
    assert found[("day5", "blocked", "google_analytics_4")][0] == "too_old_at_send"
    assert found[("day5", "blocked", "meta_conversions_api")][0] == "lands"
    verdict, reason, source = found[("day10", "blocked", "meta_conversions_api")]
    assert verdict == "too_old_at_send"
    assert reason == (
        "meta_conversions_api takes events up to 7 days old; this event is 10.0 days old at "
        "its expected send (3.0 days past the limit), and one too-old event fails the whole "
        "request it is in"
    )
    assert source.startswith("https://developers.facebook.com/")
    # Amplitude states no age limit but takes historical data
    verdict, _, source = found[("day10", "blocked", "amplitude")]
    assert (verdict, source) == ("lands", "https://amplitude.com/docs/data/data-backfill")


def test_the_expected_send_time_decides_an_event_at_the_edge_of_the_limit(built):
    found = verdicts(built)
    # both are within 72 hours at the build; the first sent is still within at its send,
    # the second (sent a second later) is not
    assert found[("edge", "blocked", "google_analytics_4")][0] == "lands"
    verdict, reason, _ = found[("edge2", "blocked", "google_analytics_4")]
    assert verdict == "too_old_at_send"
    assert reason.endswith("3.0 days old at its expected send (1 s past the limit)")
    order = query(
        built,
        """select split_part(json_extract_string(r.batch_context, '$.user_identities.email'),
                '@', 1), s.send_position, s.expected_send_at_ms - ?
        from replay_send_order s
        join (select distinct user_key, batch_context from replay_events) r using (user_key)
        order by s.send_position""",
        [NOW_MS],
    )
    # deadline first (the nearest GA4 or Meta deadline still ahead); day10 has passed both
    assert [user for user, _, _ in order] == [
        "edge",
        "edge2",
        "renamed",
        "day1",
        "renamed5",
        "day5",
        "day10",
    ]
    assert [(position, offset) for _, position, offset in order] == [
        (n, n * 1000) for n in range(1, 8)
    ]


def test_what_a_fact_does_not_say_stays_unknown(built):
    found = verdicts(built)
    verdict, reason, source = found[("day1", "attribute_only", "google_analytics_4")]
    assert verdict == "unknown"
    assert reason.startswith("no public page states the key google_analytics_4 deduplicates")
    # Braze keeps every event, but no page states the oldest event it takes
    verdict, reason, _ = found[("day1", "attribute_only", "braze")]
    assert verdict == "unknown"
    assert "braze does not deduplicate events" in reason
    assert "no public page states the oldest event braze takes" in reason
    assert found[("day1", "blocked", "braze")][:2] == (
        "unknown",
        "no public page states the oldest event braze takes; this event is 1.0 days old at "
        "its expected send",
    )


def test_without_the_amplitude_dedup_rule_the_verdict_is_unknown(built, tmp_path):
    """The dropped verdict comes from the seeded rule: without it, no verdict claims it."""
    warehouse = tmp_path / "backfill.duckdb"
    shutil.copy(built, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update main.integration_limits set dedup_key = null where integration = 'amplitude'"
        )
    run_dbt(warehouse, "run", "--select", "replay_integrations+", dbt_vars=build_vars())
    verdict, reason, _ = verdicts(warehouse)[("day1", "attribute_only", "amplitude")]
    assert verdict == "unknown", reason
    assert "no public page states the key amplitude deduplicates" in reason


def test_the_data_test_fails_when_an_event_lacks_a_verdict(built, tmp_path):
    warehouse = tmp_path / "backfill.duckdb"
    shutil.copy(built, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "delete from main.replay_integration_outcomes where integration = 'braze' and "
            "replay_key = (select min(replay_key) from main.replay_integration_outcomes)"
        )
    result = run_dbt(
        warehouse,
        "test",
        "--select",
        "assert_every_replay_event_has_an_outcome_per_integration",
        dbt_vars=build_vars(),
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert "assert_every_replay_event_has_an_outcome_per_integration" in result.stdout


def test_the_report_says_what_will_land_where(built, tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--out", str(out)], env={"BACKFILL_DUCKDB": str(built)})
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<h2" in html and "What will land where" in html
    section = html.split('id="what-lands-where"', 1)[1]
    assert "Fixes whose changes will not land everywhere" in section
    # the fix renamed a blocked event of renamed5, which is too old for GA4 at its send
    fixes = section.split("Fixes whose changes will not land everywhere", 1)[1]
    assert "fix_rename_checkout_event" in fixes and "google_analytics_4" in fixes
    text = " ".join(result.output.split()) + " ".join(html.split())
    assert "5 attribute-only replays will be dropped as duplicates by amplitude" in text


def test_the_reviewer_queries_answer_per_integration_and_fix(built):
    env = {"BACKFILL_DUCKDB": str(built)}
    query_file = str(ROOT / "analyses/what_lands_where.sql")
    result = runner.invoke(app, ["sql", "--no-ledger", "--format", "csv", query_file], env=env)
    assert result.exit_code == 0, result.output
    assert (
        "integration,lands,dropped_as_duplicate,duplicated,too_old_at_send,unknown\n"
        "amplitude,14,5,2,0,0\n"
    ) in result.stdout
    assert "fix_rename_checkout_event,google_analytics_4,too_old_at_send,1" in result.stdout
    one = runner.invoke(
        app,
        ["sql", "--no-ledger", "--format", "csv", query_file, "--set", "integration=braze"],
        env=env,
    )
    assert one.exit_code == 0, one.output
    assert "amplitude" not in one.stdout and "braze,0,0,0,0,21" in one.stdout
    order = runner.invoke(
        app,
        ["sql", "--no-ledger", "--format", "csv", str(ROOT / "analyses/send_order.sql")],
        env=env,
    )
    assert order.exit_code == 0, order.output
    assert "google_analytics_4,12," in order.stdout  # events too old for GA4 at their send
