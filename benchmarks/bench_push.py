"""`loader push` speed and memory on a generated replay set.

1. dry run: plan + pack + build every request body of ~1M replay events (events/s);
2. throughput: a push against the emulator answering after 50 ms with a 270 batches/s
   limit (acknowledged batches/s over the send phase, against the limit);
3. memory: peak RSS of a whole 1M-event push process (emulator in its own process);
4. turn (`--steps turn`): the ledger statements of one turn of the send loop (mark a
   turn's batches in flight, record the attempts, settle the batches: 8 requests of 100
   batches, the most a turn of 4 workers records) on synthetic ledgers of
   `--ledger-sizes` batches, in ms per turn, wall and CPU. Each size is measured twice:
   addressing the batches by number and id (as the send loop does), and by id alone
   (what every statement did before batch numbers: a scan of `batches`);
5. scale (`--steps scale`): `loader push` to the emulator (no latency, no rate limit, 4
   workers, as `bench_scale.py` runs it) of generated replay sets of `--scale-events`
   events: wall time, CPU time and peak RSS of the push process at each size, and the
   ratios between the largest and the smallest.

The replay set is written straight into DuckDB with SQL, with the columns of
`replay_events` (a dbt build of 1M events takes longer than everything measured here;
one of 16M, as `bench_scale.py` does it, takes hours on a loaded 2-core machine). So the
scale step measures the push alone, at two sizes, on generated replay tables: the same
shape at every size (20 events a user), not the sample generator's data.

Results of the turn and scale steps: benchmarks/results/push-turn.json and
benchmarks/results/push-scale.json (`--no-save`: printed only).

Usage: python benchmarks/bench_push.py [--events 1000000] [--throughput-events 200000]
       [--work DIR] [--steps dry-run,throughput,memory,turn,scale]
       [--ledger-sizes 50000,1000000] [--scale-events 1000000,16000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"
LIMIT = 270.0  # batches/s the emulator allows (mParticle's default)
STEPS = ("dry-run", "throughput", "memory", "turn", "scale")

REPLAY_SQL = """
create or replace table replay_events as
with events as (
    select
        i,
        i // {per_user} as u,
        (i // {per_user}) % 5 = 0 and i % 2 = 1 as other_app,  -- some users have 2 contexts
        {now_ms} - 3 * 86400000 + (i * 7919) % (2 * 86400000) as ts,
    from range({events}) t(i)
),
shaped as (
    select
        *,
        'mpid:' || (u * 104729 + 3)::varchar as user_key,
        case when i % 4 = 0 then 'screen_view' else 'custom_event' end as event_type,
        ['Product Viewed', 'Add To Cart', 'Checkout Complete', 'Search'][1 + i % 4]
            as event_name,
        json_object(
            'environment', 'production',
            'mpid', u * 104729 + 3,
            'user_identities', json_object(
                'customer_id', 'C' || lpad(u::varchar, 7, '0'),
                'email', 'user' || u::varchar || '@example.com'
            ),
            'device_info', json_object('platform', 'iOS', 'ios_advertising_id', md5(u::varchar)),
            'application_info', json_object(
                'application_version', case when other_app then '4.1.0' else '4.2.0' end
            ),
            'ip', '203.0.113.7',
            'context', json_object(
                'data_plan', json_object('plan_id', 'shop_plan', 'plan_version', 3)
            ),
            'deleted_user_attributes', json_array()
        ) as batch_context,
    from events
),
with_json as (
    select
        *,
        case when event_type = 'screen_view' then json_object(
            'event_type', 'screen_view',
            'data', json_object(
                'screen_name', 'Product Detail',
                'timestamp_unixtime_ms', ts,
                'custom_attributes', json_object('sku', 'SKU-' || (i % 997)::varchar)
            )
        ) else json_object(
            'event_type', 'custom_event',
            'data', json_object(
                'custom_flags', json_object(),
                'event_name', event_name,
                'custom_event_type', 'transaction',
                'timestamp_unixtime_ms', ts,
                'custom_attributes', json_object(
                    'sku', 'SKU-' || (i % 997)::varchar,
                    'price', '19.99',
                    'currency', 'EUR',
                    'campaign', 'spring-' || (i % 13)::varchar
                )
            )
        ) end as event_json,
    from shaped
)
select
    'b' || (i // 6)::varchar || ':' || (hash(i) // 2)::varchar as replay_key,
    user_key,
    md5(batch_context::varchar) as context_key,
    (u * 104729 + 3)::varchar as mpid,
    event_type,
    case when event_type = 'custom_event' then event_name end as event_name,
    ts as timestamp_unixtime_ms,
    make_timestamp(ts * 1000) as event_time,
    event_json,
    batch_context,
    'blocked_event' as replay_reason,
    ({now_ms} - ts) / 86400000.0 as event_age_days,
    'keeps plan shop_plan v3: may be blocked again unless that plan version now allows the data'
        as data_plan_note,
    'low' as identity_risk,
    []::varchar[] as fixes_applied,
    'b' || (i // 6)::varchar as batch_id,
    (hash(i) // 2)::varchar as event_id,
    'ShopApp_bench.txt' as source_file,
    (i // 6)::bigint as line_number,
from with_json
"""


def build_replay_set(path: Path, events: int, per_user: int = 20) -> None:
    if path.exists():
        return
    start = time.perf_counter()
    now_ms = int(time.time() * 1000)
    with duckdb.connect(str(path)) as con:
        con.execute(REPLAY_SQL.format(events=events, per_user=per_user, now_ms=now_ms))
        [(n, users, contexts, avg)] = con.execute(
            "select count(*), count(distinct user_key), count(distinct context_key), "
            "avg(octet_length(event_json::varchar::blob)) from replay_events"
        ).fetchall()
    print(
        f"replay set: {n} events, {users} users, {contexts} contexts, "
        f"{avg:.0f} bytes an event ({time.perf_counter() - start:.1f} s to generate)"
    )


def bench_dry_run(warehouse: Path, work: Path, repeat: int) -> None:
    from loader.push.runner import PushOptions, dry_run

    ledger = work / "no-ledger.duckdb"
    for validate in (False, True):
        best = None
        for _ in range(repeat if not validate else 1):
            options = PushOptions(endpoint="https://s2s.mparticle.com/v2", validate=validate)
            start = time.perf_counter()
            report = dry_run(warehouse, ledger, options)
            elapsed = time.perf_counter() - start
            best = elapsed if best is None else min(best, elapsed)
        label = "dry run, bodies + local checks" if validate else "dry run, bodies"
        print(
            f"{label:<32} {report.events_planned} events, {report.batches_planned} batches, "
            f"{report.requests_planned} requests, {report.body_bytes / 1e6:.0f} MB in "
            f"{best:.2f} s: {report.events_planned / best:,.0f} events/s"
        )


def start_emulator(work: Path, *args: str) -> tuple[subprocess.Popen, str]:
    url_file = work / "emulator.url"
    url_file.unlink(missing_ok=True)
    env = {**os.environ, "MPARTICLE_API_KEY": "bench", "MPARTICLE_API_SECRET": "bench-secret"}
    proc = subprocess.Popen(
        [str(BIN / "loader"), "emulate", "--url-file", str(url_file), *args],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not url_file.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the emulator did not start")
        time.sleep(0.05)
    return proc, url_file.read_text().strip()


def run_push(warehouse: Path, ledger: Path, url: str, *args: str) -> tuple[float, int]:
    """Run `loader push` in its own process; its wall time and peak RSS (KiB)."""
    wall, peak, _ = measure_push(warehouse, ledger, url, *args)
    return wall, peak


def measure_push(warehouse: Path, ledger: Path, url: str, *args: str) -> tuple[float, int, float]:
    """Run `loader push` in its own process: wall seconds, peak RSS (KiB), CPU seconds."""
    for stale in ledger.parent.glob(ledger.name + "*"):
        stale.unlink()
    env = {
        **os.environ,
        "BACKFILL_DUCKDB": str(warehouse),
        "BACKFILL_LEDGER": str(ledger),
        "MPARTICLE_API_KEY": "bench",
        "MPARTICLE_API_SECRET": "bench-secret",
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "loader"), "push", "--endpoint", url, "--json", *args],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"loader push failed with status {status}")
    return time.perf_counter() - start, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def send_rate(ledger: Path) -> tuple[int, float, float]:
    """Acknowledged batches, send-phase seconds and batches/s, from the ledger."""
    with duckdb.connect(str(ledger), read_only=True) as con:
        [(batches, seconds)] = con.execute(
            "select sum(batch_count) filter (where outcome = 'accepted'), "
            "epoch(max(sent_at + to_milliseconds(latency_ms)) - min(sent_at)) from requests"
        ).fetchall()
    return batches, seconds, batches / seconds


def bench_throughput(work: Path, events: int, workers: int, rate: float) -> None:
    warehouse = work / f"replay-{events}.duckdb"
    build_replay_set(warehouse, events)
    emulator, url = start_emulator(work, "--latency-ms", "50", "--rate-limit", f"{LIMIT:g}")
    try:
        ledger = work / "throughput-ledger.duckdb"
        _, _ = run_push(warehouse, ledger, url, "--workers", str(workers), "--rate", f"{rate:g}")
        batches, seconds, per_second = send_rate(ledger)
        with duckdb.connect(str(ledger), read_only=True) as con:
            [(rate_limited,)] = con.execute(
                "select count(*) from requests where status_code = 429"
            ).fetchall()
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait()
    print(
        f"throughput (50 ms latency, {LIMIT:g}/s limit, --rate {rate:g}, --workers {workers}): "
        f"{batches} batches in {seconds:.1f} s = {per_second:.1f} batches/s, "
        f"{100 * per_second / LIMIT:.1f}% of the limit, {rate_limited} answers 429"
    )


def bench_memory(warehouse: Path, work: Path, events: int) -> None:
    emulator, url = start_emulator(work)
    try:
        ledger = work / "memory-ledger.duckdb"
        elapsed, peak = run_push(warehouse, ledger, url, "--workers", "4", "--rate", "1000000")
        batches, seconds, per_second = send_rate(ledger)
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait()
    print(
        f"push of {events} events (no rate limit, no latency): {elapsed:.1f} s wall, "
        f"{batches} batches acknowledged, peak RSS of the push process {peak / 1024:.0f} MiB"
    )


SYNTHETIC_LEDGER_SQL = """
insert into batches (source_request_id, run_id, last_run_id, user_key, context_key,
    event_count, body_bytes, status, planned_at, destination, batch_no)
select
    {sid} as source_request_id, 1, 1, 'mpid:' || i, md5((i % 7)::varchar), 16, 6000,
    'planned', now(), 'events_api', i + 1
from range({batches}) t(i);
insert into batch_events
select {sid}, j, 'k' || i || '-' || j, md5((i * 16 + j)::varchar)
from range({batches}) t(i), range(16) u(j);
insert into requests (run_id, request_no, attempt, sent_at, latency_ms, status_code,
    outcome, batch_count, body_bytes, source_request_ids)
select 1, i, 1, now(), 3, 202, 'accepted', 100, 250000, [{sid}]
from range({batches} // 100) t(i);
"""
# a source_request_id's shape (a UUID's text), from i: random order, as real ids are
UUID_SQL = (
    "(substr(md5(i::varchar), 1, 8) || '-' || substr(md5(i::varchar), 9, 4) || '-5' || "
    "substr(md5(i::varchar), 14, 3) || '-8' || substr(md5(i::varchar), 18, 3) || '-' || "
    "substr(md5(i::varchar), 21, 12))"
)
TURN_REQUESTS, REQUEST_BATCHES = 8, 100  # a turn of 4 workers: 8 requests of 100 batches


def synthetic_ledger(path: Path, batches: int) -> None:
    """A ledger of `batches` planned batches of 16 events (and a request per 100 batches),
    made by SQL through today's schema."""
    from loader.push.ledger import Ledger

    if path.exists():
        return
    start = time.perf_counter()
    with Ledger.open(path) as ledger:
        ledger.start_run("http://127.0.0.1:1/v2", "", {})
        ledger.con.execute(SYNTHETIC_LEDGER_SQL.format(batches=batches, sid=UUID_SQL))
    print(f"synthetic ledger of {batches} batches: {time.perf_counter() - start:.1f} s")


def bench_turn(work: Path, sizes: list[int], turns: int) -> dict[str, dict[str, float]]:
    """The send loop's ledger statements of `turns` turns, on a copy of each synthetic
    ledger, by number and by id alone: mean ms of wall and CPU time per turn."""
    from loader.push.attempts import Attempt
    from loader.push.ledger import ACKNOWLEDGED, Ledger

    per_turn = TURN_REQUESTS * REQUEST_BATCHES
    results: dict[str, dict[str, float]] = {}
    for size in sizes:
        source = work / f"ledger-{size}.duckdb"
        synthetic_ledger(source, size)
        for addressing in ("number", "id"):
            copy = work / f"ledger-{size}-{addressing}.duckdb"
            shutil.copy(source, copy)
            with Ledger.open(copy) as ledger:
                first = max(0, (size - turns * per_turn) // 2)
                rows = ledger.query(
                    "select source_request_id, batch_no from batches "
                    "where batch_no > ? order by batch_no limit ?",
                    [first, turns * per_turn],
                )
                walls, cpus = [], []
                for turn in range(turns):
                    chunk = rows[turn * per_turn : (turn + 1) * per_turn]
                    ids = [sid for sid, _ in chunk]
                    numbers = dict(chunk) if addressing == "number" else None
                    at = datetime.now(UTC)
                    attempts = [
                        Attempt(n, 1, at, 3, 202, "accepted", ids[n * 100 : (n + 1) * 100], 250_000)
                        for n in range(TURN_REQUESTS)
                    ]
                    wall, cpu = time.perf_counter(), time.process_time()
                    # the runner's turn: the last turn's outcomes, then the next hand-over
                    with ledger.transaction():
                        ledger.record_attempts(1, attempts)
                        ledger.settle(
                            ACKNOWLEDGED, dict.fromkeys(ids), dict.fromkeys(ids, 1), numbers
                        )
                        ledger.mark_in_flight(ids, numbers)
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
                [(settled,)] = ledger.query(
                    "select count(*) from batches where status = 'acknowledged'"
                )
                assert settled == turns * per_turn, settled
            copy.unlink()
            key = f"{size} batches, by {addressing}"
            results[key] = {
                "batches": size,
                "wall_ms_mean": round(1000 * statistics.mean(walls), 2),
                "wall_ms_median": round(1000 * statistics.median(walls), 2),
                "cpu_ms_mean": round(1000 * statistics.mean(cpus), 2),
            }
            print(
                f"turn on a ledger of {size:>9} batches, by {addressing:<6}: "
                f"{results[key]['wall_ms_mean']:7.1f} ms wall (median "
                f"{results[key]['wall_ms_median']:.1f}), {results[key]['cpu_ms_mean']:7.1f} ms CPU"
            )
    return results


def bench_scale(work: Path, sizes: list[int]) -> dict[str, dict[str, float]]:
    """`loader push` of each size to the emulator: wall, CPU, peak RSS of the push."""
    results: dict[str, dict[str, float]] = {}
    for events in sizes:
        warehouse = work / f"replay-{events}.duckdb"
        build_replay_set(warehouse, events)
        emulator, url = start_emulator(work)
        load = os.getloadavg()[0]
        try:
            ledger = work / f"scale-ledger-{events}.duckdb"
            wall, peak, cpu = measure_push(
                warehouse, ledger, url, "--workers", "4", "--rate", "1000000"
            )
            batches, _, _ = send_rate(ledger)
        finally:
            emulator.send_signal(signal.SIGTERM)
            emulator.wait()
        results[str(events)] = {
            "events": events,
            "batches": batches,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "peak_mib": round(peak / 1024),
            "load_before": round(load, 2),
        }
        print(
            f"push of {events} events ({batches} batches): {wall:.1f} s wall, {cpu:.1f} s CPU, "
            f"peak RSS {peak / 1024:.0f} MiB (load average {load:.1f} before)"
        )
    if len(sizes) > 1:
        small, large = results[str(min(sizes))], results[str(max(sizes))]
        print(
            f"from {min(sizes)} to {max(sizes)} events ({max(sizes) / min(sizes):g}x): "
            f"wall {large['wall_s'] / small['wall_s']:.1f}x, "
            f"CPU {large['cpu_s'] / small['cpu_s']:.1f}x"
        )
    return results


def save(name: str, results: dict[str, dict[str, float]]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(
        json.dumps(
            {
                "cores": os.cpu_count(),
                "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results: {path.relative_to(ROOT)}")


def sizes_of(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--throughput-events", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rate", type=float, default=265.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench-push"))
    parser.add_argument(
        "--steps", default="dry-run,throughput,memory", help=f"comma-separated: {','.join(STEPS)}"
    )
    parser.add_argument("--skip", default="", help="comma-separated steps not to run")
    parser.add_argument("--ledger-sizes", default="50000,1000000", help="batches (turn step)")
    parser.add_argument("--turns", type=int, default=50, help="turns measured (turn step)")
    parser.add_argument("--scale-events", default="1000000,16000000", help="events (scale step)")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results")
    args = parser.parse_args()
    steps = set(filter(None, args.steps.split(","))) - set(filter(None, args.skip.split(",")))
    if unknown := steps - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"cores: {os.cpu_count()}")
    if steps & {"dry-run", "memory"}:
        warehouse = args.work / f"replay-{args.events}.duckdb"
        build_replay_set(warehouse, args.events)
    if "dry-run" in steps:
        bench_dry_run(warehouse, args.work, args.repeat)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the dry runs' process: {peak:.0f} MiB")
    if "throughput" in steps:
        bench_throughput(args.work, args.throughput_events, args.workers, args.rate)
    if "memory" in steps:
        bench_memory(warehouse, args.work, args.events)
    if "turn" in steps:
        turns = bench_turn(args.work, sizes_of(args.ledger_sizes), args.turns)
        if not args.no_save:
            save("push-turn.json", turns)
    if "scale" in steps:
        scale = bench_scale(args.work, sizes_of(args.scale_events))
        if not args.no_save:
            save("push-scale.json", scale)


if __name__ == "__main__":
    main()
