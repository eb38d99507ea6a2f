"""A daily delivery against a whole build, each step in its own process: N generated
events (`loader sample` data, 50,000 events a file, the demo's fixes, attribute-only events
opted in) are delivered as a first delivery (all files but the last 5%) and a later day
(5% more files, the last ones, with a batch of the first day delivered again). Measured: the
whole `dbt build` after the first ingest, `loader ingest` and `dbt build` of the later day
(the daily build), and, on a copy, `dbt build --full-refresh` of the same raw tables (the
whole build it replaces); wall time, CPU time (user + system, all threads) and peak RSS of
each, and the slowest nodes of the two builds (dbt's run_results.json). The replay_events
of the daily build and of the whole rebuild are checked equal row for row.

Writes benchmarks/results/daily-<N>.json.

Usage: python benchmarks/bench_daily_delivery.py [--events 2100000] [--work DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import BIN, VARS, measure, print_steps, save_result  # noqa: E402

from loader.ingest.samples import generate  # noqa: E402

EVENTS_PER_FILE = 50_000
LATER_SHARE = 0.05  # the later day: 5% more files than the first delivery
REFERENCE_TIME_MS = 1_765_000_000_000  # a fixed reference time: ages equal in every build
BUILD_VARS = json.dumps({**json.loads(VARS), "replay_reference_time_ms": REFERENCE_TIME_MS})


def deliveries(work: Path, events: int) -> tuple[Path, Path]:
    """The generated files split into the first delivery and the later day's."""
    generated = work / f"daily-{events}"
    if not generated.exists():
        generate(
            generated / "all", events, events_per_file=EVENTS_PER_FILE, now_ms=REFERENCE_TIME_MS
        )
    files = sorted(p for p in (generated / "all").rglob("ShopApp_*.txt"))
    later = max(1, round(len(files) * LATER_SHARE / (1 + LATER_SHARE)))
    first, second = generated / "first", generated / "later"
    for folder, part in ((first, files[:-later]), (second, files[-later:])):
        shutil.rmtree(folder, ignore_errors=True)
        for path in part:
            target = folder / path.relative_to(generated / "all")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    # a batch of the first delivery arrives again in the later day
    data = files[0].read_bytes()
    lines = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).splitlines()
    (second / "ShopApp_redelivery_99999.txt").write_bytes(lines[0] + b"\n")
    return first, second


def slowest(target: Path, count: int = 8) -> list[dict[str, object]]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    ranked = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:count]
    return [{"node": r["unique_id"], "s": round(r["execution_time"], 2)} for r in ranked]


def replay_rows(warehouse: Path) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select * from replay_events order by replay_key").fetchall()


def run(work: Path, first: Path, later: Path) -> dict[str, object]:
    warehouse, rebuilt = work / "daily.duckdb", work / "daily-rebuilt.duckdb"
    for stale in [*work.glob("daily*.duckdb*"), work / "dbt-daily"]:
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse)}
    target = work / "dbt-daily"
    dbt = [str(BIN / "dbt"), "build", "--vars", BUILD_VARS, "--target-path", str(target)]
    steps: dict[str, dict[str, float]] = {}
    nodes: dict[str, list[dict[str, object]]] = {}
    steps["ingest (first delivery)"] = measure([str(BIN / "loader"), "ingest", str(first)], env)
    steps["dbt build (whole)"] = measure(dbt, env)
    nodes["dbt build (whole)"] = slowest(target)
    steps["ingest (later day)"] = measure([str(BIN / "loader"), "ingest", str(later)], env)
    shutil.copy(warehouse, rebuilt)
    steps["dbt build (daily)"] = measure(dbt, env)
    nodes["dbt build (daily)"] = slowest(target)
    rebuild_env = {**env, "BACKFILL_DUCKDB": str(rebuilt)}
    steps["dbt build --full-refresh"] = measure([*dbt, "--full-refresh"], rebuild_env)
    nodes["dbt build --full-refresh"] = slowest(target)
    equal = replay_rows(warehouse) == replay_rows(rebuilt)
    return {"steps": steps, "slowest_nodes": nodes, "replay_events_equal": equal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2_100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    first, later = deliveries(args.work, args.events)
    measured = run(args.work, first, later)
    steps = measured["steps"]
    assert isinstance(steps, dict)
    daily, whole = steps["dbt build (daily)"], steps["dbt build --full-refresh"]
    result = {
        "events": args.events,
        "files": {
            "first": len(list(first.rglob("*.txt"))),
            "later": len(list(later.rglob("*.txt"))),
        },
        "cores": os.cpu_count(),
        "memory_limit": os.environ.get("BACKFILL_MEMORY_LIMIT") or "4GB (default)",
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **measured,
        "daily_over_whole": {
            "wall": round(daily["wall_s"] / whole["wall_s"], 3),
            "cpu": round(daily["cpu_s"] / whole["cpu_s"], 3),
        },
    }
    save_result(f"daily-{args.events}", result)
    print_steps(steps, width=26)
    print(f"daily / whole: {result['daily_over_whole']}; replay_events equal: {equal_text(result)}")


def equal_text(result: dict[str, object]) -> str:
    return "yes" if result["replay_events_equal"] else "NO"


if __name__ == "__main__":
    main()
