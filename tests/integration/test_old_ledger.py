"""A ledger written by the loader of commit 5e1ae65 still resumes: its failed batches go out
again with their recorded ids, what it acknowledged is never sent again.

The fixture and how it was made: tests/fixtures/README.md. The same sample (same seed,
users and `now_ms`) is generated here, so today's replay set holds the old run's events."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.ingest.samples import generate
from tests.conftest import query, run_dbt
from tests.demo import DEMO_FIXES

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "ledger_5e1ae65.duckdb.gz"
NOW_MS = 1795996800000  # 2026-11-30T00:00:00Z, the fixture's sample and build time
API_KEY, API_SECRET = "fixture-key", "fixture-secret"
runner = CliRunner()


@dataclass
class OldLedger:
    """What the fixture recorded, read before today's code touches it."""

    acknowledged_ids: set[str]
    open_ids: set[str]
    acknowledged_keys: set[str]
    keys_by_batch: dict[str, list[str]]


def read_old(path: Path) -> OldLedger:
    with duckdb.connect(str(path), read_only=True) as con:
        statuses = dict(
            con.execute("select source_request_id, status from batches where run_id = 1").fetchall()
        )
        keys_by_batch = dict(
            con.execute(
                "select source_request_id, list(replay_key order by position) "
                "from batch_events group by 1"
            ).fetchall()
        )
    acknowledged = {sid for sid, status in statuses.items() if status == "acknowledged"}
    return OldLedger(
        acknowledged_ids=acknowledged,
        open_ids=set(statuses) - acknowledged,
        acknowledged_keys={key for sid in acknowledged for key in keys_by_batch[sid]},
        keys_by_batch=keys_by_batch,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Today's build of the fixture's sample, plus quarantine output that arrived after the
    old run (events the old ledger never saw)."""
    tmp = tmp_path_factory.mktemp("old_ledger")
    warehouse = tmp / "backfill.duckdb"
    generate(tmp / "q" / "old", 2000, seed=11, users=2000, now_ms=NOW_MS)
    generate(tmp / "q" / "new", 300, seed=12, users=300, now_ms=NOW_MS)
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(warehouse)})
    assert result.exit_code == 0, result.output
    run_dbt(warehouse, "build", dbt_vars={**DEMO_FIXES, "replay_reference_time_ms": NOW_MS})
    return warehouse


@pytest.fixture
def warehouse(built, tmp_path, monkeypatch) -> Path:
    path = tmp_path / "backfill.duckdb"
    shutil.copy(built, path)
    monkeypatch.setenv("BACKFILL_DUCKDB", str(path))
    return path


@pytest.fixture
def old_ledger(warehouse, tmp_path, monkeypatch) -> Path:
    """The fixture ledger, unzipped into tmp, with the credentials it was written with."""
    ledger = tmp_path / "ledger.duckdb"
    monkeypatch.setenv("BACKFILL_LEDGER", str(ledger))
    monkeypatch.setenv("MPARTICLE_API_KEY", API_KEY)
    monkeypatch.setenv("MPARTICLE_API_SECRET", API_SECRET)
    with gzip.open(FIXTURE) as packed, ledger.open("wb") as unpacked:
        shutil.copyfileobj(packed, unpacked)
    return ledger


def replay_keys_by_event(warehouse: Path) -> dict[bytes, str]:
    """Each replay event's JSON (keys sorted) -> its replay_key; every event is distinct."""
    rows = query(warehouse, "select replay_key, event_json::varchar from replay_events")
    by_event = {
        orjson.dumps(orjson.loads(event), option=orjson.OPT_SORT_KEYS): key for key, event in rows
    }
    assert len(by_event) == len(rows)
    return by_event


def test_the_fixture_is_the_ledger_its_readme_describes(old_ledger):
    old = read_old(old_ledger)
    assert len(old.acknowledged_ids) == 100 and len(old.open_ids) == 117
    assert len(old.acknowledged_keys) == 156
    assert sum(len(old.keys_by_batch[sid]) for sid in old.open_ids) == 202


def test_status_and_report_read_the_old_ledger(old_ledger, tmp_path):
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = orjson.loads(result.stdout)
    assert status["events"] == {"acknowledged": 156, "pending": 0, "failed": 202, "rejected": 0}
    assert status["batches"] == {
        "acknowledged": {"batches": 100, "events": 156},
        "failed": {"batches": 117, "events": 202},
    }
    assert [(f["batches"], f["events"]) for f in status["failures"]] == [(100, 174), (17, 28)]
    assert [(r["run_id"], r["status"]) for r in status["runs"]] == [(1, "stopped")]

    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<html" in html and "stopped" in html


def test_the_old_ledger_resumes_and_every_event_is_acknowledged_once(old_ledger, warehouse):
    old = read_old(old_ledger)
    by_event = replay_keys_by_event(warehouse)
    replay_keys = set(by_event.values())
    old_keys = {key for keys in old.keys_by_batch.values() for key in keys}
    assert old_keys < replay_keys  # today's build holds the old run's events, and new ones

    # a ledger resumes against the destination it recorded: the emulator's old port
    [(endpoint,)] = query(old_ledger, "select endpoint from runs")
    config = EmulatorConfig(api_key=API_KEY, api_secret=API_SECRET, port=urlsplit(endpoint).port)
    with running_emulator(config) as emu:
        assert emu.base_url == endpoint
        result = runner.invoke(app, ["push", "--json", "--endpoint", emu.base_url])
        assert result.exit_code == 0, result.output
        report = orjson.loads(result.stdout)
        accepted = emu.accepted()
        accepted_ids = emu.accepted_source_request_ids()
    assert report["status"] == "completed"
    assert report["plan"]["resumed_batches"] == len(old.open_ids)

    [(new_run,)] = query(old_ledger, "select max(run_id) from runs")
    assert new_run == 2
    new_planned = {
        row[0]
        for row in query(old_ledger, "select source_request_id from batches where run_id = 2")
    }
    acknowledged_now = {
        row[0]
        for row in query(
            old_ledger,
            "select source_request_id from batches "
            "where status = 'acknowledged' and last_run_id = 2",
        )
    }
    assert new_planned and not new_planned & (old.acknowledged_ids | old.open_ids)
    # the old open batches went out again under their recorded ids, plus the new ones
    assert acknowledged_now == old.open_ids | new_planned
    assert accepted_ids == old.open_ids | new_planned

    # what each batch carried, read from the emulator's record, not from the ledger
    sent_keys: dict[str, list[str]] = {}
    for batch in accepted:
        events = [orjson.dumps(event, option=orjson.OPT_SORT_KEYS) for event in batch["events"]]
        sent_keys[batch["source_request_id"]] = [by_event[event] for event in events]
    for sid in old.open_ids:
        assert sent_keys[sid] == old.keys_by_batch[sid]  # same events, same order
    sent = [key for keys in sent_keys.values() for key in keys]
    assert not set(sent) & old.acknowledged_keys  # nothing acknowledged before goes again
    assert len(sent) == len(set(sent))
    assert set(sent) | old.acknowledged_keys == replay_keys

    # the ledger agrees: every replay event acknowledged exactly once, old ones by run 1
    acknowledged = query(
        old_ledger, "select replay_key, times_acknowledged, run_id from acknowledged_events"
    )
    assert {key for key, _, _ in acknowledged} == replay_keys
    assert {times for _, times, _ in acknowledged} == {1}
    assert {key for key, _, run in acknowledged if run == 1} == old.acknowledged_keys

    # and a further push finds nothing left to send
    result = runner.invoke(app, ["push", "--json", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["planned"]["events"] == 0
