"""The fix loop patches replay_events (macros/replay_set.sql) and compares again only the
rebuilt fixes (macros/fix_change_log.sql): after fixes are edited and `dbt build -s <fix>+`
runs, both tables are row for row what a full rebuild makes, and anything but the fix chain
changing rebuilds replay_events whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loader.ingest.samples import generate
from tests.conftest import query, run_dbt
from tests.integration.test_new_fix import copy_project, edit

VARS = {"replay_attribute_only_events": True}
NO_UNIT_TESTS = ("--exclude", "test_type:unit")  # the edited fixes no longer do what theirs expect


CHANGE_LOG = "select * from int_events__fix_changes order by replay_key, fix_position"


def replay_rows(warehouse: Path) -> list[tuple]:
    return query(warehouse, "select * from replay_events order by replay_key")


def patched_events(warehouse: Path) -> int | None:
    """The events the last build of replay_events patched; None when it built it whole."""
    return query(
        warehouse,
        "select patched_events from meta.relation_builds where relation_name = 'replay_events'",
    )[0][0]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the project and a warehouse of sample data fully built by it."""
    from typer.testing import CliRunner

    from loader.cli import app

    folder = tmp_path_factory.mktemp("fix-loop")
    project = copy_project(folder / "project")
    warehouse = folder / "backfill.duckdb"
    generate(folder / "q", 800, seed=5, days=5)
    result = CliRunner().invoke(
        app, ["ingest", str(folder / "q")], env={"BACKFILL_DUCKDB": str(warehouse)}
    )
    assert result.exit_code == 0, result.output
    run_dbt(warehouse, "build", dbt_vars=VARS, project_dir=project)
    assert patched_events(warehouse) is None  # the first build is whole
    return project, warehouse


def test_patched_replay_set_equals_a_full_rebuild(project, tmp_path):
    project_dir, warehouse = project
    fixes = project_dir / "models/fixes"
    before = {row[0]: row for row in replay_rows(warehouse)}
    # Edits that move events between every state: the search fix now changes other events
    # (some rows it changed revert, others change), and the skip fix skips Search events
    # that were sent unchanged, and no longer skips the promo banner clicks.
    edit(
        fixes / "fix_search_custom_event_type.sql",
        "event_name = 'Search' and custom_event_type = 'other'",
        "event_name = 'Search' and custom_event_type <> 'other'",
    )
    edit(
        fixes / "fix_skip_promo_banner_clicks.sql",
        "event_name = 'promo_banner_click'",
        "event_name = 'Search' and replay_key like '%1'",
    )
    loop = run_dbt(
        warehouse,
        "build",
        "-s",
        "fix_search_custom_event_type+",
        *NO_UNIT_TESTS,
        dbt_vars=VARS,
        project_dir=project_dir,
    )
    # the first fix was not rebuilt: its comparison is kept
    assert "int_events__fix_changes: 2 of 3 fixes compared again" in loop.stdout
    patched = patched_events(warehouse)
    assert patched is not None and 0 < patched < len(before)
    patched_rows = replay_rows(warehouse)
    change_log = query(warehouse, CHANGE_LOG)

    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(warehouse, rebuilt)
    run_dbt(
        rebuilt,
        "build",
        "-s",
        "int_events__fix_changes",
        "replay_events",
        "--full-refresh",
        dbt_vars=VARS,
        project_dir=project_dir,
    )
    assert patched_events(rebuilt) is None
    assert patched_rows == replay_rows(rebuilt)
    assert change_log == query(rebuilt, CHANGE_LOG)

    after = {row[0]: row for row in patched_rows}
    assert set(before) - set(after), "no event newly skipped"
    assert set(after) - set(before), "no event un-skipped"
    assert any(after[k] != before[k] for k in set(before) & set(after)), "no row changed"


def test_a_rebuilt_assembled_table_rebuilds_the_replay_set_whole(project):
    project_dir, warehouse = project

    def fix_loop(**dbt_vars) -> int | None:
        """`dbt build -s fix_skip_promo_banner_clicks+`: how many events it patched."""
        run_dbt(
            warehouse,
            "build",
            "-s",
            "fix_skip_promo_banner_clicks+",
            *NO_UNIT_TESTS,
            dbt_vars={**VARS, **dbt_vars},
            project_dir=project_dir,
        )
        return patched_events(warehouse)

    run_dbt(
        warehouse, "build", "-s", "int_events__assembled", dbt_vars=VARS, project_dir=project_dir
    )
    assert fix_loop() is None
    assert fix_loop() is not None  # the same SQL on the same assembled rows: patched
    assert fix_loop(mark_replayed_events="bf-1") is None  # other vars compile other SQL
    assert fix_loop(mark_replayed_events="bf-1") is not None
    # another contract (a column's type written otherwise) with the same SQL: whole again
    marts = project_dir / "models/marts/_marts__models.yml"
    edit(marts, "else 'varchar' }}", "else 'text' }}", after="- name: event_id")
    assert fix_loop(mark_replayed_events="bf-1") is None
