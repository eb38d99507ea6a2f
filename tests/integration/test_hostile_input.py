"""Odd and hostile quarantine input through `loader ingest` and a real `dbt build`: every
blocked event ends up replayed or skipped with a reason, and the build names what it met."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from loader.cli import app
from tests.conftest import query, run_dbt

DAY_MS = 86_400_000
REFERENCE_MS = 1_795_600_000_000  # the build's reference time (2026-11-24)
RECENT_MS = REFERENCE_MS - 2 * DAY_MS


def event(event_id: str, timestamp, name: str = "Purchase") -> dict:
    return {
        "event_type": "custom_event",
        "data": {
            "event_name": name,
            "custom_event_type": "transaction",
            "event_id": event_id,
            "timestamp_unixtime_ms": timestamp,
        },
    }


def batch(batch_id: str, events: list, blocked: list[str], **fields) -> dict:
    return {
        "batch_id": batch_id,
        "environment": "production",
        "user_identities": {"customer_id": f"C{batch_id}"},
        "events": events,
        "context": {
            "data_plan": {"block_metadata": {"dto_version": 1, "blocked_event_ids": blocked}}
        },
        **fields,
    }


def line(value: dict) -> str:
    """One NDJSON line, compact (as DuckDB's json() writes it)."""
    return json.dumps(value, separators=(",", ":"))


REDELIVERED_FIRST = line(batch("900", [event("4000", str(RECENT_MS))], ["4000"]))
REDELIVERED_OTHER = line(
    batch("900", [event("4001", str(RECENT_MS)), event("4002", str(RECENT_MS))], ["4001", "4002"])
)
OTHER_CONTENT_KEY = "900~" + hashlib.md5(REDELIVERED_OTHER.encode()).hexdigest()[:12]

INVALID_MPIDS = {
    "501": '"123456789012345678901234567890"',
    "502": "18446744073709551615",  # a JSON number, above the int64 range
    "503": '"not-a-number"',
}


def invalid_mpid_line(batch_id: str, mpid_json: str) -> str:
    fields = {} if batch_id == "503" else {"user_identities": {}}
    text = line(
        batch(
            batch_id,
            [event(f"{batch_id}1", str(RECENT_MS))],
            [f"{batch_id}1"],
            mpid="MPID",
            **fields,
        )
    )
    return text.replace('"MPID"', mpid_json)


TIMESTAMPS = {
    "7001": '"1795576967792.5"',
    "7002": "1.7955769677927e12",  # a JSON number in exponent notation
    "7003": '"1.7955769677927e12"',
    "7004": '"253402300799999"',  # 9999-12-31
    "7005": '"9223372036854775807"',
    "7006": '"-9223372036854775808"',
    "7007": f'"{REFERENCE_MS + 3_600_000}"',  # an hour ahead: a clock's skew, replayed
    "7008": f'"{REFERENCE_MS + 2 * DAY_MS}"',
}


def timestamps_line() -> str:
    text = line(batch("700", [event(i, f"TS{i}") for i in TIMESTAMPS], list(TIMESTAMPS)))
    for event_id, value in TIMESTAMPS.items():
        text = text.replace(f'"TS{event_id}"', value)
    return text


DUPLICATE_IDS_LINE = line(
    batch(
        "800",
        [
            event("8000", str(RECENT_MS), "First"),
            event("8001", str(RECENT_MS), "Other"),
            event("8000", str(RECENT_MS + 1), "Second"),
            event("8000", str(RECENT_MS + 2), "Third"),
        ],
        ["8000", "8001"],
    )
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Ingest the odd lines (first.txt, second.txt) and run one dbt build."""
    folder = tmp_path_factory.mktemp("hostile")
    warehouse = folder / "backfill.duckdb"
    first = folder / "q" / "first.txt"
    second = folder / "q" / "second.txt"
    first.parent.mkdir()
    first.write_text(
        "\n".join(
            [
                REDELIVERED_FIRST,
                *(invalid_mpid_line(b, m) for b, m in INVALID_MPIDS.items()),
                timestamps_line(),
                DUPLICATE_IDS_LINE,
            ]
        )
        + "\n"
    )
    second.write_text(f"{REDELIVERED_OTHER}\n{REDELIVERED_FIRST}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKFILL_DUCKDB", str(warehouse))
        result = CliRunner().invoke(app, ["ingest", str(first), str(second)])
    assert result.exit_code == 0, result.output
    build = run_dbt(
        warehouse, "build", dbt_vars={"replay_reference_time_ms": REFERENCE_MS}, check=False
    )
    return warehouse, build, first, second


def outcomes(warehouse, batch_ids) -> dict[str, str]:
    return dict(
        query(
            warehouse,
            "select replay_key, coalesce(skip_reason, outcome) from blocked_events__outcomes "
            "where split_part(batch_id, '~', 1) in (select unnest(?))",
            [list(batch_ids)],
        )
    )


def test_the_hostile_build_passes(hostile):
    _, build, _, _ = hostile
    assert build.returncode == 0, build.stdout


def test_redelivered_batch_id_with_other_content_keeps_every_event(hostile):
    warehouse, build, first, second = hostile
    assert outcomes(warehouse, ["900"]) == {
        "900:4000": "replay",
        f"{OTHER_CONTENT_KEY}:4001": "replay",
        f"{OTHER_CONTENT_KEY}:4002": "replay",
    }
    assert query(
        warehouse,
        "select replay_key, batch_id, event_id, source_file, line_number from replay_events "
        "where event_id in ('4000', '4001', '4002') order by event_id",
    ) == [
        ("900:4000", "900", "4000", str(first), 1),
        (f"{OTHER_CONTENT_KEY}:4001", OTHER_CONTENT_KEY, "4001", str(second), 1),
        (f"{OTHER_CONTENT_KEY}:4002", OTHER_CONTENT_KEY, "4002", str(second), 1),
    ]
    # the identical redelivery (second.txt line 2) still counts once
    assert query(
        warehouse,
        "select batch_key, batch_id, delivery_count from stg_quarantine__batches "
        "where batch_id = '900' order by batch_key",
    ) == [("900", "900", 2), (OTHER_CONTENT_KEY, "900", 1)]
    assert "WARN 1 warn_batch_id_delivered_with_different_content" in build.stdout
    assert (
        f"batch_id 900: {first} line 1 and {second} line 1 differ in content; "
        f"each is replayed as its own batch ({OTHER_CONTENT_KEY})" in build.stdout
    )


def test_an_mpid_that_is_not_an_int64_is_skipped_and_not_classed_as_mpid(hostile):
    warehouse, _, _, _ = hostile
    assert outcomes(warehouse, INVALID_MPIDS) == {
        "501:5011": "invalid_mpid",
        "502:5021": "invalid_mpid",
        "503:5031": "invalid_mpid",
    }
    assert query(
        warehouse,
        "select batch_key, mpid, invalid_mpid, identity_class from int_batches__replay_context "
        "where batch_key in ('501', '502', '503') order by 1",
    ) == [
        ("501", None, "123456789012345678901234567890", "no_identity"),
        ("502", None, "18446744073709551615", "no_identity"),
        ("503", None, "not-a-number", "login_identity"),
    ]


def test_fractional_out_of_range_and_future_timestamps_are_skipped_with_reasons(hostile):
    warehouse, _, _, _ = hostile
    assert outcomes(warehouse, ["700"]) == {
        "700:7001": "missing_or_invalid_timestamp",
        "700:7002": "missing_or_invalid_timestamp",
        "700:7003": "missing_or_invalid_timestamp",
        "700:7004": "timestamp_in_future",
        "700:7005": "missing_or_invalid_timestamp",
        "700:7006": "missing_or_invalid_timestamp",
        "700:7007": "replay",
        "700:7008": "timestamp_in_future",
    }
    assert query(
        warehouse, "select timestamp_unixtime_ms from replay_events where batch_id = '700'"
    ) == [(REFERENCE_MS + 3_600_000,)]


def test_a_duplicate_event_id_in_a_batch_gets_its_own_key_and_a_warning(hostile):
    warehouse, build, first, _ = hostile
    assert query(
        warehouse,
        "select replay_key, event_name, timestamp_unixtime_ms from replay_events "
        "where batch_id = '800' order by replay_key",
    ) == [
        ("800:8000", "First", RECENT_MS),
        ("800:8000#3", "Second", RECENT_MS + 1),
        ("800:8000#4", "Third", RECENT_MS + 2),
        ("800:8001", "Other", RECENT_MS),
    ]
    assert "WARN 1 warn_duplicate_event_ids_in_a_batch" in build.stdout
    assert (
        f"event_id 8000 appears 3 times in batch 800 ({first} line 6): "
        "the repeats are keyed 800:8000#3, 800:8000#4" in build.stdout
    )


def test_nothing_is_left_without_an_outcome(hostile):
    warehouse, _, _, _ = hostile
    [(events, outcomes_count)] = query(
        warehouse,
        "select (select count(*) from stg_quarantine__events), "
        "(select count(*) from blocked_events__outcomes)",
    )
    assert events == outcomes_count == 1 + 2 + 3 + len(TIMESTAMPS) + 4
    assert "ERROR=0 SKIP=0" in hostile[1].stdout
