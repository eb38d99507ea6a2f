"""Commands run where there is no warehouse leave nothing behind."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from loader.cli import app


@pytest.mark.parametrize(
    "args", [["status"], ["push", "--dry-run", "--endpoint", "http://127.0.0.1:9/v2"]]
)
def test_no_spill_folder_appears_beside_a_missing_warehouse(tmp_path, monkeypatch, args):
    monkeypatch.setenv("BACKFILL_DUCKDB", str(tmp_path / "backfill.duckdb"))
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    monkeypatch.delenv("BACKFILL_TEMP_DIRECTORY", raising=False)
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    monkeypatch.setenv("MPARTICLE_API_SECRET", "no-warehouse-secret")
    CliRunner().invoke(app, args)
    assert not (tmp_path / "backfill.duckdb.tmp").exists()
