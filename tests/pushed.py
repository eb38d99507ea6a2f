"""A backfill pushed to the local emulator, so the ledger holds every outcome: acknowledged,
rejected (a 400 on one batch), failed (a 503, then a 401 that stops the run) and planned
batches never sent."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.ingest.samples import generate
from loader.push.destinations.events_api import Credentials
from loader.push.runner import PushOptions, PushReport, push
from tests.conftest import run_dbt
from tests.demo import DEMO_FIXES

API_KEY, API_SECRET = "audit-key-7f3a", "audit-secret-5c9e1d"
# requests 1 and 2 accepted; request 3: seven 400s narrow it down to one rejected batch,
# then a 503 fails the rest of it; request 4: 401 stops the run; later ones are never sent
SCRIPT = ["202", "202"] + ["400"] * 7 + ["503", "401"]


@dataclass
class Pushed:
    warehouse: Path
    ledger: Path
    report: PushReport


def pushed_backfill(folder: Path, *, days: int = 4, dbt_vars: dict | None = None) -> Pushed:
    """Sample data over `days` days (now), ingested, built (with the demo's fixes), and
    pushed with `SCRIPT`."""
    now_ms = int(time.time() * 1000)
    warehouse, ledger = folder / "backfill.duckdb", folder / "ledger.duckdb"
    generate(folder / "q", 6000, seed=5, users=1200, days=days, now_ms=now_ms)
    result = CliRunner().invoke(
        app, ["ingest", str(folder / "q")], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    assert result.exit_code == 0, result.output
    build_vars = {**DEMO_FIXES, "replay_reference_time_ms": now_ms, **(dbt_vars or {})}
    run_dbt(warehouse, "build", dbt_vars=build_vars)
    with running_emulator(EmulatorConfig(api_key=API_KEY, api_secret=API_SECRET)) as emulator:
        emulator.script(SCRIPT)
        options = PushOptions(endpoint=emulator.base_url, workers=1, max_retries=0, backoff_s=0)
        report = push(warehouse, ledger, options, Credentials(API_KEY, API_SECRET))
    assert report.status == "stopped", report.as_dict()
    return Pushed(warehouse, ledger, report)
