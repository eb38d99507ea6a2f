"""The send plan's classification: a ledger built with its own methods, a small replay set."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from loader.push.ledger import ACKNOWLEDGED, REJECTED, Ledger
from loader.push.packing import PackedBatch
from loader.push.send_plan import SCRATCH, planning_session

NOW_MS = 1_700_000_000_000
DAY_MS = 86_400_000
# replay key -> event name now in the replay set
REPLAY = {
    "k-new": "a",
    "k-resume": "b",
    "k-ack": "c",
    "k-changed": "d",
    "k-doubt": "e",
    "k-rejected": "f",
}


def build_warehouse(path: Path) -> dict[str, str]:
    """replay_events with one event per key; returns each key's content hash."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            """create table replay_events as
            select
                key as replay_key,
                'mpid:1' as user_key,
                'ctx' as context_key,
                'custom_event' as event_type,
                (? - 20 * ? + position * 1000)::bigint as timestamp_unixtime_ms,
                json_object('event_type', 'custom_event', 'data', json_object('event_name', name))
                    as event_json,
                '{"environment":"development"}'::json as batch_context,
                null::varchar as data_plan_note,
                'low' as identity_risk,
            from (select unnest(?) as key, unnest(?) as name, generate_subscripts(?, 1) as position)
            """,
            [NOW_MS, DAY_MS, list(REPLAY), list(REPLAY.values()), list(REPLAY)],
        )
        rows = con.execute(
            "select replay_key, md5(batch_context::varchar || chr(10) || event_json::varchar) "
            "from replay_events"
        ).fetchall()
    return dict(rows)


def batch(sid: str, key: str, content_hash: str) -> PackedBatch:
    return PackedBatch(sid, "mpid:1", "ctx", 1, f"{key}\n".encode(), [content_hash], b"{}", None)


@pytest.fixture
def ledger_and_warehouse(tmp_path) -> tuple[Ledger, Path]:
    warehouse = tmp_path / "backfill.duckdb"
    hashes = build_warehouse(warehouse)
    ledger = Ledger.open(tmp_path / "ledger.duckdb")
    run = ledger.start_run("e", "", {})
    with ledger.transaction():
        ledger.add_batches(
            run,
            [
                batch("s-resume", "k-resume", hashes["k-resume"]),  # planned, never sent
                batch("s-ack", "k-ack", hashes["k-ack"]),
                batch("s-changed", "k-changed", "hash-of-older-content"),
                batch("s-doubt", "k-doubt", "hash-of-older-content"),
                batch("s-rejected", "k-rejected", hashes["k-rejected"]),
            ],
        )
        ledger.mark_in_flight(["s-ack", "s-changed", "s-doubt", "s-rejected"])
        ledger.settle(ACKNOWLEDGED, {"s-ack": None, "s-changed": None}, {})
        ledger.settle(REJECTED, {"s-rejected": "HTTP 400: bad"}, {})
        # s-doubt stays in flight: sent, never answered, and its content changed since
    yield ledger, warehouse
    ledger.close()


def test_each_replay_event_gets_its_class(ledger_and_warehouse):
    ledger, warehouse = ledger_and_warehouse
    with planning_session(ledger, warehouse, resend_changed=False, at_ms=NOW_MS) as planner:
        summary = planner.classify()
        dispositions = dict(
            ledger.con.execute(
                f"select replay_key, disposition from {SCRATCH}.disposition"
            ).fetchall()
        )
        assert planner.resumed_batches() == {"s-resume": 1}  # its number in the ledger
        assert planner.superseded_batches() == ["s-doubt"]
        new_keys = [
            key
            for group in planner.new_groups(with_hashes=True)
            for key in group.keys.decode().split()
        ]
    assert dispositions == {
        "k-resume": "resume",
        "k-ack": "acknowledged",
        "k-changed": "changed",
        "k-doubt": "in_doubt",
        "k-rejected": "rejected_before",
    }  # k-new is in no batch: not in the ledger, so new
    assert new_keys == ["k-new"]
    assert (
        summary.replay_events,
        summary.new,
        summary.resumed,
        summary.resumed_batches,
        summary.acknowledged_before,
        summary.changed,
        summary.in_doubt,
        summary.rejected_before,
        summary.superseded_batches,
        summary.to_send,
    ) == (6, 1, 1, 1, 1, 1, 1, 1, 1, 2)
    assert summary.changed_examples == ["k-changed", "k-doubt"]
    assert (summary.warn_age_days, summary.max_age_days) == (None, None)  # no settings table


def test_resend_changed_sends_changed_and_in_doubt_events(ledger_and_warehouse):
    ledger, warehouse = ledger_and_warehouse
    with planning_session(ledger, warehouse, resend_changed=True, at_ms=NOW_MS) as planner:
        summary = planner.classify()
        new_keys = sorted(
            key
            for group in planner.new_groups(with_hashes=True)
            for key in group.keys.decode().split()
        )
    assert new_keys == ["k-changed", "k-doubt", "k-new"]
    assert (summary.to_send, summary.new, summary.resumed) == (4, 3, 1)


def test_age_limits_come_from_the_build_settings(ledger_and_warehouse):
    ledger, warehouse = ledger_and_warehouse
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "create table replay_build_settings as "
            "select 14 as warn_event_age_days, 30 as max_event_age_days"
        )
    with planning_session(ledger, warehouse, resend_changed=False, at_ms=NOW_MS) as planner:
        summary = planner.classify()
    assert (summary.warn_age_days, summary.max_age_days) == (14, 30)
    # the two events sent (new, resumed) are 20 days old
    assert (summary.older_than_warn_days, summary.older_than_max_days) == (2, 0)
    assert summary.oldest_event_days == 20.0
