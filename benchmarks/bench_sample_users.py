"""Planning a test send (`loader push --dry-run --sample-users N`) on a generated replay set:
the greedy cover runs one query per user picked, over the (user, event name) pairs.

Usage: python benchmarks/bench_sample_users.py [--events 1000000] [--users 5,50] [--work DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_push import build_replay_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", default="5,50")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    from loader.push.runner import PushOptions, dry_run
    from loader.push.send_plan import SampleRequest

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-sample-"))
    warehouse = work / f"replay-{args.events}.duckdb"
    build_replay_set(warehouse, args.events)
    for users in [0, *(int(n) for n in args.users.split(","))]:
        sample = SampleRequest(users=users) if users else None
        options = PushOptions(
            endpoint="https://s2s.mparticle.com/v2", validate=False, sample=sample
        )
        start = time.perf_counter()
        report = dry_run(warehouse, work / "no-ledger.duckdb", options)
        elapsed = time.perf_counter() - start
        plan = report.plan
        label = f"sample of {users} users" if users else "full dry run"
        cover = (
            f", {plan.sample_pairs_covered} of {plan.sample_pairs_total} event names"
            if users
            else ""
        )
        print(f"{label:<22} {report.events_planned} events planned{cover} in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
