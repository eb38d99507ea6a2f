"""A full `dbt build` on Spark (local[2], dbt-spark session method) and on DuckDB, on the
same generated quarantine folder of N events: wall and CPU seconds of each step, each in its
own process. DuckDB: `loader ingest` then `dbt build`; Spark: `dbt build --target spark`,
which reads the quarantine files itself (gzip files renamed .gz, as Spark needs).

Run with the spark extra (`make bench-spark N=200000`). Writes
benchmarks/results/spark-<N>.json.

Usage: python benchmarks/bench_spark.py [--events 200000] [--work DIR] [--skip-duckdb]
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

import yaml

from loader.ingest.samples import generate

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"
# the demo's fix chain (examples/demo_vars.yml; the project's default is empty)
DEMO_FIXES = yaml.safe_load((ROOT / "examples/demo_vars.yml").read_text())["fixes"]
VARS = {"replay_attribute_only_events": True, "fixes": DEMO_FIXES}


def measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run `command` as a child process: wall seconds, and the CPU seconds of the processes
    it waited for (for Spark, the dbt process only: the JVM's CPU is not counted)."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    before = os.times()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()
    if result.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{result.stdout[-5000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_before": round(load, 2)}


def quarantine(work: Path, events: int) -> tuple[Path, Path]:
    """The sample folder, and its copy with gzip files named .gz for Spark."""
    folder, for_spark = work / f"quarantine-{events}", work / f"quarantine-{events}-spark"
    if not folder.exists():
        generate(folder, events, events_per_file=50_000)
    if not for_spark.exists():
        shutil.copytree(folder, for_spark)
        for path in for_spark.rglob("*.txt"):
            if path.read_bytes()[:2] == b"\x1f\x8b":
                path.rename(path.with_name(path.name + ".gz"))
    return folder, for_spark


def dbt(*args: str, work: Path, dbt_vars: dict) -> list[str]:
    return [
        str(BIN / "dbt"),
        *args,
        "--vars",
        json.dumps(dbt_vars),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]


def run(work: Path, events: int, skip_duckdb: bool) -> dict:
    folder, for_spark = quarantine(work, events)
    for stale in [work / "duckdb", work / "spark"]:
        shutil.rmtree(stale, ignore_errors=True)
    (work / "duckdb").mkdir()
    env = {
        **os.environ,
        "BACKFILL_DUCKDB": str(work / "duckdb" / "bench.duckdb"),
        "BACKFILL_SPARK_DIR": str(work / "spark"),
    }
    steps = {}
    if not skip_duckdb:
        steps["duckdb: loader ingest"] = measure([str(BIN / "loader"), "ingest", str(folder)], env)
        steps["duckdb: dbt build"] = measure(dbt("build", work=work / "duckdb", dbt_vars=VARS), env)
    spark_vars = {**VARS, "quarantine_path": str(for_spark)}
    steps["spark: dbt build"] = measure(
        dbt("build", "--target", "spark", work=work / "spark", dbt_vars=spark_vars), env
    )
    return {"events": events, "cores": os.cpu_count(), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=ROOT / "target" / "bench-spark")
    parser.add_argument("--skip-duckdb", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    result = run(args.work, args.events, args.skip_duckdb)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"spark-{args.events}.json").write_text(json.dumps(result, indent=2) + "\n")
    for name, step in result["steps"].items():
        print(f"{name:24} {step['wall_s']:8.1f} s wall {step['cpu_s']:8.1f} s CPU")


if __name__ == "__main__":
    main()
