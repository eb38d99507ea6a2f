"""Blocked user and device identities: each one replayed with its batch's events or
skipped with a reason (blocked_identities__outcomes), on a real dbt build."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from loader.audit.report import render
from loader.cli import app
from tests.conftest import query, run_dbt
from tests.integration.test_risk import NOW_MS, batch
from tests.quarantine import write_file


def blocking_identities(body: dict, users: list[str], devices: list[str], events=True) -> dict:
    metadata = body["context"]["data_plan"]["block_metadata"]
    metadata["blocked_user_identities"] = users
    metadata["blocked_device_identities"] = devices
    if not events:  # the events were allowed: only identities were blocked
        metadata["blocked_event_ids"] = []
    return body


BATCHES = [
    # a blocked event: its identities go with it, the blocked ones too
    blocking_identities(
        batch(
            "910",
            identities={"customer_id": "C910", "email": "e910@example.com"},
            device={"ios_advertising_id": "idfa-910"},
        ),
        ["customer_id", "other"],  # no value for other
        ["ios_advertising_id"],
    ),
    # only identities blocked: no event to carry them
    blocking_identities(
        batch("920", identities={"email": "e920@example.com", "other": ""}),
        ["email", "other"],  # an empty value is none
        [],
        events=False,
    ),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("identities")
    warehouse = tmp / "backfill.duckdb"
    write_file(tmp / "q/App_1.txt", BATCHES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKFILL_DUCKDB", str(warehouse))
        result = CliRunner().invoke(app, ["ingest", str(tmp / "q")])
    assert result.exit_code == 0, result.output
    run_dbt(warehouse, "build", dbt_vars={"replay_reference_time_ms": NOW_MS})
    return warehouse


def test_every_blocked_identity_has_an_outcome(built):
    rows = query(
        built,
        "select batch_id, identity_kind, identity_type, outcome, skip_reason, replay_events "
        "from blocked_identities__outcomes order by all",
    )
    assert rows == [
        ("910", "device", "ios_advertising_id", "replay", None, 2),
        ("910", "user", "customer_id", "replay", None, 2),
        ("910", "user", "other", "skipped", "no_value_in_batch", 2),
        ("920", "user", "email", "skipped", "no_event_of_the_batch_replayed", 0),
        ("920", "user", "other", "skipped", "no_value_in_batch", 0),
    ]


def test_a_replayed_identity_is_in_each_replay_batch_of_its_batch(built):
    rows = query(
        built,
        "select batch_context->>'$.user_identities.customer_id', "
        "batch_context->>'$.device_info.ios_advertising_id' from replay_events "
        "where batch_id = '910'",
    )
    assert rows == [("C910", "idfa-910")] * 2


def test_the_report_shows_blocked_identities(built):
    html, summary = render(built)
    assert "blocked-identities" in summary.sections
    assert "2 blocked identities go with their batches' replay events" in html
    assert "1 not sent: no event of its batch is replayed" in html
