"""A ledger written by the loader of commit 86fd2f9 (no schema version, Amplitude's events
under `amplitude:<replay_key>`, a killed run) is migrated, read and resumed: each
destination's open batches go out again exactly once, what was acknowledged never again.

The fixture and how it was made: tests/fixtures/README.md. The same sample (same seed,
users and `now_ms`) is built here, so today's replay sets hold the old runs' events."""

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
from loader.emulator.amplitude import AmplitudeEmulatorConfig, running_amplitude_emulator
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.ingest.samples import generate
from loader.push.ledger import SCHEMA_VERSION, Ledger
from tests.conftest import query, run_dbt
from tests.demo import DEMO_FIXES

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "ledger_86fd2f9.duckdb.gz"
NOW_MS = 1795996800000  # 2026-11-30T00:00:00Z, the fixture's sample and build time
API_KEY, API_SECRET = "fixture-key", "fixture-secret"
AMPLITUDE_KEY = "fixture-amplitude-key"
runner = CliRunner()


@dataclass
class OldBatch:
    destination: str
    status: str
    keys: list[str]  # as the old release recorded them (Amplitude's with the prefix)


def read_old(path: Path) -> dict[str, OldBatch]:
    """Every batch of the fixture, read with plain DuckDB before today's code touches it."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select b.source_request_id, r.destination, b.status, "
            "list(e.replay_key order by e.position) "
            "from batches b join runs r using (run_id) "
            "join batch_events e using (source_request_id) group by all"
        ).fetchall()
    return {sid: OldBatch(dest, status, keys) for sid, dest, status, keys in rows}


def open_batches(old: dict[str, OldBatch], destination: str, statuses: set[str]) -> set[str]:
    return {sid for sid, b in old.items() if b.destination == destination and b.status in statuses}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ledger_86fd2f9")
    warehouse = tmp / "backfill.duckdb"
    generate(tmp / "q", 2000, seed=11, users=2000, now_ms=NOW_MS)
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(warehouse)})
    assert result.exit_code == 0, result.output
    run_dbt(
        warehouse,
        "build",
        dbt_vars={
            **DEMO_FIXES,  # the fixes that release applied by default
            "replay_reference_time_ms": NOW_MS,
            "direct_destinations": ["amplitude"],
            # that release synced user properties (Amplitude's flag came later)
            "amplitude_skip_user_properties_sync": False,
        },
    )
    return warehouse


@pytest.fixture
def old_ledger(built, tmp_path, monkeypatch) -> Path:
    """The fixture ledger unzipped, a copy of the build, and the credentials of then."""
    warehouse = tmp_path / "backfill.duckdb"
    shutil.copy(built, warehouse)
    ledger = tmp_path / "ledger.duckdb"
    with gzip.open(FIXTURE) as packed, ledger.open("wb") as unpacked:
        shutil.copyfileobj(packed, unpacked)
    for name, value in {
        "BACKFILL_DUCKDB": str(warehouse),
        "BACKFILL_LEDGER": str(ledger),
        "MPARTICLE_API_KEY": API_KEY,
        "MPARTICLE_API_SECRET": API_SECRET,
        "AMPLITUDE_API_KEY": AMPLITUDE_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    return ledger


def test_the_fixture_is_the_ledger_its_readme_describes(old_ledger):
    old = read_old(old_ledger)
    by = {}
    for b in old.values():
        counts = by.setdefault((b.destination, b.status), [0, 0])
        counts[0] += 1
        counts[1] += len(b.keys)
    assert by == {
        ("amplitude", "acknowledged"): [258, 258],
        ("amplitude", "superseded"): [100, 100],
        ("events_api", "acknowledged"): [100, 156],
        ("events_api", "failed"): [100, 175],
        ("events_api", "in_flight"): [17, 27],
    }
    amplitude_keys = [k for b in old.values() if b.destination == "amplitude" for k in b.keys]
    assert all(k.startswith("amplitude:") for k in amplitude_keys)
    assert query(old_ledger, "select run_id, status from runs order by 1") == [
        (1, "completed_with_failures"),
        (2, "stopped"),
        (3, "running"),
    ]


def test_status_and_report_read_it_without_writing(old_ledger, tmp_path):
    before = old_ledger.read_bytes()
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = orjson.loads(result.stdout)
    # the Events API: run 3 was killed with its batches failed or in flight (pending)
    assert status["events"] == {"acknowledged": 156, "pending": 27, "failed": 175, "rejected": 0}
    assert status["replay_set"]["resumed"] == 202
    # Amplitude's 100 batches run 2 superseded (another destination's push) are open again
    amplitude = status["destinations"]["amplitude"]
    assert amplitude["events"] == {"acknowledged": 258, "pending": 0, "failed": 100, "rejected": 0}
    assert amplitude["replay_set"]["resumed"] == 100
    assert amplitude["replay_set"]["to_send"] == 100
    assert [r["destination"] for r in status["runs"]] == ["amplitude", "events_api", "events_api"]

    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "After the push" in html and "amplitude (a direct destination)" in html
    assert old_ledger.read_bytes() == before, "reading does not write"


def test_a_push_migrates_it_once(old_ledger):
    old = read_old(old_ledger)
    with Ledger.open(old_ledger) as ledger:
        assert ledger.query("select version from schema_versions order by 1") == [
            (v,) for v in range(1, SCHEMA_VERSION + 1)
        ]
        keys = dict(
            ledger.query(
                "select source_request_id, list(replay_key order by position) "
                "from batch_events group by 1"
            )
        )
        destinations = dict(ledger.query("select source_request_id, destination from batches"))
        statuses = dict(ledger.query("select source_request_id, status from batches"))
    for sid, b in old.items():
        assert destinations[sid] == b.destination
        prefix = "amplitude:" if b.destination == "amplitude" else ""
        assert [prefix + k for k in keys[sid]] == b.keys
        expected = "failed" if b.status == "superseded" else b.status
        assert statuses[sid] == expected
    with Ledger.open(old_ledger) as ledger:  # a second open changes nothing
        assert ledger.query("select count(*) from schema_versions") == [(SCHEMA_VERSION,)]
        assert dict(ledger.query("select source_request_id, status from batches")) == statuses


def test_both_destinations_resume_and_every_event_is_acknowledged_once(old_ledger):
    old = read_old(old_ledger)
    warehouse = Path(str(old_ledger.parent / "backfill.duckdb"))
    events_api_open = open_batches(old, "events_api", {"failed", "in_flight"})
    amplitude_open = open_batches(old, "amplitude", {"superseded"})
    amplitude_acknowledged = {
        k.removeprefix("amplitude:")
        for b in old.values()
        if b.status == "acknowledged" and b.destination == "amplitude"
        for k in b.keys
    }

    endpoints = dict(query(old_ledger, "select destination, endpoint from runs"))
    port = urlsplit(endpoints["events_api"]).port
    config = EmulatorConfig(api_key=API_KEY, api_secret=API_SECRET, port=port)
    with running_emulator(config) as emu:
        assert emu.base_url == endpoints["events_api"]
        result = runner.invoke(app, ["push", "--json", "--endpoint", emu.base_url])
        assert result.exit_code == 0, result.output
        accepted_ids = emu.accepted_source_request_ids()
        accepted_events = sum(len(batch["events"]) for batch in emu.accepted())
    report = orjson.loads(result.stdout)
    assert report["status"] == "completed"
    assert report["plan"]["resumed_batches"] == len(events_api_open)
    assert accepted_ids == events_api_open  # the open batches under their ids, no other
    assert accepted_events == 202

    port = urlsplit(endpoints["amplitude"]).port
    with running_amplitude_emulator(AmplitudeEmulatorConfig(AMPLITUDE_KEY, port=port)) as emu:
        assert emu.url == endpoints["amplitude"]
        result = runner.invoke(
            app, ["push", "--json", "--destination", "amplitude", "--endpoint", emu.url]
        )
        assert result.exit_code == 0, result.output
        insert_ids = [event["insert_id"] for event in emu.accepted]
    report = orjson.loads(result.stdout)
    assert report["status"] == "completed"
    assert report["plan"]["resumed_batches"] == len(amplitude_open)
    key_of = dict(query(warehouse, "select insert_id, replay_key from amplitude_events"))
    sent = [key_of[i] for i in insert_ids]
    assert len(sent) == len(set(sent)) == 100
    assert {"amplitude:" + k for k in sent} == {k for sid in amplitude_open for k in old[sid].keys}
    assert not set(sent) & amplitude_acknowledged

    # each destination acknowledged every replay event of its replay set, once
    replay_keys = {row[0] for row in query(warehouse, "select replay_key from replay_events")}
    amplitude_keys = set(key_of.values())
    acknowledged = query(
        old_ledger,
        "select destination, replay_key, times_acknowledged from acknowledged_events",
    )
    assert {k for d, k, _ in acknowledged if d == "events_api"} == replay_keys
    assert {k for d, k, _ in acknowledged if d == "amplitude"} == amplitude_keys
    assert {times for _, _, times in acknowledged} == {1}
    for destination in ("events_api", "amplitude"):
        result = runner.invoke(app, ["push", "--json", "--dry-run", "--destination", destination])
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout)["planned"]["events"] == 0

    # status and the report read the migrated file
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = orjson.loads(result.stdout)
    assert status["events"]["acknowledged"] == len(replay_keys)
    assert status["destinations"]["amplitude"]["events"]["acknowledged"] == len(amplitude_keys)
    assert [r["status"] for r in status["runs"]] == [
        "completed_with_failures",
        "stopped",
        "interrupted",
        "completed",
        "completed",
    ]
    out = old_ledger.parent / "report.html"
    result = runner.invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"amplitude (a direct destination): {len(amplitude_keys)} events" in out.read_text()
    # the killed run 3 got its counters from what the ledger recorded of it (run_counts)
    assert query(
        old_ledger,
        "select events_planned, events_resumed, events_failed, batches_failed, "
        "events_acknowledged from runs where run_id = 3",
    ) == [(202, 202, 175, 100, 0)]
