"""Wall time and peak memory of `loader ingest` and `dbt build` on ~1M generated events.

Usage: python benchmarks/bench_ingest_build.py [--events 1000000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import yaml

from loader.ingest.samples import generate

ROOT = Path(__file__).resolve().parent.parent
# the demo's fix chain (examples/demo_vars.yml; the project's default is empty)
DEMO_FIXES = yaml.safe_load((ROOT / "examples/demo_vars.yml").read_text())["fixes"]
BIN = Path(sys.executable).parent


def measure(name: str, command: list[str], env: dict) -> None:
    """Run `command`, then print its wall time and peak resident memory."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{name} failed with status {status}")
    print(f"{name:<14} {elapsed:7.1f} s   peak RSS {usage.ru_maxrss / 1024:7.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench"))
    args = parser.parse_args()

    folder = args.work / f"quarantine-{args.events}"
    if not folder.exists():
        start = time.perf_counter()
        summary = generate(folder, args.events, events_per_file=50_000)
        print(
            f"generated {summary.events} events in {summary.files} files "
            f"({time.perf_counter() - start:.1f} s)"
        )
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"input: {folder} ({size / 2**20:.0f} MiB on disk, half the files gzipped)")

    warehouse = args.work / "bench.duckdb"
    warehouse.unlink(missing_ok=True)
    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse)}
    target = args.work / "dbt"
    shutil.rmtree(target, ignore_errors=True)
    measure("loader ingest", [str(BIN / "loader"), "ingest", str(folder)], env)
    measure(
        "dbt build",
        [
            str(BIN / "dbt"),
            "build",
            "--vars",
            json.dumps({"fixes": DEMO_FIXES}),
            "--target-path",
            str(target / "target"),
            "--log-path",
            str(target / "logs"),
        ],
        env,
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in (
            "raw.quarantine_lines",
            "stg_quarantine__events",
            "replay_events",
            "blocked_events__outcomes",
        ):
            count = con.execute(f"select count(*) from {table}").fetchone()[0]
            print(f"{table:<28} {count:>10,} rows")


if __name__ == "__main__":
    main()
