"""`loader push` speed and memory on a generated replay set.

1. dry run: plan + pack + build every request body of ~1M replay events (events/s);
2. throughput: a push against the emulator answering after 50 ms with a 270 batches/s
   limit (acknowledged batches/s over the send phase, against the limit);
3. memory: peak RSS of a whole 1M-event push process (emulator in its own process).

The replay set is written straight into DuckDB with SQL, with the columns of
`replay_events` (a dbt build of 1M events takes longer than everything measured here).

Usage: python benchmarks/bench_push.py [--events 1000000] [--throughput-events 200000]
       [--work DIR] [--skip dry-run,throughput,memory]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LIMIT = 270.0  # batches/s the emulator allows (mParticle's default)

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
    return time.perf_counter() - start, usage.ru_maxrss


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--throughput-events", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rate", type=float, default=265.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench-push"))
    parser.add_argument("--skip", default="", help="comma-separated: dry-run,throughput,memory")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    args.work.mkdir(parents=True, exist_ok=True)
    warehouse = args.work / f"replay-{args.events}.duckdb"
    build_replay_set(warehouse, args.events)
    print(f"cores: {os.cpu_count()}")
    if "dry-run" not in skip:
        bench_dry_run(warehouse, args.work, args.repeat)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the dry runs' process: {peak:.0f} MiB")
    if "throughput" not in skip:
        bench_throughput(args.work, args.throughput_events, args.workers, args.rate)
    if "memory" not in skip:
        bench_memory(warehouse, args.work, args.events)


if __name__ == "__main__":
    main()
