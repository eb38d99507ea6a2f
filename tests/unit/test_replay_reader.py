"""The warehouse replay-set reader: attach read-only, check the contract, stream Arrow."""

from __future__ import annotations

import duckdb
import pytest

from loader.errors import MissingReplaySet
from loader.push.replay_reader import (
    REQUIRED_COLUMNS,
    WarehouseReplaySet,
    record_batches,
    replay_set_at,
)


def make_warehouse(path, columns=REQUIRED_COLUMNS) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table replay_events as select "
            + ", ".join(f"'{name}-' || i::varchar as {name}" for name in columns)
            + " from range(3) t(i)"
        )


def test_the_replay_set_streams_its_contracted_columns_as_arrow(tmp_path):
    make_warehouse(tmp_path / "w.duckdb")
    con = duckdb.connect()
    reader = replay_set_at(tmp_path / "w.duckdb")
    assert isinstance(reader, WarehouseReplaySet)
    with reader.attached(con) as relation:
        assert relation == "warehouse.main.replay_events"
        table = record_batches(con, relation + " order by replay_key").read_all()
    assert table.column_names == list(REQUIRED_COLUMNS)
    assert table.column("replay_key").to_pylist() == [
        "replay_key-0",
        "replay_key-1",
        "replay_key-2",
    ]
    # detached after the block: the file is free again
    assert con.execute(
        "select count(*) from duckdb_databases() where database_name = 'warehouse'"
    ).fetchall() == [(0,)]


def test_a_replay_set_without_a_contracted_column_is_refused(tmp_path):
    make_warehouse(tmp_path / "w.duckdb", [c for c in REQUIRED_COLUMNS if c != "identity_risk"])
    with (
        pytest.raises(MissingReplaySet, match=r"lacks column\(s\) identity_risk"),
        WarehouseReplaySet(tmp_path / "w.duckdb").attached(duckdb.connect()),
    ):
        pass


def test_a_missing_warehouse_is_named(tmp_path):
    with (
        pytest.raises(MissingReplaySet, match="does not exist"),
        WarehouseReplaySet(tmp_path / "none.duckdb").attached(duckdb.connect()),
    ):
        pass
