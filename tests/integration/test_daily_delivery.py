"""Daily deliveries (materialization delivery, macros/delivery.sql): after a whole build, a
`dbt build` of a warehouse that ingested more files adds only their rows to the delivery
models, and every table, replay_events first, is row for row what a whole rebuild of the
same raw tables makes: with a redelivery in the later day (the same batch again, and the
same batch_id with other content), with a fix edited between two days, and after a file
was ingested again with other content or forgotten (then the delivery models are built
whole)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.ingest.samples import generate
from tests.conftest import query, run_dbt
from tests.integration.test_new_fix import copy_project, edit

NOW_MS = 1_765_000_000_000
VARS = {"replay_attribute_only_events": True, "replay_reference_time_ms": NOW_MS}
DELIVERY_MODELS = (
    "base_quarantine__batches_parsed",
    "stg_quarantine__events",
    "int_events__blocked_without_event",
)
# every table the comparison reads, and an order that makes its rows unique
TABLES = {
    "base_quarantine__batches_parsed": "batch_key",
    "stg_quarantine__events": "batch_key, event_index",
    "int_events__blocked_without_event": "batch_key, event_id",
    "int_events__classified": "replay_key",
    "int_events__fix_changes": "replay_key, fix_position",
    "replay_events": "replay_key",
    "blocked_events__outcomes": "all",
    "replay_user_attributes": "all",
}


def ingest(warehouse: Path, *paths: Path) -> str:
    result = CliRunner().invoke(
        app, ["ingest", *map(str, paths)], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    assert result.exit_code == 0, result.output
    return result.output


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).splitlines()


def rows(warehouse: Path, table: str) -> list[tuple]:
    return query(warehouse, f"select * from {table} order by {TABLES[table]}")


def assert_equals_a_whole_rebuild(
    warehouse: Path, project: Path, tables=TABLES, select: tuple[str, ...] = ()
) -> None:
    """Every table in `tables` is row for row what `dbt run --full-refresh` (of `select`)
    makes of a copy."""
    rebuilt = warehouse.parent / "rebuilt" / warehouse.name
    rebuilt.parent.mkdir(exist_ok=True)
    shutil.copy(warehouse, rebuilt)
    run_dbt(rebuilt, "run", "--full-refresh", *select, dbt_vars=VARS, project_dir=project)
    for table in tables:
        assert rows(warehouse, table) == rows(rebuilt, table), table


def daily(output: str) -> set[str]:
    """The delivery models a dbt run built daily (adding the new files' rows)."""
    return {m for m in DELIVERY_MODELS if f"{m}: adds the rows of " in output}


@pytest.fixture(scope="module")
def days(tmp_path_factory) -> dict[str, Path]:
    """Five days of generated files, delivered as three: days 1-4, then the 5th day's first
    file with a redelivery file (two batches of day 1 again, one of them with other
    whitespace, and a day-1 batch_id with other content), then its second file."""
    folder = tmp_path_factory.mktemp("deliveries")
    generate(folder / "q", 1_500, seed=21, days=5, events_per_file=150, now_ms=NOW_MS)
    dated = sorted(p for p in (folder / "q").iterdir() if p.is_dir())
    first = folder / "day1"
    first.mkdir()
    for day in dated[:-1]:
        shutil.copytree(day, first / day.name)
    last = sorted(dated[-1].iterdir())
    second, third = folder / "day2", folder / "day3"
    second.mkdir()
    third.mkdir()
    shutil.copy(last[0], second / last[0].name)
    for path in last[1:]:
        shutil.copy(path, third / path.name)
    day1_files = sorted(first.rglob("*.txt"))
    again = lines_of(day1_files[0])[:2]
    changed = orjson.loads(lines_of(day1_files[2])[3])
    changed["ip"] = "192.0.2.77"
    redelivery = [again[0], b"{ " + again[1][1:], orjson.dumps(changed)]
    (second / "ShopApp_redelivery_99999.txt").write_bytes(b"\n".join(redelivery) + b"\n")
    return {"day1": first, "day2": second, "day3": third}


def test_a_daily_build_equals_a_whole_rebuild(days, tmp_path):
    project = copy_project(tmp_path / "project")
    warehouse = tmp_path / "backfill.duckdb"

    ingest(warehouse, days["day1"])
    first = run_dbt(warehouse, "build", dbt_vars=VARS, project_dir=project)
    assert daily(first.stdout) == set()
    assert "base_quarantine__batches_parsed: built whole from 8 files (first build)" in first.stdout

    # day 2: a new file and a redelivery
    ingest(warehouse, days["day2"])
    second = run_dbt(warehouse, "build", dbt_vars=VARS, project_dir=project)
    assert daily(second.stdout) == set(DELIVERY_MODELS), second.stdout
    assert "base_quarantine__batches_parsed: adds the rows of 2 new files" in second.stdout
    redelivered = query(
        warehouse,
        "select delivery_count, batch_key like '%~%' from base_quarantine__batches_parsed "
        "where delivery_count > 1 or batch_key like '%~%' order by all",
    )
    # the first batch of day 1 (already delivered twice that day) a third time, another
    # batch of day 1 again, and a batch_id of day 1 with other content: a batch of its own
    assert redelivered == [(1, True), (2, False), (3, False)]
    assert_equals_a_whole_rebuild(warehouse, project)

    # a fix edited between two days: the search fix now changes other events
    edit(
        project / "models/fixes/fix_search_custom_event_type.sql",
        "event_name = 'Search' and custom_event_type = 'other'",
        "event_name = 'Search' and custom_event_type <> 'other'",
    )
    before = rows(warehouse, "replay_events")
    ingest(warehouse, days["day3"])
    third = run_dbt(
        warehouse, "build", "--exclude", "test_type:unit", dbt_vars=VARS, project_dir=project
    )
    assert daily(third.stdout) == set(DELIVERY_MODELS), third.stdout
    assert rows(warehouse, "replay_events") != before
    assert_equals_a_whole_rebuild(warehouse, project)


def test_a_file_ingested_again_or_forgotten_rebuilds_the_delivery_models(days, tmp_path):
    project = copy_project(tmp_path / "project")
    warehouse = tmp_path / "backfill.duckdb"
    select = ("-s", "+int_events__blocked_without_event")
    delivered = tmp_path / "delivered"
    shutil.copytree(days["day1"], delivered)
    ingest(warehouse, delivered)
    run_dbt(warehouse, "run", *select, dbt_vars=VARS, project_dir=project)

    # the same path with other content: its earlier rows are replaced by the ingest
    path = sorted(delivered.rglob("*.txt"))[1]
    path.write_bytes(b"\n".join(lines_of(path)[1:]) + b"\n")
    assert "replaced" in ingest(warehouse, delivered)
    again = run_dbt(warehouse, "run", *select, dbt_vars=VARS, project_dir=project)
    assert daily(again.stdout) == set(), again.stdout
    assert "of the files it was built from are gone" in again.stdout
    assert_equals_a_whole_rebuild(warehouse, project, DELIVERY_MODELS, select)

    result = CliRunner().invoke(
        app, ["ingest", "--forget", str(path)], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    assert result.exit_code == 0, result.output
    forgotten = run_dbt(warehouse, "run", *select, dbt_vars=VARS, project_dir=project)
    assert daily(forgotten.stdout) == set(), forgotten.stdout
    assert_equals_a_whole_rebuild(warehouse, project, DELIVERY_MODELS, select)

    # nothing new: daily builds that add no row
    unchanged = run_dbt(warehouse, "run", *select, dbt_vars=VARS, project_dir=project)
    assert daily(unchanged.stdout) == set(DELIVERY_MODELS), unchanged.stdout
    assert "adds the rows of 0 new files" in unchanged.stdout
