"""The send ledger: its stable schema, batch life cycle, locking and status."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import duckdb
import pytest

from loader.push.ledger import (
    ACKNOWLEDGED,
    FAILED,
    LEDGER_VIEWS,
    REJECTED,
    SCHEMA_VERSION,
    Attempt,
    BatchCount,
    EventCounts,
    FailureRow,
    Ledger,
    LedgerLocked,
    LedgerVersionError,
    api_key_fingerprint,
    attach_ledger,
)
from loader.push.packing import PackedBatch

# The documented columns (README, "The send ledger"): reports and audits rely on them.
COLUMNS = {
    "runs": [
        "run_id",
        "started_at",
        "finished_at",
        "status",
        "endpoint",
        "api_key_fingerprint",
        "options",
        "message",
        "events_planned",
        "batches_planned",
        "events_resumed",
        "events_acknowledged",
        "batches_acknowledged",
        "events_failed",
        "batches_failed",
        "events_rejected",
        "batches_rejected",
        "events_already_acknowledged",
        "events_changed_skipped",
        "events_changed_resent",
        "events_rejected_before",
        "http_requests",
        "events_not_sent",
        "batches_not_sent",
        "sample_users",
        "destination",
    ],
    "batches": [
        "source_request_id",
        "run_id",
        "last_run_id",
        "user_key",
        "context_key",
        "event_count",
        "body_bytes",
        "status",
        "error",
        "attempts",
        "planned_at",
        "first_sent_at",
        "last_sent_at",
        "settled_at",
        "error_code",
        "error_reason",
        "destination",
        "batch_no",
    ],
    "batch_events": ["source_request_id", "position", "replay_key", "content_hash"],
    "requests": [
        "request_id",
        "run_id",
        "request_no",
        "attempt",
        "sent_at",
        "latency_ms",
        "status_code",
        "outcome",
        "batch_count",
        "body_bytes",
        "source_request_ids",
        "retry_after",
        "rate_limit_exceeded",
        "rate_limit_percentage_used",
        "error",
        "wait_ms",
    ],
    "acknowledged_events": [
        "replay_key",
        "content_hash",
        "source_request_id",
        "run_id",
        "acknowledged_at",
        "times_acknowledged",
        "destination",
    ],
    "event_states": [
        "replay_key",
        "state",
        "batch_status",
        "error",
        "source_request_id",
        "run_id",
        "content_hash",
        "planned_at",
        "ever_acknowledged",
        "acknowledged_hash",
        "acknowledged_at",
        "destination",
    ],
    "failed_batches": [
        "source_request_id",
        "run_id",
        "status",
        "refused_by",
        "code",
        "reason",
        "error",
        "attempts",
        "last_sent_at",
        "events",
        "destination",
    ],
    "failures": [
        "status",
        "refused_by",
        "code",
        "reason",
        "batches",
        "events",
        "example_error",
        "example_source_request_id",
    ],
    "open_batch_events": [
        "source_request_id",
        "user_key",
        "context_key",
        "was_sent",
        "position",
        "replay_key",
        "content_hash",
        "destination",
    ],
    "key_history": [
        "replay_key",
        "acknowledged_hash",
        "rejected_hash",
        "sent_then_superseded",
        "destination",
    ],
    "run_counts": [
        "run_id",
        "events_planned",
        "batches_planned",
        "events_resumed",
        "events_acknowledged",
        "batches_acknowledged",
        "events_failed",
        "batches_failed",
        "events_rejected",
        "batches_rejected",
        "http_requests",
        "last_sent_at",
    ],
    "schema_versions": ["version", "applied_at", "description"],
}


def batch(sid: str, keys: list[str], *, error: str | None = None) -> PackedBatch:
    return PackedBatch(
        sid,
        "mpid:1",
        "ctx",
        len(keys),
        "".join(k + "\n" for k in keys).encode(),
        [f"h-{k}" for k in keys],
        b'{"events":[]}',
        error,
    )


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(tmp_path / "ledger.duckdb") as opened:
        yield opened


def test_schema_is_the_documented_one(ledger):
    for table, columns in COLUMNS.items():
        found = [
            row[0]
            for row in ledger.query(
                "select column_name from duckdb_columns() where table_name = ? "
                "and database_name = current_database() order by column_index",
                [table],
            )
        ]
        if not found:  # a view
            found = [d[0] for d in ledger.con.execute(f"select * from {table} limit 0").description]
        assert found == columns, table
    assert {d[0] for d in ledger.con.execute("select * from event_batches").description} >= {
        "replay_key",
        "content_hash",
        "position",
        "status",
        "error",
    }


def test_a_batch_life_cycle(ledger):
    run = ledger.start_run("https://example.test/v2", api_key_fingerprint("key"), {"workers": 2})
    with ledger.transaction():
        ledger.add_batches(
            run, [batch("a", ["k1", "k2"]), batch("b", ["k3"]), batch("c", ["k4"], error="big")]
        )
    assert ledger.query("select source_request_id, status from batches order by 1") == [
        ("a", "planned"),
        ("b", "planned"),
        ("c", "rejected"),
    ]
    with ledger.transaction():
        ledger.mark_in_flight(["a", "b", "c"])  # a rejected batch is never sent
    with ledger.transaction():
        ledger.settle(ACKNOWLEDGED, {"a": None}, {"a": 1})
        ledger.settle(FAILED, {"b": "gave up"}, {"b": 9})
        ledger.record_attempts(
            run,
            [
                Attempt(1, 1, datetime.now(UTC), 12, 202, "accepted", ["a"], 100),
                Attempt(1, 1, datetime.now(UTC), None, None, "timeout", ["b"], 50, error="t/o"),
            ],
        )
    rows = ledger.query(
        "select source_request_id, status, error, attempts, first_sent_at is not null, "
        "settled_at is not null from batches order by 1"
    )
    assert rows == [
        ("a", "acknowledged", None, 1, True, True),
        ("b", "failed", "gave up", 9, True, False),
        ("c", "rejected", "big", 0, False, True),
    ]
    assert ledger.query("select replay_key, content_hash from acknowledged_events order by 1") == [
        ("k1", "h-k1"),
        ("k2", "h-k2"),
    ]
    ledger.finish_run(run, "completed_with_failures", {"events_acknowledged": 2})
    assert ledger.event_counts() == EventCounts(acknowledged=2, pending=0, failed=1, rejected=1)
    assert ledger.failures() == [
        FailureRow("rejected", "loader", "other", "big", 1, 1, "big", "c"),
        FailureRow("failed", None, "other", "gave up", 1, 1, "gave up", "b"),
    ]
    assert ledger.failures(run_id=run) == ledger.failures()
    assert ledger.failures(run_id=run + 1) == []
    assert ledger.batch_counts() == {
        "acknowledged": BatchCount(1, 2),
        "failed": BatchCount(1, 1),
        "rejected": BatchCount(1, 1),
    }
    [row] = ledger.runs()
    assert (row.run_id, row.status, row.events_acknowledged) == (
        run,
        "completed_with_failures",
        2,
    )
    assert ledger.query("select count(*), max(status_code) from requests") == [(2, 202)]


def test_stale_running_runs_are_marked_interrupted(ledger):
    ledger.start_run("e", "", {})
    assert ledger.close_stale_runs() == 1
    assert ledger.query("select status from runs") == [("interrupted",)]


def test_the_key_is_only_fingerprinted():
    fingerprint = api_key_fingerprint("us1-0123456789abcdef")
    assert fingerprint.startswith("sha256:") and "0123456789abcdef" not in fingerprint
    assert api_key_fingerprint(None) == ""


def test_a_second_writer_is_told_who_holds_the_ledger(tmp_path):
    path = tmp_path / "ledger.duckdb"
    Ledger.open(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from loader.push.ledger import Ledger; "
            "ledger = Ledger.open(Path(sys.argv[1])); print('ready', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(LedgerLocked, match=f"in use by process {holder.pid}"):
            Ledger.open(path)
        # a reader is told where the running push's progress is
        with pytest.raises(
            LedgerLocked, match=rf"a push is running \(process {holder.pid} \(python -c\)\)"
        ):
            Ledger.open(path, read_only=True)
    finally:
        holder.kill()
        holder.wait()


def test_reading_a_missing_ledger_gives_an_empty_one(tmp_path):
    with Ledger.open(tmp_path / "none.duckdb", read_only=True) as ledger:
        assert ledger.runs() == []
        assert ledger.event_counts() == EventCounts()
        assert ledger.failures() == []
    assert not (tmp_path / "none.duckdb").exists()


def test_the_ledger_is_a_plain_duckdb_file_anyone_can_query(tmp_path):
    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        run = ledger.start_run("e", "", {})
        with ledger.transaction():
            ledger.add_batches(run, [batch("a", ["k1"])])
            ledger.settle(REJECTED, {"a": "HTTP 400: bad"}, {})
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select status, error from event_batches").fetchall() == [
            ("rejected", "HTTP 400: bad")
        ]


def test_a_batch_planned_again_with_a_recorded_id_is_revived(ledger):
    """Content changed (the batch was superseded), then changed back: the same id again."""
    run = ledger.start_run("e", "", {})
    with ledger.transaction():
        ledger.add_batches(run, [batch("a", ["k1", "k2"])])
        ledger.supersede(["a"], "content changed before it was acknowledged")
    later = ledger.start_run("e", "", {})
    with ledger.transaction():
        ledger.add_batches(later, [batch("a", ["k1", "k2"]), batch("b", ["k3"])])
    assert ledger.query(
        "select source_request_id, status, error, run_id, last_run_id from batches order by 1"
    ) == [("a", "planned", None, run, later), ("b", "planned", None, later, later)]
    assert ledger.query("select count(*) from batch_events") == [(3,)]


NEW_VIEWS = (
    "open_batch_events",
    "key_history",
    "event_states",
    "failed_batches",
    "failures",
)


def old_ledger(path) -> None:
    """A ledger file as an earlier version wrote it: the same tables, fewer views."""
    with Ledger.open(path) as ledger:
        run = ledger.start_run("e", "", {})
        with ledger.transaction():
            ledger.add_batches(run, [batch("a", ["k1", "k2"]), batch("b", ["k3"])])
            ledger.mark_in_flight(["a", "b"])
            ledger.settle(ACKNOWLEDGED, {"a": None}, {"a": 1})
            ledger.settle(REJECTED, {"b": "HTTP 400: bad"}, {"b": 1})
        ledger.finish_run(run, "completed_with_failures", {})
        for view in reversed(NEW_VIEWS):
            ledger.con.execute(f"drop view {view}")


def test_a_ledger_written_before_the_views_reads_the_same(tmp_path):
    path = tmp_path / "ledger.duckdb"
    old_ledger(path)
    before = path.read_bytes()
    with Ledger.open(path, read_only=True) as ledger:
        assert ledger.event_counts() == EventCounts(acknowledged=2, rejected=1)
        assert ledger.failures() == [
            FailureRow("rejected", "mparticle", "other", "bad", 1, 1, "HTTP 400: bad", "b")
        ]
        assert [run.status for run in ledger.runs()] == ["completed_with_failures"]
    con = duckdb.connect(":memory:")
    attach_ledger(con, path, "ledger")
    assert con.execute(
        "select state, count(*) from ledger.event_states group by 1 order by 1"
    ).fetchall() == [("acknowledged", 2), ("rejected", 1)]
    assert con.execute("select count(*) from ledger.batches").fetchall() == [(2,)]
    con.close()
    assert path.read_bytes() == before, "reading does not write"
    with Ledger.open(path) as ledger:  # the next push adds the views to the file
        [(views,)] = ledger.query(
            "select count(*) from duckdb_views() where database_name = current_database() "
            "and list_contains(?, view_name)",
            [list(NEW_VIEWS)],
        )
        assert views == len(NEW_VIEWS)


def oversized(n_bytes: int) -> str:
    return (
        f"event is {n_bytes} bytes; with its batch context the batch would be {n_bytes + 90} "
        "bytes, over the 131072-byte (128 KB) batch limit"
    )


def test_reasons_group_by_code_and_keep_every_message(ledger):
    run = ledger.start_run("e", "", {})
    sizes = [140_001, 150_002, 160_003]
    with ledger.transaction():
        big = [batch(f"b{n}", [f"k{n}"], error=oversized(n)) for n in sizes]
        ledger.add_batches(run, [*big, batch("s", ["k"])])
        ledger.mark_in_flight(["s"])
        ledger.settle(REJECTED, {"s": 'HTTP 400: batch 0, event 0: unknown event field "x"'}, {})
    assert ledger.failures() == [
        FailureRow(
            "rejected",
            "loader",
            "event_too_big",
            "an event is too big for a batch even alone",
            3,
            3,
            oversized(140_001),
            "b140001",
        ),
        FailureRow(
            "rejected",
            "mparticle",
            "unknown_field",
            "a field the Events API does not know",
            1,
            1,
            'HTTP 400: batch 0, event 0: unknown event field "x"',
            "s",
        ),
    ]
    assert [f.side for f in ledger.failures()] == [
        "refused locally before sending",
        "refused by mParticle (HTTP 400)",
    ]
    details = ledger.query("select error from batches where error_code = 'event_too_big'")
    assert sorted(row[0] for row in details) == [oversized(n) for n in sizes]


def as_written_before_schema_versions(ledger: Ledger) -> None:
    """Make `ledger` look like one written before the ledger had a schema version and
    error codes (the columns those releases added later dropped too)."""
    for view in reversed(LEDGER_VIEWS):
        ledger.con.execute(f"drop view {view}")
    ledger.con.execute("drop table schema_versions")
    ledger.con.execute("alter table batches drop column destination")
    ledger.con.execute("alter table batches drop column batch_no")
    ledger.con.execute("alter table batches drop column error_code")
    ledger.con.execute("alter table batches drop column error_reason")
    ledger.con.execute("alter table runs drop column events_not_sent")
    ledger.con.execute("alter table runs drop column destination")


def test_a_ledger_written_before_the_codes_gets_them(tmp_path):
    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        run = ledger.start_run("e", "", {})
        with ledger.transaction():
            ledger.add_batches(run, [batch(f"b{n}", [f"k{n}"], error=oversized(n)) for n in (1, 2)])
        as_written_before_schema_versions(ledger)
    before = path.read_bytes()
    with Ledger.open(path, read_only=True) as ledger:
        [failure] = ledger.failures()
        assert (failure.code, failure.batches, failure.refused_by) == ("event_too_big", 2, "loader")
        assert ledger.query("select events_not_sent, destination from runs") == [(0, "events_api")]
    assert path.read_bytes() == before, "reading does not write"
    with Ledger.open(path) as ledger:  # the next push adds the columns and fills them
        assert ledger.query("select distinct error_code, error_reason from batches") == [
            ("event_too_big", "an event is too big for a batch even alone")
        ]
        assert [(f.code, f.batches) for f in ledger.failures()] == [("event_too_big", 2)]
        assert ledger.query("select version from schema_versions order by 1") == [
            (version,) for version in range(1, SCHEMA_VERSION + 1)
        ]


def test_a_ledger_of_a_later_release_is_refused(tmp_path):
    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        ledger.con.execute(
            "insert into schema_versions values (?, now(), 'from the future')",
            [SCHEMA_VERSION + 1],
        )
    before = path.read_bytes()
    for read_only in (False, True):
        with pytest.raises(LedgerVersionError, match=f"schema version {SCHEMA_VERSION + 1}"):
            Ledger.open(path, read_only=read_only)
    assert path.read_bytes() == before


def test_a_migration_that_fails_leaves_the_ledger_as_it_was(tmp_path, monkeypatch):
    """Each migration is one transaction: a crash in one is done again whole next time."""
    from loader.push.ledger import schema

    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        run = ledger.start_run("e", "", {})
        with ledger.transaction():
            ledger.add_batches(run, [batch("a", ["k1"], error=oversized(1))])
        as_written_before_schema_versions(ledger)

    def crash(con):
        raise RuntimeError("killed mid-migration")

    broken = schema.MIGRATIONS[0].__class__(1, "crashes", "001_unversioned.sql", after=crash)
    monkeypatch.setattr(schema, "MIGRATIONS", (broken, *schema.MIGRATIONS[1:]))
    with pytest.raises(RuntimeError, match="killed mid-migration"):
        Ledger.open(path)
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("select table_name from duckdb_tables()").fetchall()
        assert ("schema_versions",) not in tables
    monkeypatch.undo()
    with Ledger.open(path) as ledger:
        assert ledger.query("select error_code, destination from batches") == [
            ("event_too_big", "events_api")
        ]
