"""Blocked user and device identities, on real dbt builds: sent in their own batch's replay
batches (var replay_blocked_identities, true by default), which the emulator receives, or
left out and skipped with a reason (false); every one has an outcome in
blocked_identities__outcomes."""

from __future__ import annotations

import shutil
import time

import orjson
import pytest
from typer.testing import CliRunner

from loader.audit.report import render
from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from tests.conftest import query, run_dbt
from tests.integration.test_risk import batch
from tests.quarantine import write_file

SECRET = "identities-secret-5d1c"
NOW_MS = int(time.time() * 1000)
BATCH_MS = NOW_MS - 86_400_000  # a day old: within every age limit
BIG_ID = "9007199254740993"  # 2**53 + 1: a float would make it ...992
BIG_MPID = "8000000000000000001"
VAR_OFF = "var replay_blocked_identities is false"

# the identities of mParticle's example quarantine batch (its customer_id made a big
# number), and the 18 of them its block metadata lists; ios_advertising_id is blocked too
EXAMPLE_IDENTITIES = {
    "customer_id": BIG_ID,
    "email": "helpers@mparticle.com",
    **{t: "helpers@mparticle.com" for t in ("facebook", "twitter", "google", "microsoft")},
    "other": "helpers@mparticle.com",
    **{f"other_id_{n}": f"helpers{n}@example.com" for n in range(2, 11)},
    "mobile_number": "800-555-1111",
    "phone_number_2": "800-555-2222",
    "phone_number_3": "800-555-3333",
}
EXAMPLE_BLOCKED = sorted(set(EXAMPLE_IDENTITIES) - {"email"})
EXAMPLE_DEVICE = {"ios_advertising_id": "613ff528-afd1-4c1b-9628-e6ed25ece9c0", "push_token": "t1"}


def blocking_identities(body: dict, users: list[str], devices: list[str], events=True) -> dict:
    metadata = body["context"]["data_plan"]["block_metadata"]
    metadata["blocked_user_identities"] = users
    metadata["blocked_device_identities"] = devices
    if not events:  # the events were allowed: only identities were blocked
        metadata["blocked_event_ids"] = []
    return body


BATCHES = [
    # mParticle's example: 18 user identities and 1 device identity blocked, 2 events
    blocking_identities(
        batch("910", identities=EXAMPLE_IDENTITIES, device=EXAMPLE_DEVICE, batch_ms=BATCH_MS),
        EXAMPLE_BLOCKED,
        ["ios_advertising_id"],
    ),
    # only identities blocked: no event to carry them
    blocking_identities(
        batch("920", identities={"email": "e920@example.com", "other": ""}, batch_ms=BATCH_MS),
        ["email", "other"],  # an empty value is none
        [],
        events=False,
    ),
    # an MPID above 2^53, one event; a blocked id that looks like a number
    blocking_identities(
        batch(
            "930",
            mpid=BIG_MPID,
            identities={"other_id_2": BIG_ID, "email": "e930@example.com"},
            batch_ms=BATCH_MS,
            events=1,
        ),
        ["other_id_2"],
        [],
    ),
    # its only login identity is blocked: without it, only a device id finds the user
    blocking_identities(
        batch(
            "940",
            identities={"customer_id": "C940"},
            device={"android_uuid": "u940"},
            batch_ms=BATCH_MS,
            events=1,
        ),
        ["customer_id"],
        [],
    ),
]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("identities")
    warehouse = tmp / "ingested.duckdb"
    write_file(tmp / "q/App_1.txt", BATCHES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKFILL_DUCKDB", str(warehouse))
        result = CliRunner().invoke(app, ["ingest", str(tmp / "q")])
    assert result.exit_code == 0, result.output
    return warehouse


def build(ingested, name: str, **dbt_vars):
    folder = ingested.parent / name
    folder.mkdir()
    warehouse = folder / "backfill.duckdb"
    shutil.copy(ingested, warehouse)
    run_dbt(warehouse, "build", dbt_vars=dbt_vars or None)
    return warehouse


@pytest.fixture(scope="module")
def built_off(ingested):
    return build(ingested, "off", replay_blocked_identities=False)


@pytest.fixture(scope="module")
def built_on(ingested):
    """The default build: no vars."""
    return build(ingested, "on")


def outcomes(warehouse) -> list[tuple]:
    return query(
        warehouse,
        "select batch_id, identity_kind, identity_type, outcome, skip_reason, replay_events "
        "from blocked_identities__outcomes order by all",
    )


def contexts(warehouse) -> dict[str, dict]:
    rows = query(warehouse, "select distinct batch_id, batch_context::varchar from replay_events")
    assert len(rows) == len({batch_id for batch_id, _ in rows})  # one context a batch
    return {batch_id: orjson.loads(text) for batch_id, text in rows}


def expected_outcomes(outcome: str, reason: str | None) -> list[tuple]:
    return sorted(
        [("910", "user", t, outcome, reason, 2) for t in EXAMPLE_BLOCKED]
        + [
            ("910", "device", "ios_advertising_id", outcome, reason, 2),
            ("920", "user", "email", "skipped", "no_event_of_the_batch_replayed", 0),
            ("920", "user", "other", "skipped", "no_value_in_batch", 0),
            ("930", "user", "other_id_2", outcome, reason, 1),
            ("940", "user", "customer_id", outcome, reason, 1),
        ]
    )


def test_off_every_blocked_identity_is_skipped_with_a_reason(built_off):
    assert len(EXAMPLE_BLOCKED) == 18
    assert outcomes(built_off) == expected_outcomes("skipped", VAR_OFF)


def test_off_the_replay_batches_go_without_the_blocked_identities(built_off):
    sent = contexts(built_off)
    assert sent["910"]["user_identities"] == {"email": "helpers@mparticle.com"}
    assert sent["910"]["device_info"] == {"push_token": "t1"}
    assert sent["930"]["user_identities"] == {"email": "e930@example.com"}
    assert sent["940"]["user_identities"] == {}


def test_the_identity_risk_is_that_of_what_is_sent(built_off, built_on):
    sql = "select batch_key, identity_class from int_batches__replay_context order by 1"
    off, on = dict(query(built_off, sql)), dict(query(built_on, sql))
    assert off["940"] == "device_ids_only" and on["940"] == "login_identity"
    assert off["910"] == on["910"] == "login_identity"  # email was not blocked
    # the user key reads every identity, so a user is the same user either way
    keys = "select batch_key, user_key from int_batches__replay_context order by 1"
    assert query(built_off, keys) == query(built_on, keys)


def test_on_each_blocked_identity_rides_in_its_own_batch(built_on):
    assert outcomes(built_on) == expected_outcomes("replay", None)
    sent = contexts(built_on)
    assert sent["910"]["user_identities"] == EXAMPLE_IDENTITIES
    assert sent["910"]["device_info"] == EXAMPLE_DEVICE
    assert sent["930"]["user_identities"] == {"other_id_2": BIG_ID, "email": "e930@example.com"}
    assert sent["940"]["user_identities"] == {"customer_id": "C940"}
    assert "920" not in sent  # nothing to carry its identities
    [(mpid, user_key, text)] = query(
        built_on,
        "select mpid, user_key, batch_context::varchar from replay_events where batch_id = '930'",
    )
    assert (mpid, user_key) == (BIG_MPID, f"mpid:{BIG_MPID}")  # exact text
    assert f'"mpid":{BIG_MPID}' in text and f'"other_id_2":"{BIG_ID}"' in text


def push_env(warehouse, tmp_path, monkeypatch) -> None:
    copy = tmp_path / "backfill.duckdb"
    shutil.copy(warehouse, copy)
    monkeypatch.setenv("BACKFILL_DUCKDB", str(copy))
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    monkeypatch.setenv("MPARTICLE_API_SECRET", SECRET)


def test_on_the_emulator_receives_the_identities_once(built_on, tmp_path, monkeypatch):
    push_env(built_on, tmp_path, monkeypatch)
    with running_emulator(EmulatorConfig(api_key="key", api_secret=SECRET)) as emu:
        result = CliRunner().invoke(app, ["push", "--endpoint", emu.base_url])
        assert result.exit_code == 0, result.output
        accepted = emu.accepted()
    events_by_batch: dict[str, int] = {}
    for sent in accepted:
        ids = sent.get("user_identities", {})
        if ids.get("customer_id") == BIG_ID:
            assert ids == EXAMPLE_IDENTITIES
            assert sent["device_info"] == EXAMPLE_DEVICE
            events_by_batch["910"] = events_by_batch.get("910", 0) + len(sent["events"])
        if ids.get("other_id_2") == BIG_ID:
            assert sent["mpid"] == int(BIG_MPID)
            events_by_batch["930"] = events_by_batch.get("930", 0) + len(sent["events"])
    # every event of those batches arrived once, with the identities
    assert events_by_batch == {"910": 2, "930": 1}
    assert sum(len(sent["events"]) for sent in accepted) == 4


def dry_run(warehouse, tmp_path, monkeypatch) -> str:
    push_env(warehouse, tmp_path, monkeypatch)
    result = CliRunner().invoke(app, ["push", "--dry-run", "--endpoint", "http://127.0.0.1:9/v2"])
    assert result.exit_code == 0, result.output
    return " ".join(result.stderr.split())


def test_on_the_dry_run_warns_with_the_count_and_the_risk(built_on, tmp_path, monkeypatch):
    said = dry_run(built_on, tmp_path, monkeypatch)
    assert (
        "warning: 21 blocked user and device identities go in the batches of 4 events "
        "(var replay_blocked_identities)" in said
    )
    assert "may create a new profile (an extra MTU)" in said


def test_off_the_dry_run_says_nothing_of_them(built_off, tmp_path, monkeypatch):
    assert "blocked user and device identities" not in dry_run(built_off, tmp_path, monkeypatch)


def test_the_report_shows_them_and_their_risk(built_off, built_on):
    html, summary = render(built_off)
    assert "blocked-identities" in summary.sections
    assert "21 blocked identities are left out of their batches' replay events" in html
    assert "1 not sent: no event of its batch is replayed" in html
    html, summary = render(built_on)
    assert "21 blocked identities go with their batches' replay events" in html
    assert any("21 blocked user and device identities are sent" in w for w in summary.warnings)
