"""A backfill of N events end to end, each step in its own process: wall time, CPU time
and peak RSS of `loader ingest`, DuckDB's own read of the same files (the ceiling for
ingest), `dbt build`, the fix loop (`dbt build -s <fix>+` after the full build), a dry run,
a push to the local emulator and `loader report` after it. Attribute-only events are opted
in, as in a real backfill.

Writes benchmarks/results/scale-<N>.json, then from every such file the table
benchmarks/results/scale.md, the chart docs/performance-scale.svg and the measured section
of docs/performance.md.

Usage: python benchmarks/bench_scale.py [--events 200000] [--work DIR] [--render-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_push import start_emulator  # noqa: E402
from scale_report import render  # noqa: E402

from loader.ingest.samples import generate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"
FIX = "fix_search_custom_event_type"  # the fix the loop edits: the middle of the chain
# the demo's fix chain (examples/demo_vars.yml; the project's default is empty)
DEMO_FIXES = yaml.safe_load((ROOT / "examples/demo_vars.yml").read_text())["fixes"]
VARS = json.dumps({"replay_attribute_only_events": True, "fixes": DEMO_FIXES})
CEILING = """
import sys, duckdb
files = sys.argv[2:]
gz = [f for f in files if open(f, 'rb').read(2) == b'\\x1f\\x8b']
plain = [f for f in files if f not in gz]
con = duckdb.connect(sys.argv[1])
con.execute("create or replace table lines as "
    "select * from read_json_objects(?, format='newline_delimited', compression='gzip') "
    "union all "
    "select * from read_json_objects(?, format='newline_delimited', compression='none')",
    [gz or ['/dev/null'], plain or ['/dev/null']])
con.execute('checkpoint')
"""


def measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run `command` as a child process: wall and CPU seconds, peak RSS (MiB), load."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(command[:3])} failed with status {status}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mib": round(usage.ru_maxrss / 1024),
        "load_before": round(load, 2),
    }


def save_result(name: str, result: dict[str, object]) -> None:
    """`result` as benchmarks/results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


def print_steps(steps: dict[str, dict[str, float]], width: int = 22) -> None:
    """One line a step: wall and CPU time, peak memory and the load it started under."""
    for name, step in steps.items():
        print(
            f"{name:<{width}} {step['wall_s']:8.1f} s wall {step['cpu_s']:8.1f} s CPU "
            f"{step['peak_mib']:6d} MiB  (load {step['load_before']})"
        )


def quarantine(work: Path, events: int) -> Path:
    folder = work / f"quarantine-{events}"
    if not folder.exists():
        generate(folder, events, events_per_file=50_000)
    return folder


def run_steps(work: Path, folder: Path) -> dict[str, dict[str, float]]:
    """Every step of a backfill, in order, on fresh warehouse and ledger files."""
    warehouse, ledger = work / "scale.duckdb", work / "scale-ledger.duckdb"
    for stale in [*work.glob("scale*.duckdb*"), work / "dbt"]:
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BACKFILL_DUCKDB": str(warehouse),
        "BACKFILL_LEDGER": str(ledger),
        "MPARTICLE_API_KEY": "bench",
        "MPARTICLE_API_SECRET": "bench-secret",
    }
    dbt = [str(BIN / "dbt"), "build", "--vars", VARS, "--target-path", str(work / "dbt")]
    files = [str(p) for p in sorted(folder.rglob("*")) if p.is_file()]
    files = [f for f in files if "verification" not in f.lower()]
    steps = {
        "duckdb read (ceiling)": measure(
            [sys.executable, "-c", CEILING, str(work / "scale-ceiling.duckdb"), *files], env
        ),
        "ingest": measure([str(BIN / "loader"), "ingest", str(folder)], env),
        "dbt build": measure(dbt, env),
        "fix loop": measure([*dbt, "--select", f"{FIX}+"], env),
        "dry run": measure([str(BIN / "loader"), "push", "--dry-run"], env),
    }
    emulator, url = start_emulator(work)
    try:
        push = [str(BIN / "loader"), "push", "--endpoint", url, "--workers", "4"]
        steps["push (emulator)"] = measure([*push, "--rate", "1000000"], env)
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait()
    steps["report"] = measure([str(BIN / "loader"), "report", "--out", str(work / "r.html")], env)
    (work / "scale-ceiling.duckdb").unlink(missing_ok=True)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench"))
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    if not args.render_only:
        args.work.mkdir(parents=True, exist_ok=True)
        folder = quarantine(args.work, args.events)
        steps = run_steps(args.work, folder)
        result = {
            "events": args.events,
            "input_mib": round(sum(p.stat().st_size for p in folder.rglob("*")) / 2**20),
            "cores": os.cpu_count(),
            "memory_limit": os.environ.get("BACKFILL_MEMORY_LIMIT") or "4GB (default)",
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "steps": steps,
        }
        save_result(f"scale-{args.events}", result)
        print_steps(steps)
    render(RESULTS, ROOT / "docs")


if __name__ == "__main__":
    main()
