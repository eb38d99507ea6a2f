"""`loader new-fix` in a temp copy of the project, then real dbt builds there: the new fix
runs with its unit test, the lineage counts it, and the chain's invariants can fail."""

from __future__ import annotations

import difflib
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from loader.cli import app
from loader.fixes.chain import chain_from_text
from loader.fixes.scaffold import ScaffoldError, append_to_chain, new_fix, remove_fix
from loader.ingest.importer import ingest
from loader.ingest.samples import generate
from tests.conftest import ROOT, query, run_dbt
from tests.demo import install_demo_fixes

PROJECT_PARTS = ("dbt_project.yml", "profiles.yml", "models", "macros", "seeds", "data-tests")
runner = CliRunner()
NO_OP = "event_name as event_name"  # what a scaffolded fix's `* replace (...)` holds


def copy_project(dest: Path) -> Path:
    """The dbt project's files (no target/, no warehouse) copied into `dest`, with the
    demo's three fixes installed as the user's own (models/fixes/, var `fixes`)."""
    for part in PROJECT_PARTS:
        source, target = ROOT / part, dest / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    install_demo_fixes(dest)
    return dest


def sample_warehouse(folder: Path) -> Path:
    """A warehouse holding the demo data (`loader sample`)."""
    generate(folder / "quarantine", 600, seed=11)
    warehouse = folder / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ingest(con, [str(folder / "quarantine")])
    return warehouse


def scaffold(project: Path, name: str) -> str:
    result = runner.invoke(app, ["new-fix", name, "--project-dir", str(project)])
    assert result.exit_code == 0, result.output
    return result.output


def edit(path: Path, old: str, new: str, after: str = "") -> None:
    """Replace the first `old` found after `after` in a file."""
    text = path.read_text()
    start = text.index(after)
    at = text.index(old, start)
    path.write_text(text[:at] + new + text[at + len(old) :])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return sample_warehouse(tmp_path_factory.mktemp("demo-data"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, data):
    """A project with two scaffolded fixes - one edited to drop debug_info, one left as
    scaffolded (a no-op) - built with dbt."""
    folder = tmp_path_factory.mktemp("new-fix")
    project = copy_project(folder / "project")
    project_before = (project / "dbt_project.yml").read_text()
    yml_before = (project / "models/fixes/_fixes__models.yml").read_text()

    output = scaffold(project, "drop_debug_info")
    fix_sql = project / "models/fixes/fix_drop_debug_info.sql"
    edit(fix_sql, NO_OP, "{{ drop_attributes('debug_info') }}", after="* replace (")
    yml = project / "models/fixes/_fixes__models.yml"
    test_at = "  - name: test_fix_drop_debug_info"
    edit(yml, """'{"TODO": "value"}'""", """'{"debug_info": "build 1729", "sku": "A"}'""", test_at)
    edit(yml, """'{"TODO": "value"}'""", """'{"sku":"A"}'""", test_at)
    scaffold(project, "noop_placeholder")

    warehouse = folder / "warehouse.duckdb"
    shutil.copy(data, warehouse)
    result = run_dbt(warehouse, "build", project_dir=project, check=False)
    return SimpleNamespace(
        project=project,
        warehouse=warehouse,
        output=output,
        build=result,
        project_before=project_before,
        yml_before=yml_before,
    )


def added_lines(before: str, after: str) -> list[str]:
    """The lines `after` adds to `before`; fails if it changes or removes any."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    assert not [line for line in diff if line.startswith("- ")], "lines were changed"
    return [line[2:] for line in diff if line.startswith("+ ")]


def test_new_fix_creates_the_model_wires_it_in_and_says_what_next(built):
    assert "created models/fixes/fix_drop_debug_info.sql" in built.output
    assert "position 4, after fix_skip_promo_banner_clicks" in built.output
    assert "Next:" in built.output and "models/fixes/_fixes__models.yml" in built.output
    project_after = (built.project / "dbt_project.yml").read_text()
    assert added_lines(built.project_before, project_after) == [
        "    - fix_drop_debug_info",
        "    - fix_noop_placeholder",
    ]
    yml_added = added_lines(
        built.yml_before, (built.project / "models/fixes/_fixes__models.yml").read_text()
    )
    assert "  - name: fix_drop_debug_info" in yml_added
    assert "  - name: test_fix_noop_placeholder" in yml_added
    sql = (built.project / "models/fixes/fix_noop_placeholder.sql").read_text()
    assert "{{ fix_input() }}" in sql and "* replace (" in sql


def test_scaffolded_fixes_build_with_their_unit_tests(built):
    assert built.build.returncode == 0, built.build.stdout
    for test in ("test_fix_drop_debug_info", "test_fix_noop_placeholder"):
        assert any(test in line and "PASS" in line for line in built.build.stdout.splitlines()), (
            test
        )


def test_a_fix_that_changes_no_row_fails_a_warning_test(built):
    warned = [
        line
        for line in built.build.stdout.splitlines()
        if "assert_every_fix_changes_some_rows" in line and "WARN" in line
    ]
    assert warned, built.build.stdout
    assert query(built.warehouse, "select fix_name from fix_summary where rows_changed = 0") == [
        ("fix_noop_placeholder",)
    ]


def test_fix_summary_counts_the_rows_each_fix_changed(built):
    summary = {
        row[0]: row[1:]
        for row in query(
            built.warehouse,
            "select fix_name, fix_position, rows_changed, rows_changed_replayed, rows_skipped, "
            "columns_changed from fix_summary",
        )
    }
    [(with_debug_info,)] = query(
        built.warehouse,
        "select count(*) from int_events__classified "
        "where json_exists(custom_attributes, '$.debug_info')",
    )
    [(misspelled,)] = query(
        built.warehouse,
        "select count(*) from int_events__classified where event_name = 'Chekout Complete'",
    )
    [(promo,)] = query(
        built.warehouse,
        "select count(*) from int_events__classified "
        "where event_name = 'promo_banner_click' and skip_reason is null",
    )
    assert (with_debug_info, misspelled, promo) == (73, 24, 72)
    assert summary["fix_rename_checkout_event"] == (1, misspelled, misspelled, 0, ["event_name"])
    assert summary["fix_skip_promo_banner_clicks"] == (3, promo, 0, promo, ["skip_reason"])
    assert summary["fix_drop_debug_info"][:2] == (4, with_debug_info)
    assert summary["fix_drop_debug_info"][4] == ["custom_attributes"]
    assert summary["fix_noop_placeholder"] == (5, 0, 0, 0, [])
    assert query(
        built.warehouse,
        "select count(*) from int_events__fixed "
        "where json_exists(custom_attributes, '$.debug_info')",
    ) == [(0,)]


def test_every_replay_row_lists_the_fixes_that_changed_it(built):
    rows = query(
        built.warehouse,
        """
        select replay.event_name, classified.event_name, classified.custom_event_type,
            replay.fixes_applied
        from replay_events as replay
        inner join int_events__classified as classified using (replay_key)
        """,
    )
    assert len(rows) == 99
    for event_name, original_name, original_type, fixes_applied in rows:
        expected = []
        if original_name == "Chekout Complete":
            expected.append("fix_rename_checkout_event")
        if original_name == "Search" and original_type == "other":
            expected.append("fix_search_custom_event_type")
        assert fixes_applied == expected, (original_name, fixes_applied)
        assert event_name != "Chekout Complete"


def test_the_fix_chain_columns_lint_expects_are_the_warehouses(built):
    manifest = json.loads((built.warehouse.parent / "dbt/target/manifest.json").read_text())
    documented = list(
        manifest["nodes"]["model.mparticle_backfill.int_events__classified"]["columns"]
    )
    actual = [
        name
        for (name,) in query(
            built.warehouse,
            "select column_name from duckdb_columns() "
            "where table_name = 'int_events__classified' order by column_index",
        )
    ]
    assert documented == actual


def test_key_test_fails_and_names_each_fix_that_breaks_the_chain(tmp_path, data):
    project = copy_project(tmp_path / "project")
    breakages = {
        "shift_time": "timestamp_unixtime_ms + 1 as timestamp_unixtime_ms",
        "rekey_user": "'someone else' as user_key",
        "rekey_event": (
            "case when event_name = 'Search' then replay_key || '!' else replay_key end"
            " as replay_key"
        ),
    }
    for name, change in breakages.items():
        scaffold(project, name)
        edit(project / f"models/fixes/fix_{name}.sql", NO_OP, change, after="* replace (")
    scaffold(project, "drop_searches")
    edit(
        project / "models/fixes/fix_drop_searches.sql",
        "select * from fixed",
        "select * from fixed where event_name is distinct from 'Search'",
        after="),\n    from events",
    )
    scaffold(project, "copy_events")
    edit(
        project / "models/fixes/fix_copy_events.sql",
        "select * from fixed",
        # copies of real events only: the scaffolded unit test's event is named TODO
        "select * from fixed union all (select * from fixed where event_name <> 'TODO' limit 3)",
        after="),\n    from events",
    )
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(data, warehouse)

    result = run_dbt(warehouse, "build", project_dir=project, check=False)

    assert result.returncode != 0
    assert any(
        "FAIL" in line and "assert_fixes_keep_keys_and_timestamps" in line
        for line in result.stdout.splitlines()
    ), result.stdout
    compiled = next((tmp_path / "dbt/target/compiled").rglob("assert_fixes_keep_keys*.sql"))
    problems = query(
        warehouse, f"select distinct fix_name, problem from ({compiled.read_text()}) order by all"
    )
    assert problems == [
        ("fix_copy_events", "event duplicated"),
        ("fix_drop_searches", "event removed (or its replay_key changed); set skip_reason instead"),
        ("fix_rekey_event", "event added (or its replay_key changed)"),
        ("fix_rekey_event", "event removed (or its replay_key changed); set skip_reason instead"),
        ("fix_rekey_user", "user_key changed"),
        ("fix_shift_time", "timestamp_unixtime_ms changed"),
    ]
    # what dbt prints names each fix and the rule it broke, with a count and an example
    for fix, problem in problems:
        assert re.search(
            rf"{fix}: {re.escape(problem)} - \d+ events?, e\.g\. \S+", result.stdout
        ), (fix, problem, result.stdout)


def test_new_fix_refuses_bad_names_duplicates_and_leaves_files_alone(tmp_path):
    project = copy_project(tmp_path / "project")
    before = (project / "dbt_project.yml").read_text()
    with pytest.raises(ScaffoldError, match="not a fix name"):
        new_fix(project, "Rename Checkout")
    with pytest.raises(ScaffoldError, match="already in var 'fixes'"):
        new_fix(project, "rename_checkout_event")
    (project / "models/fixes/fix_orphan.sql").write_text("select 1")
    with pytest.raises(ScaffoldError, match="already exists"):
        new_fix(project, "orphan")
    assert (project / "dbt_project.yml").read_text() == before

    result = runner.invoke(app, ["new-fix", "bad-name", "--project-dir", str(project)])
    assert result.exit_code == 2
    assert "not a fix name" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vars:\n  fixes: []\n", "vars:\n  fixes: [fix_new]\n"),
        (
            "vars:\n  fixes: [a, b]  # order\nx: 1\n",
            "vars:\n  fixes: [a, b, fix_new]  # order\nx: 1\n",
        ),
        (
            "vars:\n  # the chain\n  fixes:\n    - a  # first\n    # b is off\n  other: 1\n",
            "vars:\n  # the chain\n  fixes:\n    - a  # first\n    - fix_new\n    # b is off\n"
            "  other: 1\n",
        ),
        ("vars:\n  fixes:\n  other: 1\n", "vars:\n  fixes:\n    - fix_new\n  other: 1\n"),
    ],
)
def test_appending_to_the_chain_edits_only_the_list(text, expected):
    assert append_to_chain(text, "fix_new") == expected
    assert chain_from_text(expected)[-1] == "fix_new"


def fixes_yml_project(tmp_path: Path, yml_text: str) -> Path:
    """A project whose chain is empty and whose fixes' YAML is `yml_text` (no dbt run)."""
    project = tmp_path / "project"
    (project / "models/fixes").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: p\nvars:\n  fixes: []\n")
    (project / "models/fixes/_fixes__models.yml").write_text(yml_text)
    return project


UNINDENTED = """\
version: 2
# the fixes, as PyYAML writes lists: items at the key's column
models:
- name: fix_a
  description: first   # why
unit_tests:
- name: test_fix_a
  model: fix_a
  given: []
  expect:
    rows: []
# after the tests
"""


def test_new_fix_adds_to_lists_written_at_the_keys_column_keeping_comments(tmp_path):
    project = fixes_yml_project(tmp_path, UNINDENTED)
    yml = project / "models/fixes/_fixes__models.yml"

    created = new_fix(project, "b")

    after = yml.read_text()
    assert created.layout_kept
    added = added_lines(UNINDENTED, after)
    assert "- name: fix_b" in added and "- name: test_fix_b" in added  # at the key's column
    assert "# after the tests" in after and "description: first   # why" in after
    document = yaml.safe_load(after)
    assert [m["name"] for m in document["models"]] == ["fix_a", "fix_b"]
    assert [t["name"] for t in document["unit_tests"]] == ["test_fix_a", "test_fix_b"]
    assert document["unit_tests"][1]["given"][0]["input"] == "ref('int_events__classified')"

    remove_fix(project, "b")
    assert yml.read_text() == UNINDENTED


def test_new_fix_rewrites_a_layout_it_cannot_add_lines_to_and_says_so(tmp_path):
    text = "version: 2\nmodels: [{name: fix_a, description: first}]  # flow\nunit_tests: []\n"
    project = fixes_yml_project(tmp_path, text)

    result = runner.invoke(app, ["new-fix", "b", "--project-dir", str(project)])

    assert result.exit_code == 0, result.output
    assert "its comments are gone, its data is the same" in " ".join(result.output.split())
    document = yaml.safe_load((project / "models/fixes/_fixes__models.yml").read_text())
    assert document["models"][0] == {"name": "fix_a", "description": "first"}
    assert [m["name"] for m in document["models"]] == ["fix_a", "fix_b"]
    assert [t["name"] for t in document["unit_tests"]] == ["test_fix_b"]


def test_new_fix_refuses_a_fixes_yaml_that_is_not_yaml_naming_the_file(tmp_path):
    project = fixes_yml_project(tmp_path, "models: [unclosed\n")
    with pytest.raises(ScaffoldError, match="_fixes__models.yml is not a valid dbt properties"):
        new_fix(project, "b")
    assert not (project / "models/fixes/fix_b.sql").exists()
