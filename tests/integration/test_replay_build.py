"""`loader ingest` + a real `dbt build` on quarantine files, asserting on the replay rows."""

from __future__ import annotations

import copy
import shutil
from datetime import UTC, datetime, timedelta

import duckdb
import orjson
import pytest
import yaml
from typer.testing import CliRunner

from loader.cli import app
from tests.conftest import ROOT, query, run_dbt
from tests.demo import DEMO_FIXES
from tests.quarantine import example_batch, write_file

DAY_MS = 86_400_000
NOW_MS = 1_764_000_000_000  # the build's reference time (var replay_reference_time_ms)
RECENT_MS = NOW_MS - 2 * DAY_MS
BIG_MPID = 2**53 + 1  # not representable as a float64
BIG_EVENT_ID = 2**63 - 25
BIG_BATCH_ID = -(2**62) - 3


def custom_event(name: str, event_id, timestamp, **data) -> dict:
    return {
        "event_type": "custom_event",
        "data": {
            "event_name": name,
            "custom_event_type": "transaction",
            "event_id": event_id,
            "timestamp_unixtime_ms": timestamp,
            **data,
        },
    }


def metadata(blocked_ids, **extra) -> dict:
    return {"dto_version": 1, "blocked_event_ids": blocked_ids, **extra}


def numeric_ids_batch() -> dict:
    """ids and timestamps written as JSON numbers above 2^53; identities as a list."""
    return {
        "batch_id": BIG_BATCH_ID,
        "mpid": BIG_MPID,
        "environment": "production",
        "ip": "203.0.113.9",
        "source_info": {"channel": "server_to_server"},
        "timestamp_unixtime_ms": RECENT_MS,
        "user_identities": [
            {"identity_type": "customer_id", "identity": "C42"},
            {"identity_type": "email", "identity": "c42@example.com"},
        ],
        "device_info": {"android_advertising_id": "aaid-1"},
        "events": [
            custom_event("Chekout Complete", BIG_EVENT_ID, RECENT_MS + 1, custom_flags={"a": 1}),
            {
                "event_type": "screen_view",
                "data": {
                    "screen_name": "Cart",
                    "event_id": BIG_EVENT_ID - 1,
                    "timestamp_unixtime_ms": RECENT_MS + 2,
                },
            },
        ],
        "context": {
            "data_plan": {
                "plan_id": "shop_plan",
                "plan_version": 3,
                "block_metadata": metadata([str(BIG_EVENT_ID), str(BIG_EVENT_ID - 1)]),
            }
        },
    }


def fallback_metadata_batch() -> dict:
    """block_metadata at context.block_metadata (where the guide's prose puts it)."""
    return {
        "batch_id": "77",
        "mpid": "-9000000000000000001",
        "environment": "production",
        "events": [
            custom_event("Old Event", "1", str(NOW_MS - 40 * DAY_MS)),
            custom_event("Aging Event", "2", str(NOW_MS - 20 * DAY_MS)),
            custom_event("No Time", "3", None),
        ],
        "context": {"block_metadata": metadata(["1", "2", "3", "404"])},
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Ingest a mixed quarantine folder and run one dbt build on it."""
    tmp = tmp_path_factory.mktemp("replay")
    warehouse = tmp / "backfill.duckdb"
    folder = tmp / "quarantine"
    example = example_batch(RECENT_MS)
    write_file(
        folder / "2025-11-22/App_20251122_00001.txt",
        [example, numeric_ids_batch()],
        gzipped=True,
    )
    # the example batch again (redelivered), and the fallback-location batch
    write_file(folder / "2025-11-23/App_20251123_00002.txt", [fallback_metadata_batch(), example])
    (folder / "mParticle_Bucket_Verification_x.txt").write_text("{}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKFILL_DUCKDB", str(warehouse))
        result = CliRunner().invoke(app, ["ingest", str(folder)])
    assert result.exit_code == 0, result.output
    run_dbt(warehouse, "build", dbt_vars={**DEMO_FIXES, "replay_reference_time_ms": NOW_MS})
    return warehouse


def replay_rows(warehouse) -> dict[str, dict]:
    rows = query(
        warehouse,
        "select replay_key, user_key, mpid, event_json::varchar, batch_context::varchar, "
        "timestamp_unixtime_ms, fixes_applied, source_file, line_number from replay_events",
    )
    names = ["user_key", "mpid", "event", "context", "ts", "fixes", "file", "line"]
    return {key: dict(zip(names, rest, strict=True)) for key, *rest in rows}


def test_replay_set_holds_exactly_the_blocked_events(built):
    rows = replay_rows(built)
    assert sorted(rows) == sorted(
        [
            "-5158959812941698317:-7778608565459706417",
            "-5158959812941698317:-387480379075294677",
            f"{BIG_BATCH_ID}:{BIG_EVENT_ID}",
            f"{BIG_BATCH_ID}:{BIG_EVENT_ID - 1}",
            "77:2",
        ]
    )


def test_sent_event_is_the_original_without_event_id(built):
    event_text = replay_rows(built)["-5158959812941698317:-7778608565459706417"]["event"]
    assert f'"timestamp_unixtime_ms":{RECENT_MS}' in event_text  # an integer, not a string
    assert orjson.loads(event_text) == {
        "event_type": "custom_event",
        "data": {
            "custom_event_type": "navigation",
            "event_name": "blocked navigation event 1",
            "custom_flags": {},
            "timestamp_unixtime_ms": RECENT_MS,
            "custom_attributes": {"Test": "value"},
        },
    }


def test_batch_context_keeps_identities_and_drops_what_a_replay_must_not_send(built):
    row = replay_rows(built)["-5158959812941698317:-7778608565459706417"]
    context = orjson.loads(row["context"])
    assert context == {
        "environment": "development",
        "user_identities": {"customer_id": "1234", "email": "helpers@mparticle.com"},
        "device_info": {
            "is_dst": False,
            "ios_advertising_id": "613ff528-afd1-4c1b-9628-e6ed25ece9c0",
        },
        "application_info": {"os": "OutOfBand"},
        "context": {"data_plan": {"plan_id": "main_block", "plan_version": 1}},
        "deleted_user_attributes": [],
    }
    assert row["user_key"].startswith("ids:")  # no MPID: a fingerprint of the identities
    assert row["line"] == 1 and row["file"].endswith("App_20251122_00001.txt")


def test_numbers_above_2_53_stay_exact_and_list_identities_become_a_map(built):
    rows = replay_rows(built)
    row = rows[f"{BIG_BATCH_ID}:{BIG_EVENT_ID}"]
    assert row["mpid"] == str(BIG_MPID)
    assert row["user_key"] == f"mpid:{BIG_MPID}"
    assert f'"mpid":{BIG_MPID}' in row["context"]
    context = orjson.loads(row["context"])
    assert context["user_identities"] == {"customer_id": "C42", "email": "c42@example.com"}
    assert context["ip"] == "203.0.113.9"
    assert row["ts"] == RECENT_MS + 1
    screen = orjson.loads(rows[f"{BIG_BATCH_ID}:{BIG_EVENT_ID - 1}"]["event"])
    assert screen == {
        "event_type": "screen_view",
        "data": {"screen_name": "Cart", "timestamp_unixtime_ms": RECENT_MS + 2},
    }


def test_example_fix_renames_and_is_listed(built):
    row = replay_rows(built)[f"{BIG_BATCH_ID}:{BIG_EVENT_ID}"]
    assert orjson.loads(row["event"])["data"]["event_name"] == "Checkout Complete"
    assert row["fixes"] == ["fix_rename_checkout_event"]
    # the outcome keeps the name it was blocked under beside the fixed one
    assert query(
        built,
        "select event_name, original_event_name from blocked_events__outcomes where replay_key = ?",
        [f"{BIG_BATCH_ID}:{BIG_EVENT_ID}"],
    ) == [("Checkout Complete", "Chekout Complete")]


def test_redelivered_batch_counts_once(built):
    assert query(
        built,
        "select delivery_count, source_file like '%00001.txt' from stg_quarantine__batches "
        "where batch_key = '-5158959812941698317'",
    ) == [(2, True)]


def test_every_blocked_event_has_an_outcome(built):
    outcomes = dict(
        query(
            built,
            "select replay_key, coalesce(skip_reason, outcome) from blocked_events__outcomes",
        )
    )
    assert outcomes == {
        "-5158959812941698317:-7778608565459706417": "replay",
        "-5158959812941698317:-387480379075294677": "replay",
        "-5158959812941698317:8561854144327985348": "attributes_only_not_opted_in",
        f"{BIG_BATCH_ID}:{BIG_EVENT_ID}": "replay",
        f"{BIG_BATCH_ID}:{BIG_EVENT_ID - 1}": "replay",
        "77:1": "older_than_max_age",
        "77:2": "replay",
        "77:3": "missing_or_invalid_timestamp",
        "77:404": "event_not_found_in_batch",
    }


def test_block_metadata_unnested(built):
    assert query(
        built, "select event_id, attribute_name from stg_quarantine__blocked_event_attributes"
    ) == [("8561854144327985348", "testAttr1")]
    assert query(
        built, "select attribute_name, attribute_value from stg_quarantine__blocked_user_attributes"
    ) == [("$gender", '"M"')]


def test_staging_keeps_mparticles_batch_id_apart_from_the_batch_key(tmp_path, warehouse):
    without_id = example_batch(RECENT_MS)
    del without_id["batch_id"]
    path = write_file(tmp_path / "q.txt", [example_batch(RECENT_MS, batch_id="5"), without_id])
    assert CliRunner().invoke(app, ["ingest", str(path)]).exit_code == 0
    started = datetime.now(UTC)

    run_dbt(warehouse, "build", dbt_vars={"replay_reference_time_ms": NOW_MS})

    batches = "select batch_key, batch_id from stg_quarantine__batches order by 1"
    assert query(warehouse, batches) == [
        ("5", "5"),
        (f"line:{path}:2", None),
    ]
    assert query(warehouse, "select distinct batch_id from replay_events order by 1") == [
        ("5",),
        (f"line:{path}:2",),
    ]
    [(built_at,)] = query(warehouse, "select built_at from replay_build_settings")
    assert started - timedelta(seconds=1) <= built_at <= datetime.now(UTC)


def test_build_settings_hold_the_vars_the_build_used(tmp_path, warehouse, monkeypatch):
    write_file(tmp_path / "q.txt", [example_batch(RECENT_MS)])
    assert CliRunner().invoke(app, ["ingest", str(tmp_path / "q.txt")]).exit_code == 0

    monkeypatch.setenv("BACKFILL_MEMORY_LIMIT", "1GB")
    run_dbt(warehouse, "build", dbt_vars={**DEMO_FIXES, "max_event_age_days": 7})

    project_vars = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
    assert query(
        warehouse,
        "select column_name, data_type from duckdb_columns() "
        "where table_name = 'replay_build_settings' order by column_index",
    ) == [
        ("max_event_age_days", "INTEGER"),
        ("warn_event_age_days", "INTEGER"),
        ("allow_events_older_than_max_age", "BOOLEAN"),
        ("replay_reference_time_ms", "BIGINT"),
        ("login_identity_types", "VARCHAR[]"),
        ("data_plan_policy", "VARCHAR"),
        ("replay_attribute_only_events", "BOOLEAN"),
        ("replay_blocked_user_attributes", "BOOLEAN"),
        ("replay_blocked_identities", "BOOLEAN"),
        ("exclude_high_risk_users", "BOOLEAN"),
        ("fixes", "VARCHAR[]"),
        ("dev_sample_users_pct", "DOUBLE"),
        ("amplitude_min_id_length", "INTEGER"),
        ("suppression_list", "VARCHAR"),
        ("suppression_list_checksum", "VARCHAR"),
        ("suppression_list_rows", "BIGINT"),
        ("memory_limit", "VARCHAR"),
        ("temp_directory", "VARCHAR"),
        ("built_at", "TIMESTAMP WITH TIME ZONE"),
    ]
    [settings] = query(warehouse, "select * exclude (built_at) from replay_build_settings")
    # dbt ran in the warehouse's folder (tests/conftest.py run_dbt): a relative temp folder
    # is relative to it
    temp_directory = str(warehouse.parent / settings[-1])
    assert [(*settings[:-1], temp_directory)] == [
        (
            7,
            14,
            False,
            None,
            project_vars["login_identity_types"],
            "keep",
            False,
            False,
            True,  # replay_blocked_identities
            False,
            [
                "fix_rename_checkout_event",
                "fix_search_custom_event_type",
                "fix_skip_promo_banner_clicks",
            ],
            None,
            project_vars["amplitude_min_id_length"],
            None,  # built without a suppression list
            None,
            None,
            "953.6 MiB",  # 1GB as DuckDB shows it: dbt ran under BACKFILL_MEMORY_LIMIT
            f"{warehouse}.tmp",  # spilling beside the warehouse
        )
    ]


def test_column_descriptions_are_stored_in_duckdb(built):
    [(comment,)] = query(
        built,
        "select comment from duckdb_columns() "
        "where table_name = 'replay_events' and column_name = 'replay_key'",
    )
    assert "Stable key" in comment


def test_attribute_only_opt_in_and_dropped_plan(tmp_path, warehouse):
    write_file(tmp_path / "q.txt", [example_batch(RECENT_MS)])
    assert CliRunner().invoke(app, ["ingest", str(tmp_path / "q.txt")]).exit_code == 0
    run_dbt(
        warehouse,
        "build",
        dbt_vars={
            "replay_reference_time_ms": NOW_MS,
            "replay_attribute_only_events": True,
            "data_plan_policy": "drop",
        },
    )
    rows = replay_rows(warehouse)
    opted_in = rows["-5158959812941698317:8561854144327985348"]
    assert orjson.loads(opted_in["event"])["data"]["custom_attributes"] == {"testAttr1": "value"}
    assert all("context" not in orjson.loads(r["context"]) for r in rows.values())
    assert query(
        warehouse, "select will_replay, blocked_attribute_count from attribute_only_blocked_events"
    ) == [(True, 1)]


def test_unknown_dto_version_fails_naming_file_and_line(tmp_path, warehouse):
    future = copy.deepcopy(example_batch(RECENT_MS, batch_id="2"))
    future["context"]["data_plan"]["block_metadata"]["dto_version"] = 2
    path = write_file(tmp_path / "future.txt", [example_batch(RECENT_MS), future])
    assert CliRunner().invoke(app, ["ingest", str(path)]).exit_code == 0

    result = run_dbt(warehouse, "build", check=False)

    assert result.returncode != 0
    assert "Unsupported block_metadata dto_version 2" in result.stdout
    assert f"{path} line 2" in result.stdout


def test_project_builds_with_no_fixes(tmp_path, warehouse):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(ROOT / name, project / name)
    for folder in ("models", "macros", "seeds", "data-tests"):
        shutil.copytree(ROOT / folder, project / folder)
    for fix in (project / "models/fixes").glob("fix_*.sql"):
        fix.unlink()
    (project / "models/fixes/_fixes__models.yml").unlink()
    write_file(tmp_path / "q.txt", [example_batch(RECENT_MS)])
    assert CliRunner().invoke(app, ["ingest", str(tmp_path / "q.txt")]).exit_code == 0

    run_dbt(
        warehouse,
        "build",
        dbt_vars={"replay_reference_time_ms": NOW_MS, "fixes": []},
        project_dir=project,
    )

    assert query(warehouse, "select count(*), max(len(fixes_applied)) from replay_events") == [
        (2, 0)
    ]


def test_lines_rejected_at_ingest_are_reported_by_dbt_and_the_report(tmp_path, warehouse):
    path = write_file(tmp_path / "q.txt", [example_batch(RECENT_MS)])
    path.write_bytes(path.read_bytes() + b'{"events": [\n')
    assert CliRunner().invoke(app, ["ingest", str(path)]).exit_code == 1

    build = run_dbt(warehouse, "build", dbt_vars={"replay_reference_time_ms": NOW_MS})

    assert "WARN 1 warn_quarantine_lines_rejected_at_ingest" in build.stdout
    report = tmp_path / "report.html"
    assert CliRunner().invoke(app, ["report", "--out", str(report)]).exit_code == 0
    assert "1 quarantine lines could not be read at ingest" in report.read_text()


def test_sendable_json_is_checked_on_assembled_events_and_on_fixed_ones(built, tmp_path):
    """replay_event_json_is_sendable runs on int_events__assembled (every event before the
    fixes) and on the replay_events rows a fix changed (the others are assembled's rows)."""
    warehouse = tmp_path / "backfill.duckdb"
    shutil.copy(built, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update int_events__assembled set event_json = json_merge_patch(event_json, "
            '\'{"data": {"event_id": "1"}}\') '
            "where replay_key = (select min(replay_key) from int_events__assembled)"
        )
        con.execute(
            "update replay_events set batch_context = json_merge_patch(batch_context, "
            '\'{"batch_id": "1"}\') '
            "where replay_key = (select min(replay_key) from replay_events "
            "where len(fixes_applied) > 0)"
        )
    result = run_dbt(
        warehouse,
        "test",
        "-s",
        "test_name:replay_event_json_is_sendable",
        dbt_vars=DEMO_FIXES,
        check=False,
    )
    failed = [line for line in result.stdout.splitlines() if "FAIL 1 " in line]
    assert len(failed) == 2, result.stdout
    assert any("int_events__assembled" in line for line in failed), result.stdout
    assert any("replay_events" in line for line in failed), result.stdout
