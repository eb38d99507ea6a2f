"""`loader remove-fix`: the undo of `loader new-fix`, on a temp copy of the project."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from loader.cli import app
from loader.fixes.chain import chain_from_text, read_chain
from loader.fixes.scaffold import ScaffoldError, remove_fix, remove_from_chain
from tests.integration.test_new_fix import copy_project

runner = CliRunner()
MODELS_YML = "models/fixes/_fixes__models.yml"


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_new_fix_then_remove_fix_gives_back_the_same_files(tmp_path):
    project = copy_project(tmp_path / "project")
    project_before = (project / "dbt_project.yml").read_bytes()
    yml_before = (project / MODELS_YML).read_bytes()

    created = invoke("new-fix", "drop_debug_info", "--project-dir", str(project))
    assert created.exit_code == 0, created.output
    assert (project / "models/fixes/fix_drop_debug_info.sql").exists()

    removed = invoke("remove-fix", "drop_debug_info", "--project-dir", str(project))

    assert removed.exit_code == 0, removed.output
    assert not (project / "models/fixes/fix_drop_debug_info.sql").exists()
    assert (project / "dbt_project.yml").read_bytes() == project_before
    assert (project / MODELS_YML).read_bytes() == yml_before
    lines = removed.stdout.splitlines()
    assert lines == [
        "removed models/fixes/fix_drop_debug_info.sql",
        f"removed fix_drop_debug_info and its unit test test_fix_drop_debug_info from {MODELS_YML}",
        "removed fix_drop_debug_info from var fixes in dbt_project.yml (it was position 4 of 4)",
        "",
        "Next: `dbt build` (the replay set is rebuilt without it).",
    ]


def test_removing_a_fix_in_the_middle_keeps_the_others_and_every_comment(tmp_path):
    project = copy_project(tmp_path / "project")
    yml_path = project / MODELS_YML
    # a second unit test of the same fix, and a comment of the user's between entries
    yml_path.write_text(
        yml_path.read_text() + "\n  # the second test: a null event name stays null\n"
        "  - name: test_fix_search_custom_event_type_keeps_nulls\n"
        "    model: fix_search_custom_event_type\n"
        "    given:\n"
        "      - input: ref('int_events__classified')\n"
        "        rows:\n"
        "          - {replay_key: 'b1:1', event_name: null, custom_event_type: 'other'}\n"
        "    expect:\n"
        "      rows:\n"
        "        - {replay_key: 'b1:1', custom_event_type: 'other'}\n"
    )
    document_before = yaml.safe_load(yml_path.read_text())
    yml_comments = [line for line in yml_path.read_text().splitlines() if "#" in line]
    project_comments = [
        line for line in (project / "dbt_project.yml").read_text().splitlines() if "#" in line
    ]

    removed = remove_fix(project, "fix_search_custom_event_type")

    assert removed.unit_tests == [
        "test_fix_search_custom_event_type_sets_search_on_other_only",
        "test_fix_search_custom_event_type_keeps_nulls",
    ]
    assert read_chain(project) == ["fix_rename_checkout_event", "fix_skip_promo_banner_clicks"]
    document = yaml.safe_load(yml_path.read_text())
    assert document == {
        "version": 2,
        "models": [m for m in document_before["models"] if m["name"] != removed.model],
        "unit_tests": [t for t in document_before["unit_tests"] if t["model"] != removed.model],
    }
    assert [line for line in yml_path.read_text().splitlines() if "#" in line] == yml_comments
    assert [
        line for line in (project / "dbt_project.yml").read_text().splitlines() if "#" in line
    ] == project_comments
    assert "\n\n\n" not in yml_path.read_text()


def test_an_unknown_name_is_refused_and_nothing_changes(tmp_path):
    project = copy_project(tmp_path / "project")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}

    result = invoke("remove-fix", "no_such_fix", "--project-dir", str(project))

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert (
        "error: there is no fix fix_no_such_fix: not in var 'fixes' in dbt_project.yml, no "
        "models/fixes/fix_no_such_fix.sql, no entry in models/fixes/_fixes__models.yml. The "
        "fixes are fix_rename_checkout_event, fix_search_custom_event_type, "
        "fix_skip_promo_banner_clicks."
    ) in message
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before
    with pytest.raises(ScaffoldError, match="not a fix name"):
        remove_fix(project, "Bad Name")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vars:\n  fixes: [a, fix_x, b]  # order\n", "vars:\n  fixes: [a, b]  # order\n"),
        ("vars:\n  fixes: [fix_x]\nx: 1\n", "vars:\n  fixes: []\nx: 1\n"),
        (
            "vars:\n  fixes:\n    - a  # first\n    # b is off\n    - fix_x  # new\n  other: 1\n",
            "vars:\n  fixes:\n    - a  # first\n    # b is off\n  other: 1\n",
        ),
    ],
)
def test_removing_from_the_chain_edits_only_that_item(text, expected):
    assert remove_from_chain(text, "fix_x") == expected
    assert "fix_x" not in chain_from_text(expected)
