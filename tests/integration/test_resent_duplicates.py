"""Events re-sent whole by an attribute replay: `resent_event_duplicates` lists each one (and
nothing else) with what finds the earlier copy downstream; `loader export` writes it out;
var mark_replayed_events flags every replayed event."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.ingest.samples import generate
from tests.conftest import query, run_dbt
from tests.demo import DEMO_FIXES

NOW_MS = 1_795_996_800_000
runner = CliRunner()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("duplicates")
    warehouse = tmp / "backfill.duckdb"
    generate(tmp / "q", 1500, seed=31, days=5, now_ms=NOW_MS)
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(warehouse)})
    assert result.exit_code == 0, result.output
    return warehouse


@pytest.fixture(scope="module")
def built(ingested) -> Path:
    run_dbt(
        ingested,
        "build",
        dbt_vars={
            **DEMO_FIXES,
            "replay_reference_time_ms": NOW_MS,
            "replay_attribute_only_events": True,
            "mark_replayed_events": "bf-test-1",
        },
    )
    return ingested


def test_one_row_per_event_resent_whole_and_nothing_else(built):
    resent = {
        row[0]: row[1:]
        for row in query(
            built,
            "select replay_key, mpid, user_identities::varchar, event_type, original_event_name, "
            "original_timestamp_unixtime_ms, source_message_id, event_id "
            "from resent_event_duplicates",
        )
    }
    expected = query(
        built,
        "select r.replay_key, r.mpid, r.batch_context->>'$.user_identities', a.event_type, "
        "a.event_name, a.timestamp_unixtime_ms, r.event_json->>'$.data.source_message_id', "
        "a.event_id from replay_events r join attribute_only_blocked_events a using (replay_key)",
    )
    [(replayed, blocked_events)] = query(
        built,
        "select count(*), count(*) filter (where replay_reason = 'blocked_event') "
        "from replay_events",
    )
    assert expected and blocked_events  # both kinds are in the replay set
    assert len(resent) == len(expected) < replayed
    for key, *values in expected:
        mpid, identities, *rest = resent[key]
        assert mpid == values[0]
        assert orjson.loads(identities or "null") == orjson.loads(values[1] or "null")
        assert list(rest) == values[2:]


def test_every_replayed_event_carries_the_backfill_flag(built):
    events = query(built, "select event_json::varchar from replay_events")
    flags = {orjson.loads(e)["data"]["custom_attributes"]["backfill_id"] for (e,) in events}
    assert flags == {"bf-test-1"}


def test_without_the_var_the_list_is_empty_and_nothing_is_flagged(built, tmp_path):
    warehouse = tmp_path / "backfill.duckdb"
    shutil.copy(built, warehouse)
    run_dbt(warehouse, "build", dbt_vars={**DEMO_FIXES, "replay_reference_time_ms": NOW_MS})
    assert query(warehouse, "select count(*) from resent_event_duplicates") == [(0,)]
    [(flagged,)] = query(
        warehouse,
        "select count(*) from replay_events "
        "where json_exists(event_json, '$.data.custom_attributes.backfill_id')",
    )
    assert flagged == 0


def test_a_bad_backfill_id_stops_the_build(built, tmp_path):
    warehouse = tmp_path / "backfill.duckdb"
    shutil.copy(built, warehouse)
    result = run_dbt(warehouse, "build", dbt_vars={"mark_replayed_events": "a b"}, check=False)
    assert result.returncode != 0
    assert "var mark_replayed_events must be null (off) or a backfill identifier" in result.stdout


@pytest.mark.parametrize("output_format", ["csv", "parquet"])
def test_export_writes_the_model(built, tmp_path, output_format):
    out = tmp_path / f"duplicates.{output_format}"
    result = runner.invoke(
        app,
        ["export", "resent_event_duplicates", "--format", output_format, "--out", str(out)],
        env={"BACKFILL_DUCKDB": str(built)},
    )
    assert result.exit_code == 0, result.output
    expected = dict(
        query(
            built, "select replay_key, original_timestamp_unixtime_ms from resent_event_duplicates"
        )
    )
    if output_format == "csv":
        with out.open(newline="") as file:
            rows = list(csv.DictReader(file))
        got = {r["replay_key"]: int(r["original_timestamp_unixtime_ms"]) for r in rows}
    else:
        table = pq.read_table(out).to_pylist()
        got = {r["replay_key"]: r["original_timestamp_unixtime_ms"] for r in table}
    assert expected and got == expected and f"wrote {len(expected)} rows" in result.stdout


def test_export_refuses_a_symlink_and_an_unknown_model(built, tmp_path):
    target = tmp_path / "elsewhere.csv"
    target.write_text("keep")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    env = {"BACKFILL_DUCKDB": str(built)}
    result = runner.invoke(app, ["export", "replay_events", "--out", str(link)], env=env)
    assert result.exit_code == 2 and "symbolic link" in result.stderr
    assert target.read_text() == "keep"
    result = runner.invoke(
        app, ["export", "no_such_model", "--out", str(tmp_path / "x.csv")], env=env
    )
    assert result.exit_code == 2 and "no model 'no_such_model'" in result.stderr
