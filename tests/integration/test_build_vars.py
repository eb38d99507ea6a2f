"""dbt vars are checked once, at the start of `dbt build`: a mistyped value stops the build
with a message naming the var, and a mistyped name is reported instead of ignored."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from loader.cli import app
from tests.conftest import ROOT, query, run_dbt
from tests.quarantine import example_batch, write_file

NOW_MS = 1_764_000_000_000


@pytest.fixture
def ingested(tmp_path, warehouse):
    write_file(tmp_path / "q.txt", [example_batch(NOW_MS - 86_400_000)])
    assert CliRunner().invoke(app, ["ingest", str(tmp_path / "q.txt")]).exit_code == 0
    return warehouse


def built_models(warehouse) -> list[str]:
    return [name for (name,) in query(warehouse, "select table_name from duckdb_tables()")]


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        (
            {"max_event_age_days": "7d"},
            "var max_event_age_days must be a whole number of days from 0 to 100000, not '7d'",
        ),
        (
            {"warn_event_age_days": -1},
            "var warn_event_age_days must be a whole number of days from 0 to 100000, not '-1'",
        ),
        (
            {"exclude_high_risk_users": "yes_please"},
            "var exclude_high_risk_users must be true or false, not 'yes_please'",
        ),
        (
            {"replay_attribute_only_events": 1},
            "var replay_attribute_only_events must be true or false, not '1'",
        ),
        (
            {"replay_reference_time_ms": "2026-11-24"},
            "var replay_reference_time_ms must be null (now) or a Unix time in milliseconds "
            "from 0 to 253402300799999, not '2026-11-24'",
        ),
        (
            {"login_identity_types": "customer_id"},
            "var login_identity_types must be a list of user identity type names, "
            "not 'customer_id'",
        ),
        (
            {"fixes": "fix_rename_checkout_event"},
            "var fixes must be a list of fix model names, not 'fix_rename_checkout_event'",
        ),
        (  # a direct destination's own vars are checked when it is built
            {
                "amplitude_user_id_identity": "customer_id'; drop",
                "direct_destinations": ["amplitude"],
            },
            "var amplitude_user_id_identity must be a user identity type name",
        ),
        (
            {"amplitude_min_id_length": 0, "direct_destinations": ["amplitude"]},
            "var amplitude_min_id_length must be a whole number from 1 to 1000, not '0'",
        ),
        (
            {"direct_destinations": ["amplitude", "braze"]},
            "var direct_destinations: braze is not a direct destination (no models in "
            "models/destinations/braze/)",
        ),
        (
            {"direct_destinations": "amplitude"},
            "var direct_destinations must be a list of direct destination names (folders of "
            "models/destinations/), not 'amplitude'",
        ),
        (
            {"dev_sample_users_pct": 0},
            "var dev_sample_users_pct must be null (every user) or a percentage of users "
            "greater than 0 and at most 100, such as 1 or 0.5, not '0'",
        ),
        (
            {"dev_sample_users_pct": "ten"},
            "var dev_sample_users_pct must be null (every user) or a percentage of users "
            "greater than 0 and at most 100, such as 1 or 0.5, not 'ten'",
        ),
        (
            {"expected_send_rate_batches_per_s": 0},
            "var expected_send_rate_batches_per_s must be a number of batches per second "
            "greater than 0 and at most 100000, such as 250, not '0'",
        ),
        (
            {"data_plan_policy": "dorp"},
            "var data_plan_policy must be keep, drop or set, not 'dorp'",
        ),
        (
            {
                "data_plan_policy": "set",
                "data_plan_override": {"plan_id": "p", "plan_version": "v2"},
            },
            "var data_plan_override.plan_version must be a whole number or null, not 'v2'",
        ),
    ],
)
def test_a_mistyped_var_stops_the_build_before_any_model(ingested, dbt_vars, message):
    result = run_dbt(ingested, "build", dbt_vars=dbt_vars, check=False)

    assert result.returncode != 0
    assert message in result.stdout, result.stdout
    assert "Parser Error" not in result.stdout and "Binder Error" not in result.stdout
    assert "replay_events" not in built_models(ingested)


def test_a_var_name_close_to_a_known_one_is_reported(ingested):
    result = run_dbt(
        ingested,
        "build",
        dbt_vars={"max_event_age_day": 7, "replay_reference_time_ms": NOW_MS, "my_own_var": 1},
    )

    assert (
        "var max_event_age_day is not a var of this project (did you mean max_event_age_days?); "
        "it is ignored" in result.stdout
    ), result.stdout
    assert "my_own_var" not in result.stdout
    assert query(ingested, "select max_event_age_days from replay_build_settings") == [(30,)]


def test_the_checked_vars_are_the_projects():
    project_vars = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
    macro = (ROOT / "macros/project_vars.sql").read_text()
    checked = macro.split("{% set project_var_kinds = {", 1)[1].split("} %}", 1)[0]
    names = [part.split(":")[0].strip().strip("'") for part in checked.split(",") if ":" in part]
    for properties in (ROOT / "models/destinations").glob("*/_*.yml"):  # their own vars
        for model in yaml.safe_load(properties.read_text())["models"]:
            names += model.get("config", {}).get("meta", {}).get("project_vars", {})
    assert sorted(names) == sorted(project_vars)
