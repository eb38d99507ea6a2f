"""Context fixes (var context_fixes) in a temp copy of the project, on hand-written
quarantine batches: the environment and a misspelled identity key are fixed, the batches
reach the emulator exactly as fixed, the lineage names the fix, and a context fix that
changes a user key input without saying so fails the build naming it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.push.destinations.events_api import Credentials
from loader.push.runner import PushOptions, push
from tests.conftest import query, run_dbt
from tests.integration.test_new_fix import copy_project
from tests.quarantine import example_batch, write_file

NOW_MS = 1_795_996_800_000
runner = CliRunner()

FIX_ENVIRONMENT = """-- Some batches said "Development": the Events API takes only lowercase.
with batches as (
    select * from {{ context_fix_input() }}
),

fixed as (
    select * replace ({{ set_environment('development', where="environment = 'Development'") }}),
    from batches
)

select * from fixed
"""
FIX_CUSTOMER_ID = """-- One app version sent customer_id as customerId.
{{ config(meta={'changes_identity': true}) }}
with batches as (
    select * from {{ context_fix_input() }}
),

fixed as (
    select * replace ({{ rename_identity('customerId', 'customer_id') }}),
    from batches
)

select * from fixed
"""
BREAKS_IDENTITY = """with batches as (
    select * from {{ context_fix_input() }}
),

fixed as (
    select * replace ({{ drop_identity('email') }}),
    from batches
)

select * from fixed
"""


def batches() -> list[dict]:
    development = example_batch(NOW_MS - 86_400_000, batch_id="101", environment="Development")
    misspelled = example_batch(NOW_MS - 86_400_000, batch_id="102")
    misspelled["user_identities"] = {"customerId": "c-42", "email": "a@example.com"}
    misspelled["mpid"] = None
    plain = example_batch(NOW_MS - 86_400_000, batch_id="103")
    return [development, misspelled, plain]


UNIT_TESTS = """version: 2
models: []
unit_tests:
  - name: test_cfix_customer_id
    model: cfix_customer_id
    given:
      - input: ref('stg_quarantine__batches')
        rows:
          - {batch_key: "b1", user_identities: '{"customerId": "c-42", "email": "a@example.com"}'}
          - {batch_key: "b2", user_identities: '{"customer_id": "c-7"}'}
    expect:
      rows:
        - {batch_key: "b1", user_identities: '{"email":"a@example.com","customer_id":"c-42"}'}
        - {batch_key: "b2", user_identities: '{"customer_id": "c-7"}'}
"""


def project_with(tmp_path: Path, fixes: dict[str, str]) -> Path:
    project = copy_project(tmp_path / "project")
    for name, sql in fixes.items():
        (project / "models" / "context_fixes" / f"{name}.sql").write_text(sql)
    if "cfix_customer_id" in fixes:  # the unit test docs/fixes.md shows
        (project / "models" / "context_fixes" / "_context_fixes__models.yml").write_text(UNIT_TESTS)
    settings = yaml.safe_load((project / "dbt_project.yml").read_text())
    settings["vars"]["context_fixes"] = list(fixes)
    (project / "dbt_project.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return project


@pytest.fixture
def ingested(tmp_path, monkeypatch) -> Path:
    warehouse = tmp_path / "backfill.duckdb"
    monkeypatch.setenv("BACKFILL_DUCKDB", str(warehouse))
    write_file(tmp_path / "q" / "batches.txt", batches())
    result = runner.invoke(app, ["ingest", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    return warehouse


def test_context_fixes_reach_the_emulator_exactly_as_fixed(ingested, tmp_path):
    project = project_with(
        tmp_path, {"cfix_environment": FIX_ENVIRONMENT, "cfix_customer_id": FIX_CUSTOMER_ID}
    )
    built = run_dbt(
        ingested, "build", dbt_vars={"replay_reference_time_ms": NOW_MS}, project_dir=project
    )
    assert "test_cfix_customer_id" in built.stdout  # the unit test ran (and passed)
    lineage = query(
        ingested,
        "select batch_key, fix_name, changed_columns from int_batches__context_fix_changes "
        "order by fix_position, batch_key",
    )
    assert [(fix, columns) for _, fix, columns in lineage] == [
        ("cfix_environment", ["environment"]),
        ("cfix_customer_id", ["user_identities"]),
    ]
    [(risk,)] = query(
        ingested,
        "select distinct identity_risk from replay_events where batch_id = ?",
        [lineage[1][0]],
    )
    assert risk == "low"  # customer_id is a login identity once the key is right

    config = EmulatorConfig(api_key="key", api_secret="s3cret")
    with running_emulator(config) as emu:
        report = push(
            ingested,
            tmp_path / "ledger.duckdb",
            PushOptions(endpoint=emu.base_url),
            Credentials("key", "s3cret"),
        )
        accepted = emu.accepted()
    assert report.ok and report.events_rejected_locally == 0, report.local_rejections
    by_batch = {}
    for batch in accepted:
        identities = batch.get("user_identities") or {}
        by_batch[(batch["environment"], tuple(sorted(identities)))] = batch
    assert ("development", ("customer_id", "email")) in by_batch
    fixed = by_batch[("development", ("customer_id", "email"))]
    assert set(b["environment"] for b in accepted) == {"development"}
    assert any(
        b["user_identities"] == {"customer_id": "c-42", "email": "a@example.com"} for b in accepted
    )
    [(replayed,)] = query(ingested, "select count(*) from replay_events")
    assert sum(len(b["events"]) for b in accepted) == replayed == 6
    contexts = {
        orjson.dumps(orjson.loads(c), option=orjson.OPT_SORT_KEYS)
        for (c,) in query(ingested, "select batch_context::varchar from replay_events")
    }
    for batch in accepted:
        context = {k: v for k, v in batch.items() if k not in ("events", "source_request_id")}
        assert orjson.dumps(context, option=orjson.OPT_SORT_KEYS) in contexts
    assert fixed


def test_a_context_fix_changing_identity_unannounced_fails_the_build(ingested, tmp_path):
    project = project_with(tmp_path, {"cfix_breaks_identity": BREAKS_IDENTITY})
    result = run_dbt(
        ingested,
        "build",
        dbt_vars={"replay_reference_time_ms": NOW_MS},
        project_dir=project,
        check=False,
    )
    assert result.returncode != 0
    assert "cfix_breaks_identity: user_identities changed: a user key input" in result.stdout


def test_lint_checks_context_fixes_and_names_the_one_that_breaks_a_key(tmp_path):
    good = project_with(
        tmp_path / "good",
        {"cfix_environment": FIX_ENVIRONMENT, "cfix_customer_id": FIX_CUSTOMER_ID},
    )
    result = runner.invoke(app, ["lint", "--project-dir", str(good)])
    assert result.exit_code == 0, result.output
    assert "5 fixes checked: no problems" in result.stdout

    bad = project_with(tmp_path / "bad", {"cfix_breaks_identity": BREAKS_IDENTITY})
    result = runner.invoke(app, ["lint", "--project-dir", str(bad)])
    assert result.exit_code == 1
    assert (
        "models/context_fixes/cfix_breaks_identity.sql:6:" in result.stdout
        and "user_identities must pass through unchanged: a context fix never changes"
        in result.stdout
    ), result.stdout


def test_new_fix_context_scaffolds_a_skeleton_that_builds_and_lint_flags(ingested, tmp_path):
    project = copy_project(tmp_path / "project")
    result = runner.invoke(
        app, ["new-fix", "--context", "environment", "--project-dir", str(project)]
    )
    assert result.exit_code == 0, result.output
    sql = project / "models" / "context_fixes" / "context_fix_environment.sql"
    assert sql.exists() and "context_fix_input()" in sql.read_text()
    settings = yaml.safe_load((project / "dbt_project.yml").read_text())
    assert settings["vars"]["context_fixes"] == ["context_fix_environment"]
    assert settings["vars"]["fixes"]  # the event chain is untouched
    models = yaml.safe_load(
        (project / "models" / "context_fixes" / "_context_fixes__models.yml").read_text()
    )
    assert [t["name"] for t in models["unit_tests"]] == ["test_context_fix_environment"]
    # the skeleton is a no-op: it builds, its unit test passes, nothing changes
    run_dbt(ingested, "build", dbt_vars={"replay_reference_time_ms": NOW_MS}, project_dir=project)
    assert query(ingested, "select count(*) from int_batches__context_fix_changes") == [(0,)]
    # and lint says it is unfinished
    result = runner.invoke(app, ["lint", "--project-dir", str(project)])
    assert result.exit_code == 1
    assert "models/context_fixes/context_fix_environment.sql:1:" in result.stdout


def test_remove_fix_context_undoes_new_fix_byte_for_byte(tmp_path):
    project = copy_project(tmp_path / "project")
    files = [
        project / "dbt_project.yml",
        project / "models" / "context_fixes" / "_context_fixes__models.yml",
    ]
    before = [path.read_bytes() for path in files]
    args = ["--context", "environment", "--project-dir", str(project)]
    assert runner.invoke(app, ["new-fix", *args]).exit_code == 0
    assert [path.read_bytes() for path in files] != before
    result = runner.invoke(app, ["remove-fix", *args])
    assert result.exit_code == 0, result.output
    assert "removed context_fix_environment from var context_fixes" in result.stdout
    assert [path.read_bytes() for path in files] == before
    assert not (project / "models" / "context_fixes" / "context_fix_environment.sql").exists()
