"""The engine-specific macros through dbt itself: DuckDB gets its SQL, and a third engine (a
real dbt adapter plugin, DuckDB's adapter under another type name) stops at compile time
with a message naming the engine, before any SQL runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run_dbt

SUPPORTED = "this project runs on DuckDB (macro duckdb__{0}) and Spark (macro spark__{0})"

THIRD_ENGINE_PLUGIN = '''
"""DuckDB's adapter registered as engine 'thirdengine', with no duckdb__ macros of its own."""
from dataclasses import dataclass
from pathlib import Path

from dbt.adapters.base import AdapterPlugin
from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.adapters.duckdb.impl import DuckDBAdapter


@dataclass
class ThirdCredentials(DuckDBCredentials):
    @property
    def type(self):
        return "thirdengine"


class ThirdAdapter(DuckDBAdapter):
    @classmethod
    def type(cls):
        return "thirdengine"


Plugin = AdapterPlugin(
    adapter=ThirdAdapter,
    credentials=ThirdCredentials,
    include_path=str(Path(__file__).parent / "include"),
)
'''


def third_engine(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """The environment (PYTHONPATH), profiles folder and warehouse path of a third engine."""
    plugins = tmp_path / "plugins"
    package = plugins / "dbt" / "adapters" / "thirdengine"
    (package / "include").mkdir(parents=True)
    namespace = "from pkgutil import extend_path\n\n__path__ = extend_path(__path__, __name__)\n"
    (plugins / "dbt" / "__init__.py").write_text(namespace)
    (plugins / "dbt" / "adapters" / "__init__.py").write_text(namespace)
    (package / "__init__.py").write_text(THIRD_ENGINE_PLUGIN)
    (package / "__version__.py").write_text('version = "1.11.0"\n')
    (package / "include" / "dbt_project.yml").write_text(
        'name: dbt_thirdengine\nversion: "1.0"\nconfig-version: 2\n'
    )
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    warehouse = tmp_path / "third.duckdb"
    (profiles / "profiles.yml").write_text(
        "mparticle_backfill:\n  target: third\n  outputs:\n    third:\n"
        f"      type: thirdengine\n      path: {warehouse}\n      schema: main\n      threads: 1\n"
    )
    env = {**os.environ, "PYTHONPATH": str(plugins)}
    return env, profiles, warehouse


def dbt_on(env: dict[str, str], profiles: Path, project: Path, *args: str) -> str:
    """dbt's output (stdout and stderr, lines joined) for a command that must fail."""
    work = profiles.parent / "dbt"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args, "--project-dir", str(project)]
        + ["--profiles-dir", str(profiles), "--target-path", str(work / "target")]
        + ["--log-path", str(work / "logs")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0, result.stdout
    return " ".join((result.stdout + result.stderr).split())


def test_duckdb_gets_its_sql_and_the_default_fails_naming_the_engine(warehouse):
    result = run_dbt(warehouse, "compile", "--inline", "select {{ list_len('x') }} as n")
    assert "select len(x) as n" in result.stdout

    result = run_dbt(
        warehouse,
        "compile",
        "--inline",
        "select {{ mparticle_backfill.default__list_len('x') }}",
        check=False,
    )
    assert result.returncode != 0
    assert (
        "macro list_len has no SQL for engine 'duckdb': " + SUPPORTED.format("list_len")
    ) in " ".join(result.stdout.split())


def test_a_third_engine_stops_at_compile_time_naming_the_engine(tmp_path):
    env, profiles, warehouse = third_engine(tmp_path)
    output = dbt_on(env, profiles, ROOT, "build")
    assert "Registered adapter: thirdengine" in output
    assert "Compilation Error" in output
    assert "has no SQL for engine 'thirdengine': this project runs on DuckDB" in output
    assert not warehouse.exists()  # no SQL ran


def test_check_engine_stops_a_third_engine_before_the_build(tmp_path):
    """check_engine (on-run-start) guards the models that branch on target.type inline."""
    env, profiles, warehouse = third_engine(tmp_path)
    project = tmp_path / "project"
    (project / "macros").mkdir(parents=True)
    (project / "models").mkdir()
    shutil.copy(ROOT / "macros" / "engines.sql", project / "macros")
    (project / "models" / "only_duckdb_sql.sql").write_text(
        "select {{ \"'spark'\" if target.type == 'spark' else \"'duckdb'\" }} as sql_for"
    )
    (project / "dbt_project.yml").write_text(
        'name: mparticle_backfill\nversion: "1.0"\nconfig-version: 2\n'
        'profile: mparticle_backfill\non-run-start:\n  - "{{ check_engine() }}"\n'
    )
    output = dbt_on(env, profiles, project, "build")
    assert (
        "this project runs on DuckDB and Spark, not on engine 'thirdengine' "
        "(target third in profiles.yml)"
    ) in output
    assert not warehouse.exists()
