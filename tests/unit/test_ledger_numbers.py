"""Batch numbers: the send loop addresses the batches it records by number and id, so each
of its statements reads only the part of `batches` that holds them, whatever the ledger's
size; a ledger written before numbers gets them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb

from loader.push.ledger import ACKNOWLEDGED, FAILED, SCHEMA_VERSION, Ledger
from loader.push.outbox import Outbox
from loader.push.packing import PackedBatch

ROW_GROUP = 122_880  # DuckDB's rows a row group


def batch(sid: str, key: str) -> PackedBatch:
    return PackedBatch(sid, "mpid:1", "ctx", 1, f"{key}\n".encode(), [f"h-{key}"], b"{}")


def row_groups_read(ledger: Ledger, tmp_path: Path, statement: Callable[[], None]) -> list[int]:
    """[read, in the table] row groups of `batches` for `statement` (its query profile)."""
    profile = tmp_path / "profile.json"
    ledger.con.execute("pragma enable_profiling = 'json'")
    ledger.con.execute(f"pragma profiling_output = '{profile}'")
    try:
        statement()
    finally:
        ledger.con.execute("pragma disable_profiling")

    def scans(node: dict) -> list[dict]:
        own = [node] if node.get("extra_info", {}).get("Table", "").endswith(".batches") else []
        return own + [scan for child in node.get("children", []) for scan in scans(child)]

    [scan] = [scan for node in json.loads(profile.read_text())["operator"] for scan in scans(node)]
    return [scan["row_groups_scanned"], scan["total_row_groups_to_scan"]]


def test_batches_are_numbered_in_the_order_recorded_across_runs_and_reopening(tmp_path):
    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        run = ledger.start_run("e", "", {})
        first, second = batch("a", "k1"), batch("b", "k2")
        assert ledger.number(first) == 1 and first.batch_no == 1
        with ledger.transaction():  # numbered before (the outbox), or when recorded
            ledger.add_batches(run, [first, second, batch("c", "k3")])
        assert second.batch_no == 2
    with Ledger.open(path) as ledger:
        later = ledger.start_run("e", "", {})
        with ledger.transaction():
            ledger.add_batches(later, [batch("d", "k4")])
        assert ledger.query("select source_request_id, batch_no from batches order by 1") == [
            ("a", 1),
            ("b", 2),
            ("c", 3),
            ("d", 4),
        ]


def test_a_batch_planned_again_takes_the_number_its_outbox_entry_carries(tmp_path):
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        run = ledger.start_run("e", "", {})
        with ledger.transaction():
            ledger.add_batches(run, [batch("a", "k1"), batch("b", "k2")])
            ledger.supersede(["a"], "content changed before it was acknowledged")
        again = batch("a", "k1")
        ledger.number(again)
        with ledger.transaction():
            ledger.add_batches(ledger.start_run("e", "", {}), [again])
            ledger.mark_in_flight(["a"], {"a": again.batch_no})
        assert ledger.query(
            "select source_request_id, batch_no, status from batches order by 1"
        ) == [("a", 3, "in_flight"), ("b", 2, "planned")]


def test_a_turn_reads_only_the_row_groups_of_its_numbers(tmp_path):
    """The send loop's statements by number read the row group that holds those batches
    (of 3 here, of 41 in a ledger of 5M batches); by id alone they read every one."""
    total = 3 * ROW_GROUP
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        run = ledger.start_run("e", "", {})
        # numbered in the order recorded, as add_batches records them; ids in no order
        # (a permutation of the numbers, as UUIDs are)
        ledger.con.execute(
            "insert into batches (source_request_id, run_id, last_run_id, user_key, "
            "context_key, event_count, body_bytes, status, planned_at, destination, batch_no) "
            "select (i * 2654435761 % 4294967296)::varchar, $run, $run, 'mpid:1', 'ctx', 1, 2, "
            "'planned', now(), 'events_api', i + 1 from range($total) t(i)",
            {"run": run, "total": total},
        )
        turn = dict(
            ledger.query(
                "select source_request_id, batch_no from batches where batch_no between ? and ?",
                [ROW_GROUP + 1, ROW_GROUP + 800],
            )
        )
        ids = list(turn)

        def in_flight() -> None:
            with ledger.transaction():
                ledger.mark_in_flight(ids, turn)

        def settled_by_id() -> None:
            with ledger.transaction():
                ledger.settle(ACKNOWLEDGED, dict.fromkeys(ids[:400]), dict.fromkeys(ids, 1))

        def settled_by_number() -> None:
            with ledger.transaction():
                ledger.settle(FAILED, dict.fromkeys(ids[400:], "HTTP 503"), {}, turn)

        assert row_groups_read(ledger, tmp_path, in_flight) == [1, 3]
        assert row_groups_read(ledger, tmp_path, settled_by_id) == [3, 3]
        assert row_groups_read(ledger, tmp_path, settled_by_number) == [1, 3]
        assert ledger.query(
            "select status, count(*), min(batch_no), max(batch_no), sum(attempts) "
            "from batches group by status order by status"
        ) == [
            ("acknowledged", 400, ROW_GROUP + 1, ROW_GROUP + 400, 400),
            ("failed", 400, ROW_GROUP + 401, ROW_GROUP + 800, 0),
            ("planned", total - 800, 1, total, 0),
        ]


def test_numbers_missing_for_some_batches_fall_back_to_their_ids(tmp_path):
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        run = ledger.start_run("e", "", {})
        with ledger.transaction():
            ledger.add_batches(run, [batch("a", "k1"), batch("b", "k2")])
            ledger.mark_in_flight(["a", "b"], {"a": 1})  # b's number not given
        assert ledger.query("select distinct status from batches") == [("in_flight",)]


def test_the_outbox_carries_each_batch_number(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    numbered = batch("00000000-0000-5000-8000-000000000001", "k1")
    numbered.batch_no = 2**40 + 3
    outbox.add([numbered, batch("00000000-0000-5000-8000-000000000002", "k2")])
    [[first, second]] = list(outbox.read())
    assert (first.batch_no, second.batch_no) == (2**40 + 3, None)


def test_a_ledger_written_before_numbers_gets_them_in_the_order_of_its_rows(tmp_path):
    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        run = ledger.start_run("e", "", {})
        with ledger.transaction():
            ledger.add_batches(run, [batch(sid, f"k-{sid}") for sid in ("z", "m", "a")])
    with duckdb.connect(str(path)) as con:  # as the release before numbers left it
        con.execute("alter table batches drop column batch_no")
        con.execute("delete from schema_versions where version = 3")
    with Ledger.open(path, read_only=True) as ledger:  # read-only: numbered in memory
        assert ledger.query("select source_request_id, batch_no from batches") == [
            ("z", 1),
            ("m", 2),
            ("a", 3),
        ]
    with duckdb.connect(str(path), read_only=True) as con:
        assert "batch_no" not in [row[0] for row in con.execute("describe batches").fetchall()]
    with Ledger.open(path) as ledger:
        assert ledger.query("select max(version) from schema_versions") == [(SCHEMA_VERSION,)]
        assert ledger.query("select source_request_id, batch_no from batches order by 2") == [
            ("z", 1),
            ("m", 2),
            ("a", 3),
        ]
        with ledger.transaction():
            ledger.add_batches(ledger.start_run("e", "", {}), [batch("b", "k-b")])
        assert ledger.query("select batch_no from batches where source_request_id = 'b'") == [(4,)]
