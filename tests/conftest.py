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


@pytest.fixture(scope="session", autouse=True)
def dbt_parse_cache(tmp_path_factory) -> Iterator[None]:
    """dbt's parse saved once per project, vars and settings, for every dbt run of this
    test run (pytest-xdist's workers share it: the folder above their own)."""
    from tests import parse_cache

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    parse_cache.use_folder(shared / "dbt-parse-cache")
    yield
    parse_cache.use_folder(None)


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
    """Run dbt against `warehouse`, with its own target and log folders; its return code and
    console output as a finished process's.

    dbt runs in the warehouse's folder with the warehouse named relatively, so that the
    profile (which dbt's partial parsing compares) is the same for every test's warehouse
    of that name: its target folder starts from the parse an earlier run of this test run
    saved for the same project and vars (tests/parse_cache.py), and dbt itself checks that
    it still matches every file, var and setting, parsing again what does not. dbt runs in
    this process (tests/dbt_runner.py), as the `dbt` program would."""
    from tests.dbt_runner import run_dbt_command
    from tests.parse_cache import reuse_parse, save_parse

    work = warehouse.parent / "dbt"
    target = work / "target"
    command = [
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(target),
        "--log-path",
        str(work / "logs"),
    ]
    dbt_vars_text = yaml.safe_dump(dbt_vars, default_flow_style=True) if dbt_vars else ""
    if dbt_vars_text:
        command += ["--vars", dbt_vars_text]
    parse_key = (str(project_dir.resolve()), warehouse.name, dbt_vars_text)
    reuse_parse(parse_key, target)
    result = run_dbt_command(command, cwd=warehouse.parent, env={"BACKFILL_DUCKDB": warehouse.name})
    save_parse(parse_key, target)
    if check and result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def built_sample(folder: Path, lines: int, seed: int, dbt_vars: dict | None = None) -> Path:
    """A warehouse in `folder` with generated quarantine data (`lines` batches over five
    days) ingested and built by a real `dbt build` (with the demo's fixes and `dbt_vars`)."""
    from typer.testing import CliRunner

    from loader.cli import app
    from loader.ingest.samples import generate
    from tests.demo import DEMO_FIXES

    warehouse = folder / "backfill.duckdb"
    generate(folder / "q", lines, seed=seed, days=5)
    result = CliRunner().invoke(
        app, ["ingest", str(folder / "q")], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    assert result.exit_code == 0, result.output
    run_dbt(warehouse, "build", dbt_vars={**DEMO_FIXES, **(dbt_vars or {})})
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
