"""What `dbt build` writes and how long each model takes: N generated events (`loader
sample` data, 50,000 events a file, the demo's fixes, attribute-only events opted in)
are ingested once; then, on a copy of those raw tables, `dbt build` and the fix loop
(`dbt build -s <fix>+`) run, each in its own process (wall, CPU, peak RSS, load). Per
model: its build time (dbt's run_results.json), its kind (table, view, ...), its rows
and the bytes its blocks take in the warehouse file (DuckDB's storage_info: the distinct
blocks a table's segments and their overflow strings use, times the block size; a block
two tables share counts for both). Also the warehouse file against the input's size.

Writes benchmarks/results/warehouse-<N>.json (or warehouse-<N>-<label>.json).

Usage: python benchmarks/bench_warehouse.py [--events 4000000] [--quarantine DIR]
       [--work DIR] [--label before]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import BIN, FIX, VARS, measure, print_steps, quarantine, save_result  # noqa: E402

BLOCKS = """
select count(distinct b) from (
    select block_id as b from pragma_storage_info(?) where persistent and block_id >= 0
    union all
    select unnest(additional_block_ids) from pragma_storage_info(?) where persistent
)
"""


def node_times(target: Path) -> dict[str, float]:
    """Seconds per dbt node of the last run (models, tests, seeds) by unique id."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"]: round(r["execution_time"], 2) for r in results}


def relations(warehouse: Path) -> dict[str, dict[str, object]]:
    """Kind, rows and bytes on disk of every table and view (schema main unnamed)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        block = con.execute("select block_size from pragma_database_size()").fetchone()
        block_size = int(block[0]) if block else 262_144
        found = con.execute(
            "select table_schema, table_name, table_type from information_schema.tables "
            "where table_catalog = current_database() order by 1, 2"
        ).fetchall()
        out: dict[str, dict[str, object]] = {}
        for schema, table, kind in found:
            name = table if schema == "main" else f"{schema}.{table}"
            entry: dict[str, object] = {"kind": "view" if kind == "VIEW" else "table"}
            if kind != "VIEW":
                quoted = f'"{schema}"."{table}"'
                rows = con.execute(f"select count(*) from {quoted}").fetchone()
                blocks = con.execute(BLOCKS, [quoted, quoted]).fetchone()
                entry["rows"] = int(rows[0]) if rows else 0
                entry["bytes"] = int(blocks[0] if blocks else 0) * block_size
            out[name] = entry
        return out


def per_model(times: dict[str, float], stored: dict[str, dict[str, object]]) -> list[dict]:
    """One row a model (or seed, snapshot) that dbt built, plus the tests' total."""
    rows: list[dict] = []
    tests = 0.0
    for node, seconds in times.items():
        kind, name = node.split(".")[0], node.split(".")[-1]
        if kind in ("test", "unit_test"):
            tests += seconds
            continue
        rows.append({"model": name, "s": seconds, **stored.pop(name, {"kind": "ephemeral"})})
    for name, entry in stored.items():  # tables no node built: the raw tables, dbt's markers
        rows.append({"model": name, "s": None, **entry})
    rows.append({"model": "(tests)", "s": round(tests, 2), "kind": "tests"})
    return sorted(rows, key=lambda r: -int(r.get("bytes") or 0))


def run(work: Path, folder: Path) -> dict[str, object]:
    raw, warehouse = work / "ingested.duckdb", work / "warehouse.duckdb"
    for stale in [*work.glob("*.duckdb*"), work / "dbt"]:
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    target = work / "dbt"
    # the reference time: when the files were made, so that every build of them is alike
    made_ms = max(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()) // 10**6
    build_vars = json.dumps({**json.loads(VARS), "replay_reference_time_ms": made_ms})
    dbt = [str(BIN / "dbt"), "build", "--vars", build_vars, "--target-path", str(target)]
    steps: dict[str, dict[str, float]] = {}
    steps["ingest"] = measure(
        [str(BIN / "loader"), "ingest", str(folder)], {**os.environ, "BACKFILL_DUCKDB": str(raw)}
    )
    raw_bytes = raw.stat().st_size
    shutil.copy(raw, warehouse)
    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse)}
    steps["dbt build"] = measure(dbt, env)
    times = node_times(target)
    steps["fix loop"] = measure([*dbt, "--select", f"{FIX}+"], env)
    fix_times = node_times(target)
    models = per_model(times, relations(warehouse))
    return {
        "steps": steps,
        "raw_warehouse_bytes": raw_bytes,
        "warehouse_bytes": warehouse.stat().st_size,
        "models": models,
        "fix_loop_nodes": dict(sorted(fix_times.items(), key=lambda kv: -kv[1])[:12]),
    }


def print_models(models: list[dict]) -> None:
    for row in models:
        seconds = "" if row["s"] is None else f"{row['s']:7.1f} s"
        size = f"{int(row['bytes']) / 2**20:9.1f} MiB" if "bytes" in row else " " * 13
        print(f"{row['model']:<48} {row['kind']:<9} {seconds:>9} {size}  {row.get('rows', '')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4_000_000)
    parser.add_argument("--quarantine", type=Path, help="the generated files (default: made)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/warehouse-bench"))
    parser.add_argument("--label", default="", help="appended to the results file's name")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folder = args.quarantine or quarantine(args.work, args.events)
    measured = run(args.work, folder)
    input_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    result = {
        "events": args.events,
        "input_bytes": input_bytes,
        "cores": os.cpu_count(),
        "memory_limit": os.environ.get("BACKFILL_MEMORY_LIMIT") or "4GB (default)",
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **measured,
    }
    result["warehouse_over_input"] = round(int(measured["warehouse_bytes"]) / input_bytes, 2)
    steps = measured["steps"]
    assert isinstance(steps, dict)
    result["fix_loop_over_build"] = round(
        steps["fix loop"]["wall_s"] / steps["dbt build"]["wall_s"], 3
    )
    save_result(f"warehouse-{args.events}" + (f"-{args.label}" if args.label else ""), result)
    print_steps(steps)
    models = measured["models"]
    assert isinstance(models, list)
    print_models(models)
    raw_gib = int(measured["raw_warehouse_bytes"]) / 2**30
    warehouse_gib = int(measured["warehouse_bytes"]) / 2**30
    print(
        f"input {input_bytes / 2**30:.2f} GiB, raw tables {raw_gib:.2f} GiB, "
        f"warehouse {warehouse_gib:.2f} GiB: {result['warehouse_over_input']}x the input; "
        f"fix loop / build {result['fix_loop_over_build']}"
    )


if __name__ == "__main__":
    main()
