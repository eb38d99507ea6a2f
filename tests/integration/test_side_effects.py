"""Side effects of a replay, on real dbt builds and the loopback emulator: events listed in
seed trigger_events are counted by the dry run, the test send and the report, refused by
`loader push` without --allow-triggers (the run records it when given) or left out by a
fix; and each batch's consent_state reaches mParticle as it was (GDPR and CCPA shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import yaml
from typer.testing import CliRunner

from loader.audit.report import render
from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from tests.conftest import query, run_dbt
from tests.integration.test_new_fix import copy_project
from tests.quarantine import example_batch, write_file

NOW_MS = 1_795_996_800_000
runner = CliRunner()

# consent_state shapes from https://docs.mparticle.com/developers/server/json-reference/#consent_state
GDPR = {
    "gdpr": {
        "location_collection": {
            "consented": True,
            "document": "location_collection_agreement_v4",
            "timestamp_unixtime_ms": 1523039002083,
            "location": "17 Cherry Tree Lane",
            "hardware_id": "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702",
        },
        "parental": {
            "consented": False,
            "document": "parental_consent_agreement_v2",
            "timestamp_unixtime_ms": 1523039002083,
            "location": "17 Cherry Tree Lane",
            "hardware_id": "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702",
        },
    }
}
CCPA = {
    "ccpa": {
        "data_sale_opt_out": {
            "consented": True,
            "document": None,
            "timestamp_unixtime_ms": 1523039002083,
            "location": None,
            "hardware_id": None,
        }
    }
}

TRIGGERS_CSV = """integration,event_type,event_name
braze,custom_event,Order Completed
braze,screen_view,
"""
SKIP_TRIGGERS = """
with events as (
    select * from {{ fix_input() }}
),

fixed as (
    select
        * replace (
            {{ skip_events("event_name = 'Order Completed' or event_type = 'screen_view'",
                'would start Braze campaigns') }}
        ),
    from events
)

select * from fixed
"""


def event(kind: str, name: str, batch_id: str, index: int) -> dict:
    """An event whose custom attribute `from` names its batch (event ids are not sent)."""
    data: dict = {
        "event_id": f"{batch_id}{index}",
        "timestamp_unixtime_ms": str(NOW_MS - 86_400_000),
        "custom_attributes": {"from": batch_id},
    }
    if kind == "screen_view":
        data["screen_name"] = name
    else:
        data.update(event_name=name, custom_event_type="other")
    return {"event_type": kind, "data": data}


def batch(batch_id: str, events: list[tuple[str, str]], consent: dict, **who) -> dict:
    """A batch of blocked events ('<kind>', '<name>'), ids '<batch_id>0', '<batch_id>1', ..."""
    body = example_batch(NOW_MS - 86_400_000, batch_id=batch_id, **who)
    body["device_info"] = {}
    body["events"] = [event(kind, name, batch_id, i) for i, (kind, name) in enumerate(events)]
    body["consent_state"] = consent
    metadata = body["context"]["data_plan"]["block_metadata"]
    metadata.update(
        blocked_event_ids=[f"{batch_id}{i}" for i in range(len(events))],
        blocked_event_attributes=[],
        blocked_user_identities=[],
        blocked_device_identities=[],
    )
    return body


BATCHES = [
    batch(
        "1",
        [("custom_event", "Order Completed"), ("custom_event", "Viewed Page")],
        GDPR,
        mpid="8000000000000000001",
        user_identities={},
    ),
    batch(
        "2",
        [("screen_view", "Cart"), ("custom_event", "Order Completed")],
        CCPA,
        user_identities={"customer_id": "C2"},
    ),
    # a name in another case is another event: not a trigger
    batch(
        "3",
        [("custom_event", "order completed")],
        GDPR | CCPA,
        user_identities={"email": "e3@x.io"},
    ),
]
TRIGGERING = {"1 Order Completed", "2 Cart", "2 Order Completed"}
EVERY_EVENT = sorted([*TRIGGERING, "1 Viewed Page", "3 order completed"])


def project(tmp_path: Path, *, skip_fix: bool) -> Path:
    """The project with seed trigger_events filled in, Braze and Customer.io as the
    integrations (Customer.io can trigger messages, none of its events listed), and with
    `skip_fix` a fix that skips the triggering events."""
    folder = copy_project(tmp_path / "project")
    (folder / "seeds" / "trigger_events.csv").write_text(TRIGGERS_CSV)
    settings = yaml.safe_load((folder / "dbt_project.yml").read_text())
    if skip_fix:
        (folder / "models" / "fixes" / "fix_skip_triggers.sql").write_text(SKIP_TRIGGERS)
        settings["vars"]["fixes"] = [*settings["vars"]["fixes"], "fix_skip_triggers"]
    (folder / "dbt_project.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return folder


def built(tmp_path: Path, monkeypatch, *, skip_fix: bool) -> Path:
    warehouse = tmp_path / "backfill.duckdb"
    monkeypatch.setenv("BACKFILL_DUCKDB", str(warehouse))
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    monkeypatch.setenv("MPARTICLE_API_SECRET", "s3cret")
    write_file(tmp_path / "q" / "batches.txt", BATCHES)
    result = runner.invoke(app, ["ingest", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    run_dbt(
        warehouse,
        "build",
        dbt_vars={"replay_reference_time_ms": NOW_MS, "integrations": ["braze", "customer_io"]},
        project_dir=project(tmp_path, skip_fix=skip_fix),
    )
    return warehouse


def names(accepted: list[dict]) -> list[str]:
    """'<batch id> <event name>' of every event the emulator accepted."""
    return sorted(
        f"{e['data']['custom_attributes']['from']} "
        f"{e['data'].get('event_name') or e['data']['screen_name']}"
        for b in accepted
        for e in b["events"]
    )


def user_key(warehouse: Path, batch_id: str) -> str:
    [(key,)] = query(
        warehouse,
        f"select distinct user_key from replay_events where split_part(batch_id, ':', 1) = "
        f"'{batch_id}'",
    )
    return key


def runs(ledger: Path) -> list[tuple]:
    return query(
        ledger,
        "select options->>'allow_triggers', options->'trigger_events' from runs order by run_id",
    )


def test_events_that_trigger_messages_are_counted_refused_and_sent_only_when_allowed(
    tmp_path, monkeypatch
):
    warehouse = built(tmp_path, monkeypatch, skip_fix=False)
    ledger = tmp_path / "ledger.duckdb"
    matched = query(
        warehouse,
        "select split_part(batch_id, ':', 1) || ' ' || t.event_name, t.integration "
        "from replay_trigger_events t join replay_events using (replay_key) order by 1",
    )
    assert matched == [(name, "braze") for name in sorted(TRIGGERING)]

    dry = runner.invoke(app, ["push", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert (
        "3 events would trigger messages downstream: braze custom_event 'Order Completed' 2, "
        "braze screen_view 'Cart' 1. `loader push` refuses to send them" in dry.output
    )
    assert "customer_io can trigger messages from events (https://docs.customer.io/" in dry.output

    with running_emulator(EmulatorConfig(api_key="key", api_secret="s3cret")) as emu:
        push = ["push", "--endpoint", emu.base_url]
        # a test send counts its own users' events only: user 1 has one, user 3 none
        refused = runner.invoke(app, [*push, "--user-key", user_key(warehouse, "1")])
        assert refused.exit_code == 2, refused.output
        assert "not pushing: 1 event of this run would trigger messages" in refused.output
        assert "braze custom_event 'Order Completed' 1" in refused.output
        assert emu.accepted() == []
        assert not ledger.exists() or runs(ledger) == []  # refused before a run began

        sample = runner.invoke(app, [*push, "--user-key", user_key(warehouse, "3")])
        assert sample.exit_code == 0, sample.output
        assert "events that trigger messages (seed trigger_events): none" in sample.output
        assert names(emu.accepted()) == ["3 order completed"]

        whole = runner.invoke(app, push)
        assert whole.exit_code == 2, whole.output
        assert "not pushing: 3 events of this run would trigger messages" in whole.output
        assert "--allow-triggers" in whole.output

        allowed = runner.invoke(app, [*push, "--allow-triggers"])
        assert allowed.exit_code == 0, allowed.output
        assert "3 events trigger messages downstream and are sent (--allow-triggers)" in (
            allowed.output
        )
        accepted, stats = emu.accepted(), emu.stats()
    assert names(accepted) == sorted(
        ["1 Order Completed", "1 Viewed Page", "2 Cart", "2 Order Completed", "3 order completed"]
    )
    assert stats["accepted_events"] == 5 and stats["duplicate_batches"] == 0  # exactly once
    recorded = runs(ledger)
    assert [allow for allow, _ in recorded] == ["false", "true"]
    assert json.loads(recorded[0][1]) == []
    assert json.loads(recorded[1][1]) == [
        {
            "integration": "braze",
            "event_type": "custom_event",
            "event_name": "Order Completed",
            "events": 2,
        },
        {"integration": "braze", "event_type": "screen_view", "event_name": "Cart", "events": 1},
    ]

    # consent as sent: each batch's consent_state reaches mParticle exactly as it was
    consent = {
        b["events"][0]["data"]["custom_attributes"]["from"]: b["consent_state"] for b in accepted
    }
    assert consent == {"1": GDPR, "2": CCPA, "3": GDPR | CCPA}

    html, summary = render(warehouse, ledger)
    assert "3 replay events would trigger messages downstream" in " ".join(summary.warnings)
    assert any(w.startswith("customer_io can trigger messages") for w in summary.warnings)
    assert '<td class="">Order Completed</td>' in html and "replay_trigger_events" in html


def test_events_a_fix_skips_are_not_triggers_and_the_rest_is_sent(tmp_path, monkeypatch):
    warehouse = built(tmp_path, monkeypatch, skip_fix=True)
    assert query(warehouse, "select count(*) from replay_trigger_events") == [(0,)]
    skipped = query(
        warehouse,
        "select split_part(batch_id, ':', 1) || ' ' || coalesce(event_name, 'Cart'), skip_reason "
        "from blocked_events__outcomes where outcome = 'skipped' order by 1",
    )
    reason = "fix:fix_skip_triggers: would start Braze campaigns"
    assert skipped == [(name, reason) for name in sorted(TRIGGERING)]
    with running_emulator(EmulatorConfig(api_key="key", api_secret="s3cret")) as emu:
        pushed = runner.invoke(app, ["push", "--endpoint", emu.base_url])
        assert pushed.exit_code == 0, pushed.output
        accepted = emu.accepted()
    assert names(accepted) == ["1 Viewed Page", "3 order completed"]
    assert runs(tmp_path / "ledger.duckdb")[0][0] == "false"


def test_a_replay_set_without_replay_trigger_events_is_checked_on_its_rows(tmp_path, monkeypatch):
    """A Parquet replay set and a warehouse of an older version (no replay_trigger_events)
    are checked against the project's seeds/trigger_events.csv on their own rows; with no
    such file the events cannot be checked and the push refuses unless allowed."""
    warehouse = built(tmp_path, monkeypatch, skip_fix=False)
    monkeypatch.setenv("DBT_PROJECT_DIR", str(tmp_path / "project"))
    seed = tmp_path / "project" / "seeds" / "trigger_events.csv"
    parquet = tmp_path / "replay.parquet"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"copy (select * from replay_events) to '{parquet}' (format parquet)")
    counted = "braze custom_event 'Order Completed' 2, braze screen_view 'Cart' 1"

    dry = runner.invoke(app, ["push", "--dry-run", "--replay-set", str(parquet)])
    assert dry.exit_code == 0, dry.output
    assert f"rows were checked against {seed}" in dry.output
    assert f"3 events would trigger messages downstream: {counted}" in dry.output

    bare = tmp_path / "bare"  # a project without the seed file: nothing to check against
    bare.mkdir()
    (bare / "dbt_project.yml").write_text((tmp_path / "project" / "dbt_project.yml").read_text())
    with running_emulator(EmulatorConfig(api_key="key", api_secret="s3cret")) as emu:
        push = ["push", "--endpoint", emu.base_url]
        refused = runner.invoke(app, [*push, "--replay-set", str(parquet)])
        assert refused.exit_code == 2, refused.output
        assert "not pushing: 3 events of this run would trigger messages downstream " in (
            refused.output
        )
        monkeypatch.setenv("DBT_PROJECT_DIR", str(bare))
        unchecked = runner.invoke(app, [*push, "--replay-set", str(parquet)])
        assert unchecked.exit_code == 2, unchecked.output
        assert "not pushing: events that trigger messages cannot be checked" in unchecked.output
        assert "has no seeds/trigger_events.csv" in unchecked.output
        assert "--allow-triggers" in unchecked.output
        dry = runner.invoke(app, ["push", "--dry-run", "--replay-set", str(parquet)])
        assert dry.exit_code == 0 and "cannot be checked" in dry.output, dry.output

        monkeypatch.setenv("DBT_PROJECT_DIR", str(tmp_path / "project"))
        with duckdb.connect(str(warehouse)) as con:  # as an older version built it
            con.execute("drop table replay_trigger_events")
            con.execute("drop table trigger_events")
        old = runner.invoke(app, push)
        assert old.exit_code == 2, old.output
        assert "not pushing: 3 events of this run would trigger messages downstream" in (old.output)
        assert counted in old.output
        assert emu.accepted() == []
        assert runs(tmp_path / "ledger.duckdb") == []

        allowed = runner.invoke(app, [*push, "--allow-triggers"])
        assert allowed.exit_code == 0, allowed.output
        assert names(emu.accepted()) == sorted(
            [
                "1 Order Completed",
                "1 Viewed Page",
                "2 Cart",
                "2 Order Completed",
                "3 order completed",
            ]
        )
        assert emu.stats()["duplicate_batches"] == 0
    [(allow, sent)] = runs(tmp_path / "ledger.duckdb")
    assert allow == "true" and sum(c["events"] for c in json.loads(sent)) == 3

    html, summary = render(warehouse, tmp_path / "ledger.duckdb")
    assert "3 replay events would trigger messages downstream" in " ".join(summary.warnings)
    assert f"the replay events matching {seed}" in html


def test_an_unchecked_replay_set_is_sent_with_allow_triggers_and_the_run_says_so(
    tmp_path, monkeypatch
):
    warehouse = built(tmp_path, monkeypatch, skip_fix=False)
    parquet = tmp_path / "replay.parquet"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"copy (select * from replay_events) to '{parquet}' (format parquet)")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "dbt_project.yml").write_text((tmp_path / "project" / "dbt_project.yml").read_text())
    monkeypatch.setenv("DBT_PROJECT_DIR", str(bare))
    with running_emulator(EmulatorConfig(api_key="key", api_secret="s3cret")) as emu:
        push = ["push", "--endpoint", emu.base_url, "--replay-set", str(parquet)]
        allowed = runner.invoke(app, [*push, "--allow-triggers"])
        assert allowed.exit_code == 0, allowed.output
        assert "cannot be checked" in allowed.output
        assert "they are sent (--allow-triggers)" in allowed.output
        assert emu.stats()["accepted_events"] == 5
    assert runs(tmp_path / "ledger.duckdb") == [("true", "null")]
