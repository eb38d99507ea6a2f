"""The dbt project built on Spark (dbt-spark, session method, local PySpark) gives the replay
set and the outcomes a DuckDB build gives, from the same quarantine folder; the Parquet
replay set Spark writes is pushed as the warehouse's would be.

Needs the `spark` extra and Java 17 (`make test-spark`); skipped without them."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from tests.conftest import ROOT, query, run_dbt

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark", reason="the spark extra is not installed (make test-spark)")
pytest.importorskip("dbt.adapters.spark", reason="dbt-spark is not installed (make test-spark)")
if shutil.which("java") is None:
    pytest.skip("no java: apt-get install openjdk-17-jre-headless", allow_module_level=True)

SECRET = "Spark-Secret-5e1"
DAY_MS = 86_400_000
BIG_ID = 9_007_199_254_740_993  # 2^53 + 1: a double would make it ...992
NOW_MS = int(datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp() * 1000)
# Fixes of the JSON toolkit and a context fix, added to a copy of the project, so that the
# macros users write fixes with are compared too.
EXTRA_FIXES = {
    "models/fixes/fix_zz_attribute_toolkit.sql": """
with events as (select * from {{ fix_input() }}),
renamed as (
    select * replace ({{ rename_attribute('sku', 'product_sku') }}),
    from events
),
numbers as (select * replace ({{ cast_attribute('price', 'number') }}) from renamed),
mapped as (
    select * replace ({{ map_attribute('product_sku', values={'SKU-7': 'seven', 'SKU-8': 8}) }})
    from numbers
),
moved as (
    select * replace ({{ move_attribute_to_user_attributes('debug_info', to='debug') }})
    from mapped
)
select * from moved
""",
    "models/context_fixes/context_fix_zz_toolkit.sql": """
{{ config(meta={'changes_identity': true}) }}
with batches as (select * from {{ context_fix_input() }}),
environment as (
    select * replace ({{ set_environment('development', where="mpid is null") }})
    from batches
),
renamed as (
    select * replace ({{ rename_identity('email', 'other') }})
    from environment
)
select * from renamed
""",
}
# the same build vars on both engines: a fixed reference time for event ages, the events
# that only lost attributes replayed too
VARS = {
    "replay_reference_time_ms": NOW_MS,
    "replay_attribute_only_events": True,
    "max_event_age_days": 30,
    "fixes": [
        "fix_rename_checkout_event",
        "fix_search_custom_event_type",
        "fix_skip_promo_banner_clicks",
        "fix_zz_attribute_toolkit",
    ],
    "context_fixes": ["context_fix_zz_toolkit"],
    "integrations": ["amplitude", "google_analytics_4", "meta_conversions_api", "braze"],
}


def project_copy(target: Path) -> Path:
    """The project with EXTRA_FIXES added."""
    target.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(ROOT / name, target / name)
    for folder in ("models", "macros", "seeds", "data-tests", "analyses"):
        shutil.copytree(ROOT / folder, target / folder)
    for name, sql in EXTRA_FIXES.items():
        (target / name).write_text(sql)
    return target


def sample_folder(folder: Path) -> Path:
    """A sample quarantine folder, with an id above 2^53, a redelivered batch (the sample
    writes one), an invalid JSON line and a line that is not an object."""
    from loader.ingest.samples import generate

    generate(folder, 3000, seed=23, days=5, now_ms=NOW_MS)
    plain = sorted(p for p in folder.rglob("ShopApp_*.txt") if p.read_bytes()[:2] != b"\x1f\x8b")
    batch = json.loads(plain[0].read_text().splitlines()[0])
    batch["batch_id"] = BIG_ID
    batch["mpid"] = BIG_ID
    with plain[-1].open("a") as out:
        out.write(json.dumps(batch) + "\n")
        out.write('{"batch_id": "cut off\n')
        out.write("[1, 2, 3]\n")
    return folder


def spark_copy(source: Path, target: Path) -> Path:
    """The folder as Spark reads it: gzip files named .gz (Spark picks the codec by name)."""
    shutil.copytree(source, target)
    for path in target.rglob("*.txt"):
        if path.read_bytes()[:2] == b"\x1f\x8b":
            gzip.decompress(path.read_bytes())  # a whole gzip stream
            path.rename(path.with_name(path.name + ".gz"))
    return target


def run_spark_dbt(
    project: Path, work: Path, *args: str, dbt_vars: dict
) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "dbt"),
        *args,
        "--target",
        "spark",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--vars",
        yaml.safe_dump(dbt_vars, default_flow_style=True),
    ]
    env = {**os.environ, "BACKFILL_SPARK_DIR": str(work / "spark")}
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} on Spark failed:\n{result.stdout[-20000:]}")
    return result


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict:
    """One DuckDB build and one Spark build of the same folder."""
    root = tmp_path_factory.mktemp("spark")
    project = project_copy(root / "project")
    folder = sample_folder(root / "q")
    warehouse = root / "duckdb" / "backfill.duckdb"
    warehouse.parent.mkdir()
    result = CliRunner().invoke(
        app, ["ingest", str(folder)], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    # exit code 1: loaded, with the two bad lines rejected
    assert result.exit_code == 1 and "lines loaded" in result.output, result.output
    assert "rejected 2" in result.output
    run_dbt(warehouse, "build", dbt_vars=VARS, project_dir=project)

    spark_work = root / "spark_work"
    spark_work.mkdir()
    replay_set = root / "replay_set"
    spark_vars = {
        **VARS,
        "quarantine_path": str(spark_copy(folder, root / "q_spark")),
        "replay_set_path": str(replay_set),
    }
    output = run_spark_dbt(project, spark_work, "build", dbt_vars=spark_vars).stdout
    tables = spark_work / "spark" / "warehouse" / "replay.db"
    return {
        "warehouse": warehouse,
        "replay_set": replay_set,
        "spark_tables": tables,
        "spark_output": output,
        "root": root,
    }


def parquet_rows(location: Path, columns: str) -> list[tuple]:
    with duckdb.connect() as con:
        return con.sql(f"select {columns} from read_parquet('{location}/**/*.parquet')").fetchall()


def test_the_replay_sets_are_equal_as_parsed_json(builds):
    duck = query(
        builds["warehouse"],
        "select replay_key, event_json::varchar, batch_context::varchar from main.replay_events",
    )
    spark = parquet_rows(builds["replay_set"], "replay_key, event_json, batch_context")
    assert len(duck) > 500
    assert sorted(r[0] for r in spark) == sorted(r[0] for r in duck)
    # Python's json keeps integers exact: an id above 2^53 must match to the digit
    duck_by_key = {key: (json.loads(event), json.loads(context)) for key, event, context in duck}
    for key, event, context in spark:
        assert (json.loads(event), json.loads(context)) == duck_by_key[key], key
    assert any(str(BIG_ID) in context for _, _, context in spark)
    assert any(k.startswith(f"{BIG_ID}:") for k, _, _ in spark)
    # the extra fixes changed what is sent, the same way on both engines
    events = [json.loads(event)["data"].get("custom_attributes", {}) for _, event, _ in spark]
    assert any("product_sku" in attributes for attributes in events)
    assert not any("sku" in attributes or "debug_info" in attributes for attributes in events)
    assert any(attributes.get("product_sku") == 8 for attributes in events)
    assert any(isinstance(attributes.get("price"), float) for attributes in events)
    contexts = [json.loads(context) for _, _, context in spark]
    assert any(c.get("user_attributes", {}).get("debug") == "build 1729" for c in contexts)
    assert any("other" in c.get("user_identities", {}) for c in contexts)


def test_the_outcomes_are_equal(builds):
    columns = "replay_key, batch_id, event_id, blocked_kind, event_name, outcome, skip_reason"
    duck = query(builds["warehouse"], f"select {columns} from main.blocked_events__outcomes")
    spark = parquet_rows(builds["spark_tables"] / "blocked_events__outcomes", columns)
    assert sorted(spark) == sorted(duck)
    assert {row[5] for row in duck} == {"replay", "skipped"}


def test_the_integration_verdicts_and_send_order_are_equal(builds):
    columns = "replay_key, integration, verdict, reason, source_url"
    duck = query(builds["warehouse"], f"select {columns} from main.replay_integration_outcomes")
    spark = parquet_rows(builds["spark_tables"] / "replay_integration_outcomes", columns)
    assert len(duck) > 2000 and sorted(spark) == sorted(duck)
    assert {"lands", "dropped_as_duplicate", "too_old_at_send"} <= {row[2] for row in duck}
    # the same users at the same positions; a user's groups follow context_key, an md5 of
    # the context's text, which the engines write differently
    order = "user_key, send_position, user_deadline_ms, expected_send_at_ms"
    duck_order = query(builds["warehouse"], f"select {order} from main.replay_send_order")
    spark_order = parquet_rows(builds["spark_tables"] / "replay_send_order", order)
    assert sorted(spark_order) == sorted(duck_order)


def test_the_delivery_models_are_built_whole_and_say_so(builds):
    # daily builds (macros/delivery.sql) are DuckDB's: on Spark every file is read again
    output = " ".join(builds["spark_output"].split())
    for model in (
        "base_quarantine__batches_parsed",
        "stg_quarantine__events",
        "int_events__blocked_without_event",
    ):
        assert f"{model}: built whole from every file" in output, model


def test_rejected_lines_are_reported_not_dropped(builds):
    # the invalid JSON line and the array line: a warning naming raw.rejected_lines
    assert "warn_quarantine_lines_rejected_at_ingest" in builds["spark_output"]
    assert "WARN 2 warn_quarantine_lines_rejected_at_ingest" in " ".join(
        builds["spark_output"].split()
    )


def test_the_spark_parquet_is_pushed_as_the_warehouse_is(builds, tmp_path, monkeypatch):
    warehouse = tmp_path / "backfill.duckdb"
    shutil.copy(builds["warehouse"], warehouse)
    monkeypatch.setenv("BACKFILL_DUCKDB", str(warehouse))
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    monkeypatch.setenv("MPARTICLE_API_SECRET", SECRET)
    config = EmulatorConfig(api_key="key", api_secret=SECRET)
    runner = CliRunner()
    with running_emulator(config) as from_spark, running_emulator(config) as from_duckdb:
        monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "spark-ledger.duckdb"))
        result = runner.invoke(
            app,
            ["push", "--endpoint", from_spark.base_url, "--replay-set", str(builds["replay_set"])],
        )
        assert result.exit_code == 0, result.output
        monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "duckdb-ledger.duckdb"))
        result = runner.invoke(app, ["push", "--endpoint", from_duckdb.base_url])
        assert result.exit_code == 0, result.output
        assert delivered_events(from_spark) == delivered_events(from_duckdb)
        assert delivered_events(from_spark)


def delivered_events(emulator) -> list[tuple[str, str]]:
    """Each accepted event with its batch's context (batch ids left out), as sorted JSON."""
    events = []
    for batch in emulator.accepted():
        context = {k: v for k, v in batch.items() if k not in ("events", "source_request_id")}
        for event in batch["events"]:
            events.append((json.dumps(context, sort_keys=True), json.dumps(event, sort_keys=True)))
    return sorted(events)
