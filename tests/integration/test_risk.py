"""Identity risk classes and blocked user attributes, on real dbt builds."""

from __future__ import annotations

import shutil

import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from tests.conftest import query, run_dbt
from tests.quarantine import write_file

DAY_MS = 86_400_000
NOW_MS = 1_764_000_000_000
T0 = NOW_MS - 3 * DAY_MS


def batch(
    batch_id: str,
    *,
    mpid=None,
    identities=None,
    device=None,
    user_attributes=None,
    blocked_user_attributes=(),
    batch_ms=T0,
    events=2,
) -> dict:
    """A quarantine batch whose events are all blocked."""
    event_ids = [f"{batch_id}{i}" for i in range(events)]
    body = {
        "batch_id": batch_id,
        "environment": "production",
        "timestamp_unixtime_ms": str(batch_ms),
        "user_identities": identities or {},
        "device_info": device or {},
        "user_attributes": user_attributes or {},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_id": event_id,
                    "event_name": "Promo Click",
                    "custom_event_type": "navigation",
                    "timestamp_unixtime_ms": str(batch_ms - 1000 + i),
                },
            }
            for i, event_id in enumerate(event_ids)
        ],
        "context": {
            "data_plan": {
                "plan_id": "shop_plan",
                "plan_version": 3,
                "block_metadata": {
                    "dto_version": 1,
                    "blocked_event_ids": event_ids,
                    "blocked_user_attributes": list(blocked_user_attributes),
                },
            }
        },
    }
    if mpid is not None:
        body["mpid"] = mpid
    return body


BATCHES = [
    # an MPID: low risk, whatever else it carries
    batch("100", mpid="8000000000000000001", device={"ios_idfv": "v1"}),
    # no MPID, a customer_id: low risk
    batch("200", identities={"customer_id": "C2"}, device={"android_uuid": "u2"}),
    # email only (a login identity by default)
    batch("300", identities={"email": "e3@example.com"}, events=1),
    # a social id and a device id, no login identity: high risk
    batch("400", identities={"facebook": "fb4", "email": ""}, device={"ios_idfv": "v4"}),
    # a device id only: high risk, 3 events
    batch("500", device={"android_advertising_id": "a5"}, events=3),
    # nothing at all: high risk
    batch("600", events=1),
    # user attributes: the same MPID user in three batches, the newest value wins
    batch(
        "701",
        mpid="7",
        user_attributes={"tier": "silver", "age": 40, "city": "Oslo"},
        blocked_user_attributes=["tier", "age", "absent"],
        batch_ms=T0 - DAY_MS,
    ),
    batch(
        "702",
        mpid="7",
        user_attributes={"tier": "gold", "nick": None},
        blocked_user_attributes=["tier", "nick"],
        batch_ms=T0,
        events=3,
    ),
    batch(
        "703",
        mpid="7",
        device={"ios_idfv": "other-device"},  # another context: packs separately
        user_attributes={"tier": "bronze"},
        blocked_user_attributes=["tier"],
        batch_ms=T0 - 2 * DAY_MS,
        events=1,
    ),
    # blocked user attributes but every event too old to replay: nothing carries them
    batch(
        "801",
        mpid="8",
        user_attributes={"tier": "gold"},
        blocked_user_attributes=["tier"],
        batch_ms=NOW_MS - 45 * DAY_MS,
        events=1,
    ),
]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict:
    """One ingest, then two dbt builds: default vars, and both safety options on."""
    tmp = tmp_path_factory.mktemp("risk")
    default = tmp / "default" / "backfill.duckdb"
    default.parent.mkdir()
    write_file(tmp / "q/App_1.txt", BATCHES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKFILL_DUCKDB", str(default))
        result = CliRunner().invoke(app, ["ingest", str(tmp / "q")])
    assert result.exit_code == 0, result.output
    opted = tmp / "opted" / "backfill.duckdb"
    opted.parent.mkdir()
    shutil.copy(default, opted)
    run_dbt(default, "build", dbt_vars={"replay_reference_time_ms": NOW_MS})
    run_dbt(
        opted,
        "build",
        dbt_vars={
            "replay_reference_time_ms": NOW_MS,
            "exclude_high_risk_users": True,
            "replay_blocked_user_attributes": True,
        },
    )
    return {"default": default, "opted": opted}


def classes_by_batch(warehouse) -> dict[str, tuple]:
    rows = query(
        warehouse,
        "select batch_key, identity_class, identity_risk, login_identity_types, device_id_types "
        "from int_batches__replay_context",
    )
    return {batch_key: tuple(rest) for batch_key, *rest in rows}


def test_each_batch_gets_its_identity_class(builds):
    classes = classes_by_batch(builds["default"])
    assert classes["100"] == ("mpid", "low", [], ["ios_idfv"])
    assert classes["200"] == ("login_identity", "low", ["customer_id"], ["android_uuid"])
    assert classes["300"] == ("login_identity", "low", ["email"], [])
    # an empty email is no login identity; a facebook id is not one either
    assert classes["400"] == ("device_ids_only", "high", [], ["ios_idfv"])
    assert classes["500"] == ("device_ids_only", "high", [], ["android_advertising_id"])
    assert classes["600"] == ("no_identity", "high", [], [])


def test_risk_summary_counts_users_and_events_per_class(builds):
    rows = query(
        builds["default"],
        "select identity_class, identity_risk, users, users_to_replay, events_affected, "
        "events_to_replay, events_excluded_for_risk from replay_summary__risk order by sort_order",
    )
    assert rows == [
        # users 100, 7 (batches 701-703) and 8 (all events too old)
        ("mpid", "low", 3, 2, 2 + 2 + 3 + 1 + 1, 2 + 2 + 3 + 1, 0),
        ("login_identity", "low", 2, 2, 3, 3, 0),
        ("device_ids_only", "high", 2, 2, 5, 5, 0),
        ("no_identity", "high", 1, 1, 1, 1, 0),
    ]


def test_replay_events_carry_identity_risk(builds):
    rows = query(
        builds["default"],
        "select batch_id, any_value(identity_risk) from replay_events group by 1 order by 1",
    )
    risk = dict(rows)
    assert risk["100"] == "low" and risk["500"] == "high" and risk["600"] == "high"


def test_excluding_high_risk_users_skips_them_with_a_reason(builds):
    opted = builds["opted"]
    assert query(opted, "select count(*) from replay_events where identity_risk = 'high'") == [(0,)]
    skipped = query(
        opted,
        "select split_part(replay_key, ':', 1) as batch, count(*) from blocked_events__outcomes "
        "where skip_reason = 'high_identity_risk' group by 1 order by 1",
    )
    assert skipped == [("400", 2), ("500", 3), ("600", 1)]
    assert query(
        opted,
        "select identity_class, events_to_replay, events_excluded_for_risk "
        "from replay_summary__risk where identity_risk = 'high' order by sort_order",
    ) == [("device_ids_only", 0, 5), ("no_identity", 0, 1)]
    # the default build replays them
    assert query(
        builds["default"],
        "select count(*) from blocked_events__outcomes where skip_reason = 'high_identity_risk'",
    ) == [(0,)]


def test_blocked_user_attributes_are_off_by_default(builds):
    contexts = query(builds["default"], "select batch_context::varchar from replay_events")
    assert all("user_attributes" not in orjson.loads(text) for (text,) in contexts)
    assert query(
        builds["default"],
        "select will_send, not_sent_reason from replay_user_attributes where user_key = 'mpid:7'",
    ) == [(False, "var replay_blocked_user_attributes is false")]


def test_latest_blocked_value_rides_with_every_event_of_the_user(builds):
    opted = builds["opted"]
    rows = query(
        opted,
        "select batch_id, batch_context::varchar, context_key from replay_events "
        "where user_key = 'mpid:7' order by replay_key",
    )
    assert len(rows) == 2 + 3 + 1
    for _, context, _ in rows:
        # tier: gold from the newest batch (702); age from 701 (only there); absent and
        # JSON-null values are not sent; allowed attributes (city) were delivered already
        assert orjson.loads(context)["user_attributes"] == {"age": 40, "tier": "gold"}
    same_context = {key for batch_id, _, key in rows if batch_id in ("701", "702")}
    assert len(same_context) == 1, "one user, one context: the events pack together"
    assert {key for batch_id, _, key in rows if batch_id == "703"} != same_context
    # users without blocked attributes get none
    [(context,)] = query(
        opted, "select any_value(batch_context::varchar) from replay_events where batch_id = '100'"
    )
    assert "user_attributes" not in orjson.loads(context)


def test_user_attribute_report_warns_and_names_users_left_out(builds):
    rows = query(
        builds["opted"],
        "select user_key, attribute_names, will_send, not_sent_reason, warning "
        "from replay_user_attributes order by user_key",
    )
    assert [row[:4] for row in rows] == [
        ("mpid:7", ["age", "tier"], True, None),
        ("mpid:8", ["tier"], False, "no event of this user is replayed to carry them"),
    ]
    assert "may be newer" in rows[0][4] and "age, tier" in rows[0][4]
