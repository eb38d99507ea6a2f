"""What a suppression list costs the build: `dbt build` of the same N generated events
(`loader sample` data, as `make bench-scale`) without a list and with one of M identities.

One ingest, then two base warehouses: one without a list, one with the list loaded by
`loader suppress`. The builds alternate (without, with, without, with, ...: `--repeats`
pairs), each on a fresh copy of its base with a target folder of its own (dbt parses the
project each time), so that a machine whose load changes during the run weighs on both
alike; the load average is recorded as each build starts. The list has M identities: a
third emails (written in upper case, with spaces: they match after trimming and
lower-casing), a third customer_ids, a third MPIDs; 1% of the data's users are on it
(matched by email or customer_id), the rest match no one. Also timed: `loader suppress`
(loading the list), and from dbt's run_results.json every model (the ones the list
touches per build, all of them as medians).

Writes benchmarks/results/suppression-<N>-<M>.json (after each build, so that a run cut
short keeps what it measured); deletes its warehouses, keeps the generated events.

Usage: python benchmarks/bench_suppression.py [--events 1000000] [--identities 100000]
       [--repeats 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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
    """Each model's (and test's) execution seconds in the build's run_results.json."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".", 2)[-1]: r["execution_time"] for r in results}


def remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def suppressed_events(warehouse: Path) -> int:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(count,)] = con.execute(
            "select count(*) from blocked_events__outcomes where skip_reason = 'suppressed_user'"
        ).fetchall()
    return int(count)


def build(
    work: Path, base: Path, env: dict[str, str]
) -> tuple[dict[str, Any], dict[str, float], int]:
    """`dbt build` on a fresh copy of `base`: its measure, model seconds, suppressed count."""
    warehouse, target = work / "supp-run.duckdb", work / "supp-dbt"
    remove(warehouse, Path(f"{warehouse}.wal"), Path(f"{warehouse}.tmp"), target)
    shutil.copy(base, warehouse)
    dbt = [str(BIN / "dbt"), "build", "--vars", VARS, "--target-path", str(target)]
    load_average = [round(n, 2) for n in os.getloadavg()]
    started_at = time.strftime("%H:%M:%S UTC", time.gmtime())
    measured: dict[str, Any] = measure(dbt, {**env, "BACKFILL_DUCKDB": str(warehouse)})
    measured |= {"load_average_1_5_15": load_average, "started_at": started_at}
    models, suppressed = model_times(target), suppressed_events(warehouse)
    remove(warehouse, Path(f"{warehouse}.wal"), Path(f"{warehouse}.tmp"), target)
    return measured, models, suppressed


def summary(runs: list[dict[str, Any]], models: list[dict[str, float]]) -> dict[str, Any]:
    """Medians of a variant's builds: wall, CPU, and each model's seconds."""
    names = sorted(set().union(*models)) if models else []
    return {
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 2),
        "model_seconds": {
            n: round(statistics.median(m.get(n, 0.0) for m in models), 2) for n in names
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="builds of each variant")
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench"))
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    folder = quarantine(work, args.events)
    without, with_list = work / "supp-without.duckdb", work / "supp-with.duckdb"
    listed = work / "supp-list.csv"
    remove(*work.glob("supp-*.duckdb*"), *work.glob("supp-dbt*"))
    env = {**os.environ, "BACKFILL_DUCKDB": str(without)}
    env.pop("BACKFILL_MEMORY_LIMIT", None)  # the default limit (4GB), as a user gets it
    ingest = measure([str(BIN / "loader"), "ingest", str(folder)], env)
    users = max(5, args.events // 40)  # as loader.ingest.samples.generate draws them
    matched_users = write_list(listed, args.identities, users)
    remove(Path(f"{without}.wal"), Path(f"{without}.tmp"))
    shutil.copy(without, with_list)
    load = measure(
        [str(BIN / "loader"), "suppress", str(listed)], {**env, "BACKFILL_DUCKDB": str(with_list)}
    )
    variants = {"without list": without, "with list": with_list}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    models: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    suppressed = {name: 0 for name in variants}
    out = RESULTS / f"suppression-{args.events}-{args.identities}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    for repeat in range(args.repeats):
        for name, base in variants.items():
            measured, times, suppressed[name] = build(work, base, env)
            runs[name].append({"repeat": repeat + 1, **measured})
            models[name].append(times)
            print(f"{name:<13} {json.dumps(measured)}", flush=True)
            result = report(args, matched_users, suppressed, ingest, load, runs, models)
            out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "medians"}, indent=2))
    remove(without, with_list, *work.glob("supp-*.duckdb*"), listed)


def report(
    args: argparse.Namespace,
    matched_users: int,
    suppressed: dict[str, int],
    ingest: dict[str, float],
    load: dict[str, float],
    runs: dict[str, list[dict[str, Any]]],
    models: dict[str, list[dict[str, float]]],
) -> dict[str, Any]:
    """The results file: every build in order of its start, the medians and their ratios."""
    medians = {name: summary(runs[name], models[name]) for name in runs if runs[name]}
    a, b = medians.get("without list"), medians.get("with list")
    list_models = {
        name: [{m: round(t[m], 2) for m in LIST_MODELS if m in t} for t in models[name]]
        for name in models
    }
    return {
        "events": args.events,
        "identities": args.identities,
        "repeats": args.repeats,
        "cores": os.cpu_count(),
        "memory_limit": "4GB (default)",  # main() drops BACKFILL_MEMORY_LIMIT
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "users_listed": matched_users,
        "events_suppressed": suppressed["with list"],
        "events_suppressed_without_list": suppressed["without list"],
        "ingest": ingest,
        "loader suppress": load,
        "builds": runs,
        "list_model_seconds": list_models,
        "median_wall_s": {n: m["wall_s"] for n, m in medians.items()},
        "median_cpu_s": {n: m["cpu_s"] for n, m in medians.items()},
        "wall_ratio": round(b["wall_s"] / a["wall_s"], 3) if a and b else None,
        "cpu_ratio": round(b["cpu_s"] / a["cpu_s"], 3) if a and b else None,
        "medians": {n: m["model_seconds"] for n, m in medians.items()},
    }


if __name__ == "__main__":
    main()
