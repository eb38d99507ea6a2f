"""A build of the replay set warns of nothing it does not mean: replay_events' not-null
constraints are enforced by its materialization, and dbt does not call them ignored."""

from __future__ import annotations

import duckdb

from loader.ingest.importer import ingest
from tests.conftest import query, run_dbt
from tests.quarantine import example_batch, write_file


def test_replay_events_constraints_hold_without_a_warning(tmp_path):
    warehouse = tmp_path / "backfill.duckdb"
    write_file(tmp_path / "q.txt", [example_batch()])
    with duckdb.connect(str(warehouse)) as con:
        ingest(con, [str(tmp_path / "q.txt")])
    result = run_dbt(warehouse, "build")
    assert "Constraint types are not supported" not in result.stdout + result.stderr
    not_null = query(
        warehouse,
        "select constraint_column_names[1] from duckdb_constraints() "
        "where table_name = 'replay_events' and constraint_type = 'NOT NULL'",
    )
    assert ("replay_key",) in not_null and len(not_null) == 8
