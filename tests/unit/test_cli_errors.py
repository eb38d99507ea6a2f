"""A LoaderError from a command is one `error:` line on stderr and the error's exit code."""

from pathlib import Path

from typer.testing import CliRunner

from loader.cli import app

runner = CliRunner()


def test_push_out_without_dry_run() -> None:
    result = runner.invoke(app, ["push", "--out", "x"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: --out goes with --dry-run (a push records sends in the ledger)\n"
    )


def test_report_without_warehouse(tmp_path: Path) -> None:
    warehouse = tmp_path / "missing.duckdb"
    env = {"BACKFILL_DUCKDB": str(warehouse), "BACKFILL_LEDGER": str(tmp_path / "ledger")}
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "r.html")], env=env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: Warehouse {warehouse} does not exist. "
        "Run `loader ingest PATH` and `dbt build` first "
        "(or set BACKFILL_DUCKDB to the warehouse file).\n"
    )
    assert not (tmp_path / "r.html").exists()


def test_sql_bad_format() -> None:
    result = runner.invoke(app, ["sql", "select 1", "--format", "xml"])
    assert result.exit_code == 2
    assert result.stderr == "error: --format xml: use table, csv or json\n"
