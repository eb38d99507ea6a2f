"""Ingest against its ceiling, in one run: DuckDB's own `read_json_objects` of the files
of `bench_scale.py`, then `loader ingest` of them into a new warehouse (each in its own
process: wall time, CPU time of the process and its workers, peak RSS, load average).

Writes benchmarks/results/ingest-<N>.json.

Usage: python benchmarks/bench_ingest_scale.py [--events 4000000] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import BIN, CEILING, measure, print_steps, quarantine, save_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folder = quarantine(args.work, args.events)
    files = [str(p) for p in sorted(folder.rglob("*")) if p.is_file()]
    files = [f for f in files if "verification" not in f.lower()]
    warehouse, ceiling = args.work / "ingest.duckdb", args.work / "ingest-ceiling.duckdb"
    for stale in (warehouse, ceiling):
        stale.unlink(missing_ok=True)
    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse)}
    steps = {
        "duckdb read (ceiling)": measure(
            [sys.executable, "-c", CEILING, str(ceiling), *files], env
        ),
        "ingest": measure([str(BIN / "loader"), "ingest", str(folder)], env),
    }
    ceiling.unlink(missing_ok=True)
    ratio = steps["duckdb read (ceiling)"]["wall_s"] / steps["ingest"]["wall_s"]
    result = {
        "events": args.events,
        "cores": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "steps": steps,
        "ceiling_over_ingest_wall": round(ratio, 2),
    }
    save_result(f"ingest-{args.events}", result)
    print_steps(steps)
    print(f"ceiling / ingest (wall): {ratio:.2f}x")


if __name__ == "__main__":
    main()
