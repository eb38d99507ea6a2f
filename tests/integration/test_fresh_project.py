"""A user's own backfill starts clean: a fresh copy of the project, built on a small
quarantine set holding every event the demo's fixes would change, applies no fix, says
so, and replays each event as it was blocked."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from loader.ingest.importer import ingest
from loader.ingest.samples import generate
from tests.conftest import ROOT, query, run_dbt
from tests.integration.test_new_fix import PROJECT_PARTS


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A copy of the project's files as a clone has them, built once on sample data."""
    folder = tmp_path_factory.mktemp("fresh")
    project = folder / "project"
    project.mkdir()
    for part in PROJECT_PARTS:
        source, target = ROOT / part, project / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    generate(folder / "q", 300, seed=11, days=2)
    warehouse = folder / "backfill.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ingest(con, [str(folder / "q")])
    build = run_dbt(warehouse, "build", project_dir=project)
    return warehouse, build


def test_the_default_chains_are_empty_and_the_build_says_so(fresh):
    warehouse, build = fresh
    assert query(warehouse, "select fixes from replay_build_settings") == [([],)]
    assert query(warehouse, "select count(*) from fix_summary") == [(0,)]
    assert "fix_summary: no fix in the chain (var fixes is empty)" in build.stdout
    [(fix_tables,)] = query(
        warehouse,
        "select count(*) from duckdb_tables() where table_name in "
        "('fix_rename_checkout_event', 'fix_search_custom_event_type', "
        "'fix_skip_promo_banner_clicks')",
    )
    assert fix_tables == 0


def test_no_event_is_changed(fresh):
    warehouse, _ = fresh
    # the sample holds the events the demo's fixes change: none is changed here
    [(misspelled, searches, promo)] = query(
        warehouse,
        "select count(*) filter (where event_name = 'Chekout Complete'), "
        "count(*) filter (where event_name = 'Search' and custom_event_type = 'other'), "
        "count(*) filter (where event_name = 'promo_banner_click') "
        "from int_events__classified where skip_reason is null",
    )
    assert misspelled > 0 and searches > 0 and promo > 0
    changed = """
        select count(*) from (
            (select * from int_events__classified except all select * from int_events__fixed)
            union all
            (select * from int_events__fixed except all select * from int_events__classified)
        )
    """
    assert query(warehouse, changed) == [(0,)]
    assert query(warehouse, "select count(*) from int_events__fix_changes") == [(0,)]
    assert query(warehouse, "select count(*) from int_batches__context_fix_changes") == [(0,)]
    assert query(
        warehouse,
        "select count(*), count(*) filter (where len(fixes_applied) > 0) from replay_events "
        "where event_name in ('Chekout Complete', 'promo_banner_click')",
    ) == [(misspelled + promo, 0)]
    assert query(
        warehouse, "select count(*) from blocked_events__outcomes where skip_reason like 'fix:%'"
    ) == [(0,)]


def test_the_users_fix_folders_start_empty():
    for folder in ("models/fixes", "models/context_fixes"):
        assert sorted(path.name for path in (ROOT / folder).rglob("*")) == [
            f"_{Path(folder).name}__models.yml"
        ]
