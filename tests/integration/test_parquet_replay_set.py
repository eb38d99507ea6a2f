"""`loader push --replay-set PATH`: a replay set written as Parquet by another engine is
sent as the warehouse's would be, with the same ledger guarantees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.push.replay_reader import REQUIRED_COLUMNS
from loader.warehouse import connect
from tests.conftest import built_sample, push_env
from tests.object_store_servers import start_moto

SECRET = "Parquet-Secret-31c"
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return built_sample(tmp_path_factory.mktemp("parquet"), 600, seed=31)


@pytest.fixture
def env(built, tmp_path, monkeypatch) -> dict[str, str]:
    return push_env(
        built,
        tmp_path,
        monkeypatch,
        {"MPARTICLE_API_KEY": "key", "MPARTICLE_API_SECRET": SECRET},
    )


def write_parquet(env, folder: Path, columns=REQUIRED_COLUMNS) -> Path:
    """replay_events in two Parquet files of plain strings, as another engine writes them."""
    folder.mkdir()
    with connect(Path(env["BACKFILL_DUCKDB"]), read_only=True) as con:
        selected = ", ".join(
            c if c == "timestamp_unixtime_ms" else f"{c}::varchar as {c}" for c in columns
        )
        table = con.sql(
            f"select {selected} from warehouse.main.replay_events order by replay_key"
        ).to_arrow_table()
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), folder / "part-0.parquet")
    pq.write_table(table.slice(half), folder / "part-1.parquet")
    return folder


def delivered(emu) -> list[tuple[bytes, tuple[bytes, ...]]]:
    """What the emulator accepted, batch ids left out: context and events, sorted."""
    batches = []
    for batch in emu.accepted():
        context = {k: v for k, v in batch.items() if k not in ("events", "source_request_id")}
        events = tuple(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in batch["events"])
        batches.append((orjson.dumps(context, option=orjson.OPT_SORT_KEYS), events))
    return sorted(batches)


def push(*args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["push", "--json", *args])
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, report, result.stderr


def test_a_parquet_replay_set_is_sent_as_the_warehouse_would_be(env, tmp_path, monkeypatch):
    folder = write_parquet(env, tmp_path / "replay_set")
    config = EmulatorConfig(api_key="key", api_secret=SECRET)
    with running_emulator(config) as from_parquet, running_emulator(config) as from_warehouse:
        code, report, stderr = push(
            "--endpoint", from_parquet.base_url, "--replay-set", str(folder)
        )
        assert code == 0, stderr
        assert report["sent"]["events_acknowledged"] > 0
        again_code, again, _ = push(
            "--endpoint", from_parquet.base_url, "--replay-set", str(folder / "*.parquet")
        )
        assert again_code == 0 and again["planned"]["events"] == 0  # nothing sent twice
        monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "warehouse-ledger.duckdb"))
        code, _, stderr = push("--endpoint", from_warehouse.base_url)
        assert code == 0, stderr
        assert delivered(from_parquet) == delivered(from_warehouse)


def test_a_parquet_replay_set_without_a_column_is_refused(env, tmp_path):
    columns = tuple(c for c in REQUIRED_COLUMNS if c != "identity_risk")
    folder = write_parquet(env, tmp_path / "replay_set", columns)
    result = runner.invoke(app, ["push", "--dry-run", "--replay-set", str(folder)])
    assert result.exit_code == 2
    assert "lacks column(s) identity_risk" in " ".join(result.stderr.split())


def test_an_empty_location_is_refused(env, tmp_path):
    result = runner.invoke(app, ["push", "--dry-run", "--replay-set", str(tmp_path / "*.parquet")])
    assert result.exit_code == 2
    assert "no Parquet file there" in " ".join(result.stderr.split())


@pytest.fixture
def s3_bucket(monkeypatch, tmp_path) -> Iterator[str]:
    """A bucket on a moto S3 server on 127.0.0.1, reached through the usual AWS settings."""
    server, port = start_moto(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    import s3fs

    s3fs.S3FileSystem(skip_instance_cache=True).mkdir("replay-bucket")
    yield "replay-bucket"
    server.stop()


def test_a_parquet_replay_set_in_object_storage_is_read_from_its_uri(env, tmp_path, s3_bucket):
    import s3fs

    folder = write_parquet(env, tmp_path / "replay_set")
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.put(str(folder), f"{s3_bucket}/exports/replay_set", recursive=True)
    config = EmulatorConfig(api_key="key", api_secret=SECRET)
    with running_emulator(config) as emu:
        code, report, stderr = push(
            "--endpoint", emu.base_url, "--replay-set", f"s3://{s3_bucket}/exports/replay_set"
        )
        assert code == 0, stderr
        assert report["sent"]["events_acknowledged"] == pq.read_table(folder).num_rows
        again, _, _ = push(
            "--endpoint",
            emu.base_url,
            "--replay-set",
            f"s3://{s3_bucket}/exports/replay_set/*.parquet",
        )
        assert again == 0
        assert len(emu.accepted()) == report["sent"]["batches_acknowledged"]  # none twice

    code, _, stderr = push("--dry-run", "--replay-set", f"s3://{s3_bucket}/nothing-here")
    assert code == 2 and "no Parquet file there" in stderr


def test_a_parquet_dry_run_says_parquet_carries_no_build_settings(env, tmp_path):
    # the warehouse beside it has replay_build_settings: rebuilding it would not help
    folder = write_parquet(env, tmp_path / "replay_set")
    result = runner.invoke(app, ["push", "--dry-run", "--replay-set", str(folder)])
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.stderr.split())
    assert "a Parquet replay set carries no build settings" in stderr
    assert "rebuild (`dbt build`) to get age checks" not in stderr
