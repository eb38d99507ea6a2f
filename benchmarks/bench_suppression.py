"""What a suppression list costs the build: `dbt build` of the same N generated events
(`loader sample` data, as `make bench-scale`) without a list and with one of M identities.

One ingest; its warehouse is copied twice, so that each build starts from the same
fresh warehouse with a target folder of its own (dbt parses the project for each). The
list has M identities: a third emails (written in upper case, with spaces: they match
after trimming and lower-casing), a third customer_ids, a third MPIDs; 1% of the
data's users are on it (matched by email or customer_id), the rest match no one. Also
timed: `loader suppress` (loading the list), and from dbt's run_results.json the models
the list touches.

Writes benchmarks/results/suppression-<N>-<M>.json.

Usage: python benchmarks/bench_suppression.py [--events 1000000] [--identities 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import BIN, RESULTS, VARS, measure, quarantine  # noqa: E402

LIST_MODELS = (
    "stg_suppression__identities",
    "int_batches__replay_context",
    "int_events__classified",
    "blocked_identities__outcomes",
)


def write_list(path: Path, identities: int, users: int, seed: int = 5) -> int:
    """A CSV of `identities` rows; returns how many users of the data it names (1%)."""
    rng = random.Random(seed)
    listed_users = rng.sample(range(users), max(1, users // 100))
    with path.open("w") as out:
        out.write("identity_type,identity\n")
        for n, user in enumerate(listed_users):
            if n % 2:
                out.write(f"email,  USER{user}@Example.com \n")
            else:
                out.write(f"customer_id,C{user:07d}\n")
        for n in range(identities - len(listed_users)):
            kind = n % 3
            if kind == 0:
                out.write(f"email,gone{n}@example.org\n")
            elif kind == 1:
                out.write(f"customer_id,X{n:09d}\n")
            else:
                out.write(f"mpid,{rng.randint(-(2**63), 2**63 - 1)}\n")
    return len(listed_users)


def model_times(target: Path) -> dict[str, float]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    times = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}
    return {name: round(times[name], 2) for name in LIST_MODELS if name in times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench"))
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    folder = quarantine(work, args.events)
    base, listed = work / "supp-base.duckdb", work / "supp-list.csv"
    for stale in [*work.glob("supp-*.duckdb*"), *work.glob("supp-dbt-*")]:
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    env = {**os.environ, "BACKFILL_DUCKDB": str(base)}
    ingest = measure([str(BIN / "loader"), "ingest", str(folder)], env)
    users = max(5, args.events // 40)  # as loader.ingest.samples.generate draws them
    matched_users = write_list(listed, args.identities, users)
    without, with_list = work / "supp-without.duckdb", work / "supp-with.duckdb"
    shutil.copy(base, without)
    shutil.copy(base, with_list)
    base.unlink()
    load = measure(
        [str(BIN / "loader"), "suppress", str(listed)], {**env, "BACKFILL_DUCKDB": str(with_list)}
    )
    builds, models = {}, {}
    for name, warehouse in (("without list", without), ("with list", with_list)):
        target = work / f"supp-dbt-{name.replace(' ', '-')}"
        dbt = [str(BIN / "dbt"), "build", "--vars", VARS, "--target-path", str(target)]
        builds[name] = measure(dbt, {**env, "BACKFILL_DUCKDB": str(warehouse)})
        models[name] = model_times(target)
    import duckdb

    with duckdb.connect(str(with_list), read_only=True) as con:
        [(suppressed,)] = con.execute(
            "select count(*) from blocked_events__outcomes where skip_reason = 'suppressed_user'"
        ).fetchall()
    a, b = builds["without list"], builds["with list"]
    result = {
        "events": args.events,
        "identities": args.identities,
        "users_listed": matched_users,
        "events_suppressed": suppressed,
        "ingest": ingest,
        "loader suppress": load,
        "builds": builds,
        "model_seconds": models,
        "wall_ratio": round(b["wall_s"] / a["wall_s"], 3),
        "cpu_ratio": round(b["cpu_s"] / a["cpu_s"], 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"suppression-{args.events}-{args.identities}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    for stale in [without, with_list, *work.glob("supp-*.duckdb.wal")]:
        stale.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
