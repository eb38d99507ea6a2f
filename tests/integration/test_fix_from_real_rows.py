"""The whole loop of writing a fix from real rows, on a small warehouse built here:
`loader new-fix --rows` (pseudonymized given rows), write the fix, `loader fix-test
--accept`, `loader lint` clean, `dbt build` green."""

from __future__ import annotations

import shutil
import time
from types import SimpleNamespace

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from loader.cli import app
from loader.fixes.fixture_values import Pseudonyms, fixture_value, json_text, parse_json
from loader.ingest.importer import ingest
from loader.ingest.samples import generate
from tests.conftest import query, run_dbt
from tests.integration.test_new_fix import copy_project, edit
from tests.quarantine import example_batch, write_file

runner = CliRunner()
EMAIL, IP, PHONE = "jane.doe@corp.test", "203.0.113.77", "+44 20 7946 0958"


def pii_batch(now_ms: int) -> dict:
    """The example batch, an hour old, its blocked events carrying personal data."""
    batch = example_batch(now_ms - 3_600_000)
    for event in batch["events"]:
        event["data"]["custom_attributes"] = {
            "Test": "value",
            "email": EMAIL,
            "$FirstName": "Jane",
            "ip_address": IP,
            "contact": PHONE,
            "big_id": 12345678901234567890123,
        }
    return batch


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-rows")
    generate(folder / "quarantine", 80, seed=5)
    write_file(
        folder / "quarantine" / "pii_20261201_00001.txt", [pii_batch(int(time.time() * 1000))]
    )
    warehouse = folder / "backfill.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ingest(con, [str(folder / "quarantine")])
    run_dbt(warehouse, "build")
    project = copy_project(folder / "project")
    env = {"BACKFILL_DUCKDB": str(warehouse)}
    created = runner.invoke(
        app,
        ["new-fix", "drop_pii", "--rows", "event_name like 'blocked navigation%'",
         "--project-dir", str(project)],
        env=env,
    )  # fmt: skip
    yml = project / "models/fixes/_fixes__models.yml"
    after_new_fix = yml.read_text()
    lint_before = runner.invoke(app, ["lint", "--project-dir", str(project)], env=env)
    edit(
        project / "models/fixes/fix_drop_pii.sql",
        "event_name as event_name",
        "{{ drop_attributes(['email', '$FirstName', 'ip_address', 'contact']) }}",
        after="* replace (",
    )
    sql = project / "models/fixes/fix_drop_pii.sql"
    sql.write_text(sql.read_text().replace("TODO say what", "said what", 1))
    edit(yml, "TODO: the symptom", "Personal data in attributes:", after="name: fix_drop_pii")
    shown = runner.invoke(app, ["fix-test", "drop_pii", "--project-dir", str(project)], env=env)
    accepted = runner.invoke(
        app, ["fix-test", "drop_pii", "--accept", "--project-dir", str(project)], env=env
    )
    again = runner.invoke(app, ["fix-test", "drop_pii", "--project-dir", str(project)], env=env)
    lint_after = runner.invoke(app, ["lint", "--project-dir", str(project)], env=env)
    built = folder / "built.duckdb"
    shutil.copy(warehouse, built)
    build = run_dbt(built, "build", project_dir=project, check=False)
    return SimpleNamespace(**locals())


def test_new_fix_copies_matching_rows_and_one_to_leave_alone(loop):
    assert loop.created.exit_code == 0, loop.created.output
    test = next(
        t
        for t in yaml.safe_load(loop.after_new_fix)["unit_tests"]
        if t["name"] == "test_fix_drop_pii"
    )
    rows = test["given"][0]["rows"]
    names = [row["event_name"] for row in rows]
    # rows come in replay_key order, a hash: which navigation event is first is arbitrary
    assert sorted(names[:2]) == ["blocked navigation event 1", "blocked navigation event 2"]
    assert len(rows) == 3 and not names[2].startswith("blocked navigation")
    assert set(rows[0]) == {
        "replay_key", "event_type", "event_name", "custom_event_type", "custom_attributes",
        "skip_reason",
    }  # fmt: skip
    attributes = parse_json(rows[0]["custom_attributes"])
    assert attributes["Test"] == "value" and attributes["big_id"] == 12345678901234567890123
    assert attributes["email"] == "person-1@example.com"
    assert attributes["ip_address"] == "192.0.2.2"
    assert attributes["$FirstName"].startswith("redacted-")
    assert attributes["contact"].startswith("+1-555-01")
    assert rows[0]["custom_attributes"] == json_text(attributes)  # compact, members sorted


def test_no_identity_of_the_warehouse_appears_in_the_yaml(loop):
    identities = {
        str(value)
        for (value,) in query(
            loop.warehouse,
            """
            select distinct unnest([replay_key, user_key, mpid, batch_key, event_id, source_file])
            from int_events__classified
            union
            select distinct unnest(json_extract_string(json(user_identities), '$.*'))
            from stg_quarantine__batches
            union
            select distinct unnest(json_extract_string(json(device_info), '$.*'))
            from stg_quarantine__batches
            """,
        )
        if value is not None and len(str(value)) > 4
    } | {EMAIL, IP, PHONE, "Jane"}
    text = loop.yml.read_text()
    assert len(identities) > 50
    assert [value for value in identities if value in text] == []


def test_fix_test_shows_the_diff_then_records_the_output(loop):
    assert loop.lint_before.exit_code == 1  # the expect's TODO until accepted
    assert "unit test test_fix_drop_pii still holds the TODOs" in loop.lint_before.stdout
    assert loop.shown.exit_code == 1, loop.shown.output
    assert "-        # TODO: write the fix" in loop.shown.stdout
    assert "--accept` to record it" in loop.shown.stdout
    assert loop.accepted.exit_code == 0, loop.accepted.output
    assert "(2 row(s) changed)" in loop.accepted.stdout
    assert loop.again.exit_code == 0 and "are the fix's output" in loop.again.stdout
    test = next(
        t
        for t in yaml.safe_load(loop.yml.read_text())["unit_tests"]
        if t["name"] == "test_fix_drop_pii"
    )
    given, expect = test["given"][0]["rows"], test["expect"]["rows"]
    assert parse_json(expect[0]["custom_attributes"]) == {
        "Test": "value",
        "big_id": 12345678901234567890123,
    }
    assert expect[2] == given[2]  # the row the fix leaves alone


def test_the_loop_ends_lint_clean_and_dbt_green(loop):
    assert loop.lint_after.exit_code == 0, loop.lint_after.stdout
    assert loop.build.returncode == 0, loop.build.stdout
    assert any(
        "PASS" in line and "test_fix_drop_pii" in line for line in loop.build.stdout.splitlines()
    ), loop.build.stdout
    assert query(
        loop.built,
        "select count(*) from int_events__fixed where json_exists(custom_attributes, '$.email')",
    ) == [(0,)]


def test_pseudonyms_are_stable_within_a_fixture():
    names = Pseudonyms()
    first = fixture_value("custom_attributes", '{"email": "a@b.io", "n": 1}', names)
    second = fixture_value("custom_attributes", '{"n": 1, "email": "a@b.io"}', names)
    assert first == second == '{"email":"person-1@example.com","n":1}'
    assert fixture_value("mpid", "-8934702931040193024", names) == "1000000000000000001"
    assert fixture_value("user_key", "mpid:42", names) == "user-key-1"
    assert fixture_value("event_name", "Search", names) == "Search"
