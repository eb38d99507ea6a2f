"""Every DuckDB session the project opens (the loader's and dbt's) runs under one memory
limit, BACKFILL_MEMORY_LIMIT, and spills to a folder beside the warehouse."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loader.audit.sql_session import open_session
from loader.cli import app
from loader.emulator.server import _open_record
from loader.ingest.importer import ingest
from loader.ingest.samples import generate
from loader.push.ledger import Ledger
from loader.push.send_plan import planning_session
from loader.warehouse import connect
from tests.conftest import ROOT, query, run_dbt
from tests.demo import DEMO_FIXES

LIMIT, SHOWN = "1GB", "953.6 MiB"  # as DuckDB shows 1GB
STREAMING = "488.2 MiB"  # 512MB: ingest and push take the lower of it and the limit


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("limits")
    warehouse = folder / "backfill.duckdb"
    generate(folder / "q", 300, seed=3)
    env = {"BACKFILL_DUCKDB": str(warehouse)}
    assert CliRunner().invoke(app, ["ingest", str(folder / "q")], env=env).exit_code == 0
    run_dbt(warehouse, "build", dbt_vars=DEMO_FIXES)
    return warehouse


@pytest.fixture
def limited(built, monkeypatch) -> Path:
    monkeypatch.setenv("BACKFILL_DUCKDB", str(built))
    monkeypatch.setenv("BACKFILL_LEDGER", str(built.with_name("ledger.duckdb")))
    monkeypatch.setenv("BACKFILL_MEMORY_LIMIT", LIMIT)
    monkeypatch.delenv("BACKFILL_TEMP_DIRECTORY", raising=False)
    return built


def limits_of(con) -> tuple[str, str]:
    row = con.execute(
        "select current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    return row[0], row[1]


def test_only_the_warehouse_module_opens_duckdb():
    opened = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "loader").rglob("*.py")
        if "duckdb.connect(" in path.read_text()
    }
    assert opened == {"loader/warehouse.py"}


def test_every_loader_session_runs_under_the_limit(limited, tmp_path):
    expected = (SHOWN, f"{limited}.tmp")
    streaming = (STREAMING, f"{limited}.tmp")
    ledger_path = limited.with_name("ledger.duckdb")
    with connect(limited, read_only=True) as con:
        assert limits_of(con) == expected
    with Ledger.open(ledger_path) as ledger:
        assert limits_of(ledger.con) == streaming
        with planning_session(ledger, limited, resend_changed=False) as planner:
            assert limits_of(planner.con) == streaming  # the push's planning sort
    with Ledger.open(ledger_path, read_only=True) as ledger:
        assert limits_of(ledger.con) == streaming
    with Ledger.in_memory() as ledger:
        assert limits_of(ledger.con) == streaming
    with open_session(limited, ledger_path) as con:  # loader sql and loader report
        assert limits_of(con) == expected
    record = _open_record(tmp_path / "emulator.duckdb")
    assert limits_of(record) == expected
    record.close()
    assert limited.with_name(limited.name + ".tmp").is_dir()


def test_ingest_keeps_the_limit(limited, tmp_path):
    generate(tmp_path / "more", 50, seed=9)
    with connect(limited, streaming=True) as con:
        ingest(con, [str(tmp_path / "more")])
        assert limits_of(con) == (STREAMING, f"{limited}.tmp")


@pytest.mark.parametrize(
    ("limit", "shown"), [("256MB", "244.1 MiB"), ("0.25GiB", "256.0 MiB"), ("2TB", STREAMING)]
)
def test_a_streaming_session_takes_the_lower_of_the_limit_and_its_cap(
    limited, monkeypatch, limit, shown
):
    monkeypatch.setenv("BACKFILL_MEMORY_LIMIT", limit)
    with Ledger.in_memory() as ledger:
        assert limits_of(ledger.con)[0] == shown


def test_temp_directory_can_be_moved(limited, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKFILL_TEMP_DIRECTORY", str(tmp_path / "spill"))
    with connect(limited, read_only=True) as con:
        assert limits_of(con) == (SHOWN, str(tmp_path / "spill"))


def loader_command(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "loader"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_loader_sql_process_runs_under_the_limit(limited):
    result = loader_command(
        "sql",
        "--format",
        "csv",
        "select current_setting('memory_limit') m, current_setting('temp_directory') t",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == f"{SHOWN},{limited}.tmp"


@pytest.mark.parametrize("value", ["lots", "4 gigs", "-1GB", "0GB"])
def test_an_invalid_limit_is_named(limited, value):
    result = loader_command("sql", "select 1", BACKFILL_MEMORY_LIMIT=value)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"BACKFILL_MEMORY_LIMIT='{value}' is not a memory size" in message
    assert "Traceback" not in result.stderr


def test_dbt_names_an_invalid_limit(limited, monkeypatch):
    monkeypatch.setenv("BACKFILL_MEMORY_LIMIT", "lots")
    result = run_dbt(limited, "run", "-s", "replay_build_settings", check=False)
    assert result.returncode != 0
    assert "BACKFILL_MEMORY_LIMIT=lots is not a memory size" in result.stdout


def test_dbt_goes_on_after_spilling_to_the_temp_directory(tmp_path, monkeypatch):
    """A model that spills (a sort larger than the limit), then models after it: each
    opens a new cursor, which must not set the temp directory again (DuckDB refuses that
    once it has spilled there). Run with the project's own profiles.yml."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    shutil.copy(ROOT / "profiles.yml", project / "profiles.yml")
    (project / "dbt_project.yml").write_text(
        "name: mparticle_backfill\nversion: '1.0.0'\nconfig-version: 2\n"
        "profile: mparticle_backfill\nmodels:\n  mparticle_backfill:\n    +materialized: table\n"
    )
    (project / "models/spills.sql").write_text(
        "select range as n, md5(range::varchar) as h from range(3000000) order by h"
    )
    (project / "models/after.sql").write_text("select count(*) as n from {{ ref('spills') }}")
    (project / "models/last.sql").write_text("select n from {{ ref('after') }}")
    monkeypatch.setenv("BACKFILL_MEMORY_LIMIT", "100MB")
    monkeypatch.delenv("BACKFILL_TEMP_DIRECTORY", raising=False)
    warehouse = tmp_path / "spill.duckdb"

    result = run_dbt(warehouse, "run", project_dir=project, check=False)

    assert result.returncode == 0, result.stdout
    assert query(warehouse, "select n from last") == [(3000000,)]
