"""Commands run where there is no warehouse (or an unbuilt one) leave nothing behind and
name the file they looked for, as an absolute path."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from loader.cli import app

PLAN = Path(__file__).resolve().parents[2] / "examples" / "data_plan_shop_plan_v4.json"
PUSH_DRY_RUN = ["push", "--dry-run", "--endpoint", "http://127.0.0.1:9/v2"]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """A working folder with no warehouse, the default (relative) file names in use."""
    monkeypatch.chdir(tmp_path)
    for name in ("BACKFILL_DUCKDB", "BACKFILL_LEDGER", "BACKFILL_TEMP_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    monkeypatch.setenv("MPARTICLE_API_SECRET", "no-warehouse-secret")
    return tmp_path


@pytest.mark.parametrize("args", [["status"], PUSH_DRY_RUN])
def test_no_spill_folder_appears_beside_a_missing_warehouse(elsewhere, args):
    CliRunner().invoke(app, args)
    assert not (elsewhere / "backfill.duckdb.tmp").exists()


def one_line(output: str) -> str:
    return " ".join(output.split())


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        PUSH_DRY_RUN,
        ["report"],
        ["sql", "select 1"],
        ["export", "replay_events"],
        ["suggest-fixes"],
        ["plan-check", str(PLAN)],
    ],
)
def test_a_missing_warehouse_is_named_by_its_absolute_path(elsewhere, args):
    result = CliRunner().invoke(app, args)
    expected = str(elsewhere / "backfill.duckdb")
    assert f"{expected} does not exist" in one_line(result.output) or (
        f"{expected} not found" in one_line(result.output)
    ), result.output
    assert not (elsewhere / "backfill.duckdb").exists()


@pytest.mark.parametrize(
    "args", [["status"], PUSH_DRY_RUN, ["report"], ["suggest-fixes"], ["plan-check", str(PLAN)]]
)
def test_an_unbuilt_warehouse_is_named_by_its_absolute_path(elsewhere, args):
    duckdb.connect("backfill.duckdb").close()  # ingested or created, never built
    result = CliRunner().invoke(app, args)
    assert f"{elsewhere / 'backfill.duckdb'} has no " in one_line(result.output), result.output
    assert "dbt build" in result.output


def test_status_names_the_ledger_it_looked_in(elsewhere):
    result = CliRunner().invoke(app, ["status"])
    assert f"no push recorded in {elsewhere / 'ledger.duckdb'} yet" in one_line(result.output)


@pytest.mark.parametrize("args", [["ingest", "no-such-folder/"], ["suppress", "no-such-list.csv"]])
def test_bad_input_creates_no_empty_warehouse(elsewhere, args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert sorted(p.name for p in elsewhere.iterdir()) == []


def test_bad_input_keeps_a_warehouse_that_was_there(elsewhere):
    duckdb.connect("backfill.duckdb").close()
    result = CliRunner().invoke(app, ["ingest", "no-such-folder/"])
    assert result.exit_code == 2, result.output
    assert (elsewhere / "backfill.duckdb").exists()
