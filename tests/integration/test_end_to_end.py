"""The whole path: ingest, dbt build, push to the emulator through faults, then the
emulator's record equals the replay set event by event."""

import time

import duckdb
import orjson
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.ingest.samples import generate
from tests.conftest import run_dbt
from tests.demo import DEMO_FIXES

KEY, SECRET = "e2e-key", "e2e-secret-3f9a77"


def test_emulator_receives_exactly_the_replay_set(tmp_path, warehouse):
    now_ms = int(time.time() * 1000)
    generate(tmp_path / "q", 1500, seed=11, days=3, now_ms=now_ms)
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(tmp_path / "q")]).exit_code == 0
    run_dbt(warehouse, "build", dbt_vars={**DEMO_FIXES, "replay_reference_time_ms": now_ms})

    record = tmp_path / "emulator.duckdb"
    faults = EmulatorConfig(
        api_key=KEY,
        api_secret=SECRET,
        db_path=record,
        share_429=0.1,
        share_503=0.1,
        share_drop=0.1,
        retry_after_s=0,
        seed=3,
    )
    with running_emulator(faults) as emulator:
        pushed = runner.invoke(
            app,
            ["push", "--endpoint", emulator.base_url, "--json", "--max-retries", "20"],
            env={"MPARTICLE_API_KEY": KEY, "MPARTICLE_API_SECRET": SECRET},
        )
    assert pushed.exit_code == 0, pushed.output
    assert SECRET not in pushed.output

    with duckdb.connect(str(warehouse), read_only=True) as con:
        expected = {
            key: (event, context)
            for key, event, context in con.execute(
                "select replay_key, event_json::varchar, batch_context::varchar from replay_events"
            ).fetchall()
        }
        con.execute(f"attach '{tmp_path / 'ledger.duckdb'}' as ledger (read_only)")
        con.execute(f"attach '{record}' as emulator (read_only)")
        received = con.execute(
            """
            select b.replay_key, e.event_json::varchar, r.batch_json::varchar
            from emulator.received_events e
            join emulator.received_batches r using (source_request_id)
            join ledger.batch_events b
                on b.source_request_id = e.source_request_id and b.position = e.event_index
            """
        ).fetchall()
        [(unmapped,)] = con.execute(
            "select count(*) from emulator.received_events e anti join ledger.batch_events b "
            "on b.source_request_id = e.source_request_id and b.position = e.event_index"
        ).fetchall()

    assert len(expected) > 100
    assert unmapped == 0
    assert sorted(key for key, _, _ in received) == sorted(expected)  # each exactly once
    for key, event_json, batch_json in received:
        event, context = expected[key]
        assert orjson.loads(event_json) == orjson.loads(event)
        assert event_json == event  # byte for byte, so 64-bit values are exact
        batch = orjson.loads(batch_json)
        assert "source_request_id" in batch
        del batch["events"], batch["source_request_id"]
        assert batch == orjson.loads(context)
