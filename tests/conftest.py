from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def held_open(database: Path) -> Iterator[subprocess.Popen]:
    """Another process (`python -c`) holding `database` open in DuckDB, as a running push
    or `dbt build` would, for the block."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(database)!r}); "
            "print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> Path:
    """A fresh warehouse file that `loader` and dbt both use."""
    path = tmp_path / "backfill.duckdb"
    monkeypatch.setenv("BACKFILL_DUCKDB", str(path))
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    return path


def run_dbt(
    warehouse: Path,
    *args: str,
    dbt_vars: dict | None = None,
    check: bool = True,
    project_dir: Path = ROOT,
) -> subprocess.CompletedProcess:
    """Run dbt in a subprocess against `warehouse`, with its own target and log folders."""
    work = warehouse.parent / "dbt"
    command = [
        str(Path(sys.executable).parent / "dbt"),
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    if dbt_vars:
        command += ["--vars", yaml.safe_dump(dbt_vars, default_flow_style=True)]
    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse)}
    result = subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def built_sample(folder: Path, lines: int, seed: int, dbt_vars: dict | None = None) -> Path:
    """A warehouse in `folder` with generated quarantine data (`lines` batches over five
    days) ingested and built by a real `dbt build` (with `dbt_vars`)."""
    from typer.testing import CliRunner

    from loader.cli import app
    from loader.ingest.samples import generate

    warehouse = folder / "backfill.duckdb"
    generate(folder / "q", lines, seed=seed, days=5)
    result = CliRunner().invoke(
        app, ["ingest", str(folder / "q")], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    assert result.exit_code == 0, result.output
    run_dbt(warehouse, "build", dbt_vars=dbt_vars)
    return warehouse


def push_env(built: Path, tmp_path: Path, monkeypatch, credentials: dict) -> dict[str, str]:
    """A copy of the `built` warehouse and a fresh ledger path in `tmp_path`, with
    `credentials`, set in the environment; returns those settings."""
    import shutil

    warehouse = tmp_path / "backfill.duckdb"
    shutil.copy(built, warehouse)
    values = {
        "BACKFILL_DUCKDB": str(warehouse),
        "BACKFILL_LEDGER": str(tmp_path / "ledger.duckdb"),
        **credentials,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values
