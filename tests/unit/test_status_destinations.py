"""`loader status` says where each run sent: its destination, and the endpoint."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from loader.cli import app
from loader.push.ledger import Ledger

EVENTS_API_URL = "http://127.0.0.1:9/v2"
TYPO_URL = "http://127.0.0.1:9/typo"
AMPLITUDE_URL = "http://127.0.0.1:8/2/httpapi"


def record_runs(path, runs: list[tuple[str, str]]) -> None:
    with Ledger.open(path) as ledger:
        for destination, endpoint in runs:
            run_id = ledger.start_run(endpoint, "fingerprint", {}, destination)
            ledger.finish_run(run_id, "completed", {})


def status(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    monkeypatch.setenv("BACKFILL_DUCKDB", str(tmp_path / "backfill.duckdb"))
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_each_run_shows_its_destination_and_endpoint(tmp_path, monkeypatch):
    record_runs(
        tmp_path / "ledger.duckdb",
        [("events_api", TYPO_URL), ("events_api", EVENTS_API_URL), ("amplitude", AMPLITUDE_URL)],
    )
    lines = status(tmp_path, monkeypatch).splitlines()
    assert f"run 1: to events_api at {TYPO_URL}" in lines
    assert f"run 2: to events_api at {EVENTS_API_URL}" in lines
    assert f"run 3: to amplitude at {AMPLITUDE_URL}" in lines

    as_json = orjson.loads(CliRunner().invoke(app, ["status", "--json"]).stdout)
    assert [(r["destination"], r["endpoint"]) for r in as_json["runs"]] == [
        ("events_api", TYPO_URL),
        ("events_api", EVENTS_API_URL),
        ("amplitude", AMPLITUDE_URL),
    ]


def test_runs_to_one_target_share_a_line(tmp_path, monkeypatch):
    record_runs(tmp_path / "ledger.duckdb", [("events_api", EVENTS_API_URL)] * 2)
    lines = status(tmp_path, monkeypatch).splitlines()
    assert [line for line in lines if " at http" in line] == [
        f"runs 1, 2: to events_api at {EVENTS_API_URL}"
    ]
