"""`--rate` holds from a run's first request: measured where the requests arrive, at a
real Events API emulator on 127.0.0.1."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from tests.integration.test_push import synthetic_replay_set

SECRET = "rate-secret-7a2d"
RATE = 10.0
TOLERANCE_S = 0.05  # clock reads on either side of the loopback


def arrivals(db: Path) -> list[tuple[float, int]]:
    """(arrival in epoch seconds, batches) of every request the emulator received, in order."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "select received_at, n_batches from received_requests order by received_at"
        ).fetchall()
    return [(at.timestamp() if isinstance(at, datetime) else float(at), n) for at, n in rows]


def test_the_rate_holds_from_the_first_request_of_every_run(tmp_path, monkeypatch):
    warehouse = tmp_path / "many.duckdb"
    synthetic_replay_set(warehouse, 30)  # 30 batches: 3 s at 10 batches/s
    monkeypatch.setenv("BACKFILL_DUCKDB", str(warehouse))
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    monkeypatch.setenv("MPARTICLE_API_SECRET", SECRET)
    config = EmulatorConfig(api_key="key", api_secret=SECRET, db_path=tmp_path / "emu.duckdb")
    with running_emulator(config) as emu:
        result = CliRunner().invoke(
            app, ["push", "--endpoint", emu.base_url, "--rate", str(int(RATE))]
        )
        assert result.exit_code == 0, result.stderr
    requests = arrivals(tmp_path / "emu.duckdb")
    assert sum(n for _, n in requests) == 30
    # no request carries more than a second of the rate
    assert max(n for _, n in requests) <= RATE
    # the first second of the run holds the rate (no burst of a full request)
    first = requests[0][0]
    assert sum(n for at, n in requests if at < first + 1 - TOLERANCE_S) <= RATE
    # and each request waited for the share of those before it (requests i..j-1 took
    # their batches / RATE seconds before request j went)
    times = [at for at, _ in requests]
    for i in range(len(requests)):
        for j in range(i + 1, len(requests)):
            earlier = sum(n for _, n in requests[i:j])
            assert earlier <= RATE * (times[j] - times[i] + TOLERANCE_S), (i, j)
