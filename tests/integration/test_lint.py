"""`loader lint`: every rule fails on an example fix, at the right file:line:col of the
source (macro output maps to the macro call); the project's own fixes pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from loader.cli import app
from loader.fixes.lint_compile import compile_problems
from loader.fixes.lint_rules import CompiledFix, SourceMap, lint_fix
from loader.fixes.scaffold import append_to_chain
from tests.conftest import ROOT
from tests.demo import DEMO_FIXES
from tests.integration.test_new_fix import copy_project

# Each example fix, and the problems lint must report for it (path:line:col: message).
EXAMPLES = {
    "fix_two_statements": (
        "-- two statements\nselect * from {{ fix_input() }};\nselect 1\n",
        ["3:1: a fix is exactly one SELECT; found 2 statements"],
    ),
    "fix_ddl": (
        "create table copy_of_events as\nselect * from {{ fix_input() }}\n",
        ["1:1: no DDL or DML in a fix (CREATE); a fix is one SELECT"],
    ),
    "fix_trailing_semicolon": (
        "select * from {{ fix_input() }};\n",
        ["1:32: remove the ';': dbt wraps the fix's SELECT itself"],
    ),
    "fix_reads_files": (
        "with events as (\n"
        "    select * from {{ fix_input() }}\n"
        "),\n\n"
        "extra as (\n"
        "    select * from read_json('extra.json')\n"
        "),\n\n"
        "remote as (select * from 'https://example.com/x.csv'),\n"
        "numbers as (select * from range(10)),\n"
        "raw as (select * from {{ source('quarantine', 'quarantine_lines') }})\n\n"
        "select * from events\n",
        [
            "6:19: reads read_json(): a fix reads only ref()s (its input is {{ fix_input() }})",
            "9:26: reads 'https://example.com/x.csv' (a file or URL): a fix reads only ref()s",
            "10:27: reads range(): a fix reads only ref()s (its input is {{ fix_input() }})",
            "11:23: reads source quarantine_lines: a fix reads only ref()s",
        ],
    ),
    "fix_skips_the_chain": (
        "select * from {{ ref('int_events__classified') }}\n",
        [
            "1:1: does not read its place in the chain: select from {{ fix_input() }} "
            "(here ref('fix_reads_files'))"
        ],
    ),
    "fix_drops_and_adds_columns": (
        "-- drops two chain columns, adds one\n"
        "select * exclude (skip_reason, user_attributes), 1 as helper\n"
        "from {{ fix_input() }}\n",
        [
            "2:1: adds helper, not a chain column (the chain's columns are those of "
            "int_events__classified)",
            "2:1: drops user_attributes, skip_reason: a fix returns every chain column "
            "(use select * replace (...) to change one)",
        ],
    ),
    "fix_changes_the_keys": (
        "with events as (\n"
        "    select * from {{ fix_input() }}\n"
        ")\n\n"
        "select\n"
        "    * replace (\n"
        "        'x' || replay_key as replay_key,\n"
        "        timestamp_unixtime_ms + 1 as timestamp_unixtime_ms\n"
        "    ),\n"
        "from events\n",
        [
            "7:9: replay_key must pass through unchanged: a fix never changes the replay key, "
            "the user key or the original timestamp",
            "8:9: timestamp_unixtime_ms must pass through unchanged: a fix never changes the "
            "replay key, the user key or the original timestamp",
        ],
    ),
    "fix_unknown_columns": (
        "with events as (\n"
        "    select * from {{ fix_input() }}\n"
        ")\n\n"
        "select\n"
        "    * replace (\n"
        "        case when evnt_name = 'a' then 'b' else event_name end as event_name\n"
        "    ),\n"
        "from events\n"
        "where events.colour = 'red'\n",
        ["7:19: unknown column evnt_name", "10:7: unknown column events.colour"],
    ),
    "fix_unknown_column_in_a_macro": (
        "with events as (\n"
        "    select * from {{ fix_input() }}\n"
        ")\n\n"
        "select\n"
        "    * replace (\n"
        "        {{ rename_event('a', 'b', where=\"evnt_type = 'custom_event'\") }}\n"
        "    ),\n"
        "from events\n",
        ["7:9: unknown column evnt_type"],
    ),
    "fix_using_every_macro": (
        "with events as (\n"
        "    select * from {{ fix_input() }}\n"
        "),\n"
        "a as (select * replace ({{ rename_event('A', 'B', where=\"event_type = 'x'\") }}), "
        "from events),\n"
        "b as (select * replace "
        "({{ set_custom_event_type('search', where=\"event_name = 'S'\") }}), from a),\n"
        "c as (select * replace ({{ skip_events(\"event_name = 'x'\", 'why') }}), from b),\n"
        "d as (select * replace ({{ rename_attribute('o/l~d', 'new') }}), from c),\n"
        "e as (select * replace ({{ drop_attributes(['x', 'y']) }}), from d),\n"
        "f as (select * replace ({{ cast_attribute('p', 'number') }}), from e),\n"
        "g as (select * replace ({{ cast_attribute('p', 'boolean') }}), from f),\n"
        "h as (select * replace ({{ map_attribute('t', values={'a': 1, 'b': none}) }}), from g),\n"
        "i as (select * replace ({{ map_attribute('t', expression='upper(value)') }}), from h),\n"
        "j as (select * replace ({{ move_attribute_to_user_attributes('lt') }}), from i),\n"
        "k as (select * replace ({{ move_user_attribute_to_event('lt', to='x') }}), from j),\n"
        "l as (select * exclude (mpid), mpid, from k)\n\n"
        "select * from l\n",
        [],
    ),
    "fix_plain_sql_with_a_lookup": (
        "with events as (\n"
        "    select * from {{ fix_input() }}\n"
        "),\n\n"
        "known_types as (\n"
        "    select event_type from {{ ref('events_api_event_types') }}\n"
        ")\n\n"
        "select\n"
        "    * replace (\n"
        "        case when event_type in (select event_type from known_types) then skip_reason\n"
        "            else coalesce(skip_reason, 'fix:fix_plain_sql_with_a_lookup: unknown type')\n"
        "        end as skip_reason\n"
        "    ),\n"
        "from events\n"
        "where known_types.descr is null or true\n",
        ["16:7: unknown column known_types.descr"],
    ),
}
OWN_FIXES = DEMO_FIXES["fixes"]  # the demo's fixes, the copy's own, first in its chain


@pytest.fixture(scope="module")
def linted(tmp_path_factory):
    """`loader lint` on a copy of the project with every example appended to the chain."""
    project = copy_project(tmp_path_factory.mktemp("lint") / "project")
    chain_file = project / "dbt_project.yml"
    text = chain_file.read_text()
    for name, (sql, _) in EXAMPLES.items():
        (project / f"models/fixes/{name}.sql").write_text(sql)
        text = append_to_chain(text, name)
    chain_file.write_text(text)
    (project / "models/fixes/stray.sql").write_text("select 1\n")
    result = CliRunner().invoke(app, ["lint", "--project-dir", str(project)])
    return result


def problems_of(output: str, name: str) -> list[str]:
    prefix = f"models/fixes/{name}.sql:"
    return sorted(line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix))


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_each_rule_fails_at_the_right_file_line_col(linted, name):
    assert problems_of(linted.stdout, name) == sorted(EXAMPLES[name][1])


def test_lint_exits_1_and_passes_the_projects_own_fixes(linted):
    assert linted.exit_code == 1
    assert OWN_FIXES == [
        "fix_rename_checkout_event",
        "fix_search_custom_event_type",
        "fix_skip_promo_banner_clicks",
    ]
    for name in OWN_FIXES:
        assert problems_of(linted.stdout, name) == []
    fixes = len(OWN_FIXES) + len(EXAMPLES)
    assert linted.stdout.splitlines()[-1].endswith(f"problem(s) in the fix chain ({fixes} fixes)")


def test_a_file_in_models_fixes_outside_the_chain_is_reported(linted):
    assert problems_of(linted.stdout, "stray") == [
        "1:1: not in var 'fixes' in dbt_project.yml: it is not applied; add it to the chain "
        "or move it out of models/fixes"
    ]


def test_a_fix_dbt_cannot_compile_is_reported_on_its_file(tmp_path):
    project = copy_project(tmp_path / "project")
    chain_file = project / "dbt_project.yml"
    chain_file.write_text(append_to_chain(chain_file.read_text(), "fix_broken"))
    (project / "models/fixes/fix_broken.sql").write_text(
        "select * from {{ fix_input() }}\n{{ no_such_macro() }}\n"
    )
    result = CliRunner().invoke(app, ["lint", "--project-dir", str(project)])
    assert result.exit_code == 1
    assert "models/fixes/fix_broken.sql:" in result.stdout
    assert "no_such_macro" in result.stdout


def test_a_custom_event_type_missing_from_the_seed_is_refused(tmp_path):
    project = copy_project(tmp_path / "project")
    chain_file = project / "dbt_project.yml"
    chain_file.write_text(append_to_chain(chain_file.read_text(), "fix_clicky"))
    (project / "models/fixes/fix_clicky.sql").write_text(
        "select * replace (\n"
        "    {{ set_custom_event_type('clicky', where=\"event_name = 'Tap'\") }}\n"
        ")\nfrom {{ fix_input() }}\n"
    )
    result = CliRunner().invoke(app, ["lint", "--project-dir", str(project)])
    assert result.exit_code == 1
    assert "models/fixes/fix_clicky.sql:" in result.stdout
    assert (
        "set_custom_event_type: 'clicky' is not a custom_event_type; use one of attribution, "
        "location, media, navigation, other, search, social, transaction, user_content, "
        "user_preference"
    ) in " ".join(result.stdout.split())


# -- without dbt: what sqlglot must handle, and the position mapping -------------------

CHAIN_COLUMNS = [
    column["name"]
    for model in yaml.safe_load(
        (ROOT / "models/intermediate/_intermediate__models.yml").read_text()
    )["models"]
    if model["name"] == "int_events__classified"
    for column in model["columns"]
]
INPUT = '"w"."main"."int_events__classified"'


def compiled_fix(source: str, compiled: str | None = None) -> CompiledFix:
    return CompiledFix(
        name="fix_x",
        path="models/fixes/fix_x.sql",
        source=source,
        compiled=compiled if compiled is not None else source,
        input_relation="w.main.int_events__classified",
        refs={"w.main.int_events__classified": "int_events__classified"},
    )


def lint_sql(sql: str) -> list[str]:
    schemas = {"w.main.int_events__classified": CHAIN_COLUMNS}
    return [
        f"{p.line}:{p.col}: {p.message}"
        for p in lint_fix(compiled_fix(sql), schemas, CHAIN_COLUMNS)
    ]


def test_duckdb_syntax_the_fixes_use_passes():
    sql = f"""
with events as (
    select * from {INPUT}
),

by_user as (
    select user_key, count(*) as events_of_user,
    from events
    group by all
),

fixed as (
    select
        * exclude (event_age_days, events_of_user) replace (
            list_transform([event_name], lambda name: upper(name))[1] as event_name,
            case when custom_attributes->>'$.sku' like 'SKU-%'
                then json_merge_patch(custom_attributes, json_object('sku', null))
                else custom_attributes
            end as custom_attributes,
            coalesce(user_attributes, '{{}}'::json) as user_attributes,
        ),
        event_age_days,
    from events
    left join by_user using (user_key)
    where by_user.events_of_user > 0 or true
    qualify row_number() over (partition by replay_key order by timestamp_unixtime_ms) = 1
)

select * from fixed
"""
    assert lint_sql(sql) == [], lint_sql(sql)


def test_a_changed_key_hidden_in_a_cte_is_found():
    sql = f"""with events as (
    select * replace (user_key || '' as user_key) from {INPUT}
)
select * from events
"""
    assert lint_sql(sql) == [
        "2:23: user_key must pass through unchanged: a fix never changes the replay key, "
        "the user key or the original timestamp"
    ]


def test_positions_in_macro_output_map_to_the_macro_call():
    source = "select\n    {{ my_macro() }},\n    x\nfrom t\n"
    compiled = "select\n    case when a then b\n  else c end,\n    x\nfrom t\n"
    mapping = SourceMap(source, compiled)
    assert mapping.position(compiled.index("else c")) == (2, 5)  # the {{ of the call
    assert mapping.position(compiled.index("x\nfrom")) == (3, 5)
    assert mapping.position(compiled.index("from t")) == (4, 1)


def test_a_name_in_the_chain_without_a_model_is_reported(tmp_path):
    project = copy_project(tmp_path / "project")
    chain_file = project / "dbt_project.yml"
    chain_file.write_text(append_to_chain(chain_file.read_text(), "fix_ghost"))
    line = chain_file.read_text().splitlines().index("    - fix_ghost") + 1

    result = CliRunner().invoke(app, ["lint", "--project-dir", str(project)])

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"dbt_project.yml:{line}:7: var 'fixes' lists fix_ghost, but there is no model "
        "fix_ghost (expected models/fixes/fix_ghost.sql)",
        "1 problem(s) in the fix chain (4 fixes)",
    ]


def test_each_problem_and_the_summary_are_lines_of_their_own_in_a_shared_pipe(tmp_path):
    """`loader lint 2>&1 | less`: stdout is a pipe (block-buffered) shared with stderr; every
    problem is a line, and the summary is the last line, after them."""
    project = copy_project(tmp_path / "project")
    chain_file = project / "dbt_project.yml"
    chain_file.write_text(append_to_chain(chain_file.read_text(), "fix_ghost"))
    (project / "models/fixes/stray.sql").write_text("select 1\n")

    result = subprocess.run(
        [str(Path(sys.executable).parent / "loader"), "lint", "--project-dir", str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert sorted(line.split(":", 1)[0] for line in lines[:-1]) == [
        "dbt_project.yml",
        "models/fixes/stray.sql",
    ]
    assert lines[-1] == "2 problem(s) in the fix chain (4 fixes)"
    assert result.stdout.endswith("(4 fixes)\n")


def test_dbt_messages_split_between_stdout_and_stderr_stay_apart():
    """dbt may end stdout without a newline; its stderr must not run into that last line."""
    stdout = (
        "06:14:09  Encountered an error:\nRuntime Error\n"
        "  Compilation Error in model fix_a (models/fixes/fix_a.sql)\n"
        "    'nope' is undefined.\n06:14:09  \n"
        "  Compilation Error in model fix_b (models/fixes/fix_b.sql)\n    last words"
    )
    problems = compile_problems(f"{stdout}\nerror: from stderr")
    assert [(p.path, p.message) for p in problems] == [
        (
            "models/fixes/fix_a.sql",
            "dbt could not compile (Compilation Error): 'nope' is undefined.",
        ),
        (
            "models/fixes/fix_b.sql",
            "dbt could not compile (Compilation Error): last words error: from stderr",
        ),
    ]


def test_a_finding_is_printed_once_and_an_untouched_skeleton_fails(tmp_path):
    """A typo that a macro's output holds twice is one finding; a fix left as `loader
    new-fix` wrote it fails lint on each TODO part, saying what to fill in."""
    project = copy_project(tmp_path / "project")
    chain_file = project / "dbt_project.yml"
    chain_file.write_text(append_to_chain(chain_file.read_text(), "fix_typo"))
    (project / "models/fixes/fix_typo.sql").write_text(
        "with events as (\n"
        "    select * from {{ fix_input() }}\n"
        ")\n\n"
        "select\n"
        "    * replace (\n"
        "        {{ move_attribute_to_user_attributes('x', where=\"evnt_name = 'a'\") }}\n"
        "    ),\n"
        "from events\n"
    )
    created = CliRunner().invoke(app, ["new-fix", "placeholder", "--project-dir", str(project)])
    assert created.exit_code == 0, created.output
    yml = (project / "models/fixes/_fixes__models.yml").read_text().splitlines()
    description_line = yml.index("  - name: fix_placeholder") + 3
    test_line = yml.index("  - name: test_fix_placeholder") + 1
    todo_lines = [n for n, line in enumerate(yml, 1) if "TODO" in line and n > test_line]

    result = CliRunner().invoke(app, ["lint", "--project-dir", str(project)])

    assert result.exit_code == 1
    *problems, summary = result.stdout.splitlines()
    assert problems == [
        f"models/fixes/_fixes__models.yml:{description_line}:7: the description of "
        "fix_placeholder is still the TODO of `loader new-fix`: write the symptom in the "
        "blocked data (the query that shows it) and what the fix changes",
        f"models/fixes/_fixes__models.yml:{todo_lines[0]}:18: unit test test_fix_placeholder "
        "still holds the TODOs of `loader new-fix` (lines "
        f"{', '.join(map(str, todo_lines))}): say what the fix must do, give rows as the fix "
        "receives them (one it changes, one it must leave alone) and the rows it must return",
        "models/fixes/fix_placeholder.sql:1:21: TODO left in the fix: say what was wrong with "
        "the blocked data and why this fix is right. Its `* replace (...)` is still the no-op "
        "`event_name as event_name`: put fix macros or SQL there (docs/fixes.md)",
        "models/fixes/fix_typo.sql:7:9: unknown column evnt_name",
    ]
    assert summary == "4 problem(s) in the fix chain (5 fixes)"
