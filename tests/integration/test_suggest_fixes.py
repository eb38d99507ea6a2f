"""`loader suggest-fixes` on a small warehouse built here: a data plan with a misspelled
event and a wrong type, suggestions per blocked reason with their row counts, from the plan
and from the block metadata alone; accepting one writes a fix that `loader lint` accepts
and `dbt build` runs green, and the replay then passes the plan."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from typer.testing import CliRunner

from loader.audit.data_plan_check import check_replay_set, load_plan
from loader.audit.fix_suggestions import suggest_fixes
from loader.cli import app
from loader.ingest.importer import ingest
from tests.conftest import ROOT, query, run_dbt
from tests.integration.test_new_fix import copy_project
from tests.quarantine import write_file

runner = CliRunner()
PLANNED_ATTRIBUTES = {"sku": {"type": "string"}, "gift": {"type": "boolean"}}


def data_point(event_name: str, custom_event_type: str, attributes: dict) -> dict:
    return {
        "match": {
            "type": "custom_event",
            "criteria": {"event_name": event_name, "custom_event_type": custom_event_type},
        },
        "validator": {
            "type": "json_schema",
            "definition": {
                "properties": {
                    "data": {
                        "additionalProperties": True,
                        "properties": {
                            "custom_attributes": {
                                "additionalProperties": False,
                                "properties": attributes,
                                "type": "object",
                            }
                        },
                        "type": "object",
                    }
                }
            },
        },
    }


PLAN = {
    "data_plan_id": "shop",
    "version": 2,
    "version_document": {
        "data_points": [
            data_point("Checkout Complete", "transaction", PLANNED_ATTRIBUTES),
            data_point("Search", "search", {"query": {"type": "string"}}),
        ]
    },
}


def event(n: int, name: str, custom_event_type: str, attributes: dict, now_ms: int) -> dict:
    return {
        "event_type": "custom_event",
        "data": {
            "event_id": str(7_000_000_000_000_000_000 + n),
            "event_name": name,
            "custom_event_type": custom_event_type,
            "timestamp_unixtime_ms": str(now_ms - 3_600_000 + n),
            "custom_attributes": attributes,
        },
    }


def shop_batch(user: int, now_ms: int) -> dict:
    """One user's batch: what plan shop v1 let through and what it blocked."""
    n = user * 10
    events = [
        # let through: the planned event, and one that lost two attributes
        event(n, "Checkout Complete", "transaction", {"sku": f"S-{n}", "gift": True}, now_ms),
        event(n + 1, "Checkout Complete", "transaction", {"SKU": "S-1", "note": "x"}, now_ms),
        # blocked whole: a misspelled name (with gift sent as 1, not a boolean), the
        # planned name with another custom_event_type, an event nothing plans
        event(n + 2, "Checkout Complet", "transaction", {"sku": "S-2", "gift": 1}, now_ms),
        event(n + 3, "Search", "other", {"query": "mug"}, now_ms),
        event(n + 4, "debug_ping", "other", {}, now_ms),
    ]
    if user % 2:  # half the users send the misspelling twice
        events.append(
            event(n + 5, "Checkout Complet", "transaction", {"sku": "S-3", "gift": 0}, now_ms)
        )
    blocked = [e["data"]["event_id"] for e in events[2:]]
    return {
        "events": events,
        "user_identities": {"customer_id": f"C{user:04d}"},
        "environment": "production",
        "timestamp_unixtime_ms": str(now_ms),
        "batch_id": str(5_000_000_000_000_000_000 + user),
        "context": {
            "data_plan": {
                "plan_id": "shop",
                "plan_version": 1,
                "block_metadata": {
                    "dto_version": 1,
                    "blocked_event_ids": blocked,
                    "blocked_event_attributes": [
                        {
                            "event_id": events[1]["data"]["event_id"],
                            "event_attributes": [
                                "./data/custom_attributes/SKU",
                                "./data/custom_attributes/note",
                            ],
                        }
                    ],
                    "blocked_user_attributes": [],
                    "blocked_user_identities": [],
                    "blocked_device_identities": [],
                },
            }
        },
    }


USERS = 6  # 3 odd users send a second misspelled checkout


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suggest-fixes")
    now_ms = int(time.time() * 1000)
    write_file(
        folder / "q" / "Shop_20261201_00001.txt", [shop_batch(u, now_ms) for u in range(USERS)]
    )
    warehouse = folder / "backfill.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ingest(con, [str(folder / "q")])
    run_dbt(warehouse, "build")
    plan = folder / "shop_plan.json"
    plan.write_text(json.dumps(PLAN))
    return SimpleNamespace(folder=folder, warehouse=warehouse, plan=plan)


def by_name(found) -> dict:
    return {s.name: s for s in found.suggestions}


def test_the_plan_gives_a_fix_per_blocked_reason_with_its_rows(shop):
    found = suggest_fixes(shop.warehouse, load_plan(shop.plan))
    suggestions = by_name(found)
    assert {name: (s.kind, s.rows) for name, s in suggestions.items()} == {
        "rename_checkout_complet": ("rename_event", USERS + USERS // 2),
        "set_search_type": ("set_custom_event_type", USERS),
        "skip_debug_ping": ("skip", USERS),
        "rename_attribute_sku": ("rename_attribute", USERS),
        "drop_note": ("drop", USERS),
        # the misspelled checkouts send gift as 1/0: the plan types it boolean
        "cast_gift_to_boolean": ("cast", USERS + USERS // 2),
    }
    assert "rename to 'Checkout Complete' (edit distance 1)" in (
        suggestions["rename_checkout_complet"].change
    )
    assert "rename to 'sku' (letter case or separators)" in (
        suggestions["rename_attribute_sku"].change
    )
    assert found.blocked_rows == 4 * USERS + USERS // 2
    assert found.covered_rows == found.blocked_rows and found.open == []
    assert "{{ skip_events(" in suggestions["skip_debug_ping"].sql()
    shown = runner.invoke(
        app,
        ["suggest-fixes", str(shop.plan), "--json", "--project-dir", str(ROOT)],
        env={"BACKFILL_DUCKDB": str(shop.warehouse)},
    )
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.stdout)
    assert (summary["plan"], summary["blocked_rows"], summary["covered_rows"]) == (
        "shop v2",
        found.blocked_rows,
        found.blocked_rows,
    )
    assert {s["name"]: s["rows"] for s in summary["suggestions"]} == {
        name: s.rows for name, s in suggestions.items()
    }


def test_without_a_plan_renames_come_from_what_was_let_through(shop):
    found = suggest_fixes(shop.warehouse)
    assert found.plan is None
    assert {name: s.kind for name, s in by_name(found).items()} == {
        "rename_checkout_complet": "rename_event",
        "rename_attribute_sku": "rename_attribute",
    }
    needing_plan = {reason.reason: reason.rows for reason in found.open if reason.needs_plan}
    assert needing_plan == {
        "event 'Search' (other)": USERS,  # no Search was let through: the type is unknown
        "event 'debug_ping' (other)": USERS,
        "attribute 'note'": USERS,
    }
    shown = runner.invoke(
        app,
        ["suggest-fixes", "--project-dir", str(ROOT)],
        env={"BACKFILL_DUCKDB": str(shop.warehouse), "COLUMNS": "160"},
    )
    assert shown.exit_code == 0, shown.output
    assert "Drops, skips and casts need a data plan" in shown.stdout
    assert "with a data plan: skip it" in shown.stdout


@pytest.fixture(scope="module")
def accepted(shop, tmp_path_factory):
    """A project where two suggestions were accepted, linted and built."""
    folder = tmp_path_factory.mktemp("accepted")
    project = copy_project(folder / "project")
    env = {"BACKFILL_DUCKDB": str(shop.warehouse), "COLUMNS": "200"}
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    listed = runner.invoke(
        app, ["suggest-fixes", str(shop.plan), "--project-dir", str(project)], env=env
    )
    unchanged = before == {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    unknown = runner.invoke(
        app,
        ["suggest-fixes", str(shop.plan), "--project-dir", str(project), "--accept", "nope"],
        env=env,
    )
    accept = runner.invoke(
        app,
        ["suggest-fixes", str(shop.plan), "--project-dir", str(project),
         "--accept", "rename_checkout_complet", "--accept", "cast_gift_to_boolean"],
        env=env,
    )  # fmt: skip
    lint = runner.invoke(app, ["lint", "--project-dir", str(project)], env=env)
    again = runner.invoke(
        app, ["suggest-fixes", str(shop.plan), "--project-dir", str(project)], env=env
    )
    built = folder / "built.duckdb"
    shutil.copy(shop.warehouse, built)
    build = run_dbt(built, "build", project_dir=project, check=False)
    return SimpleNamespace(**locals())


def test_listing_writes_nothing_and_prints_the_accept_commands(accepted, shop):
    assert accepted.listed.exit_code == 0, accepted.listed.output
    assert accepted.unchanged
    out = accepted.listed.stdout
    assert "Fixes suggested from data plan shop v2" in out
    command = (
        f"loader suggest-fixes {shop.plan} --project-dir {accepted.project} "
        "--accept rename_checkout_complet"
    )
    assert command in out
    assert f"blocked rows: {4 * USERS + USERS // 2}; the suggestions fix the blocks of" in out
    assert accepted.unknown.exit_code == 2
    assert "no suggestion is named 'nope'" in accepted.unknown.output
    assert "rename_checkout_complet" in accepted.unknown.output


def test_an_accepted_suggestion_is_a_finished_fix(accepted):
    assert accepted.accept.exit_code == 0, accepted.accept.output
    assert "accepted rename_checkout_complet" in accepted.accept.stdout
    project: Path = accepted.project
    sql = (project / "models/fixes/fix_rename_checkout_complet.sql").read_text()
    assert '{{ rename_event("Checkout Complet", "Checkout Complete") }}' in sql
    assert "TODO" not in sql
    yml = (project / "models/fixes/_fixes__models.yml").read_text()
    assert "test_fix_cast_gift_to_boolean" in yml and "TODO" not in yml
    assert "- fix_cast_gift_to_boolean" in (project / "dbt_project.yml").read_text()
    assert accepted.lint.exit_code == 0, accepted.lint.stdout
    assert "accepted (fix_rename_checkout_complet)" in accepted.again.stdout


def test_the_accepted_fixes_build_green_and_the_replay_passes_the_plan(accepted, shop):
    assert accepted.build.returncode == 0, accepted.build.stdout
    passed = [line for line in accepted.build.stdout.splitlines() if "PASS" in line]
    assert any("test_fix_rename_checkout_complet" in line for line in passed)
    assert any("test_fix_cast_gift_to_boolean" in line for line in passed)
    assert query(
        accepted.built,
        "select event_name, json_type(custom_attributes, '/gift'), count(*) from "
        "int_events__fixed where event_name like 'Checkout%' and is_blocked_event group by all",
    ) == [("Checkout Complete", "BOOLEAN", USERS + USERS // 2)]
    with duckdb.connect(str(accepted.built), read_only=True) as con:
        result = check_replay_set(con, load_plan(shop.plan))
    checkouts = [row for row in result.rows if row.name == "Checkout Complete"]
    assert [(row.status, row.events) for row in checkouts] == [("ok", USERS + USERS // 2)]
