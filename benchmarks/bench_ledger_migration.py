"""How long a ledger written before schema versions takes to open after the upgrade.

Writes a version-0 ledger (the shape releases up to 79737e4 wrote: no schema_versions,
no destination columns, Amplitude's events under `amplitude:<replay_key>`) of EVENTS
Events API events in 100-event batches, all acknowledged, and AMPLITUDE one-event
batches, then times a read-only open (`loader status`: migrated in memory, the file
untouched) and the first open for writing (a push: the file migrated).

    python benchmarks/bench_ledger_migration.py [EVENTS] [AMPLITUDE]
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from loader.push.ledger import ACKNOWLEDGED, LEDGER_VIEWS, Ledger
from loader.push.packing import PackedBatch


def batch(sid: str, keys: list[str]) -> PackedBatch:
    return PackedBatch(
        sid, "u", "c", len(keys), "".join(k + "\n" for k in keys).encode(),
        [f"h{k}" for k in keys], b"{}",
    )  # fmt: skip


def write_old_ledger(path: Path, events: int, amplitude: int) -> None:
    with Ledger.open(path) as ledger:
        for destination, count, size in (("events_api", events, 100), ("amplitude", amplitude, 1)):
            run = ledger.start_run("http://127.0.0.1:1/", "", {}, destination)
            prefix = "amplitude:" if destination == "amplitude" else ""
            for start in range(0, count, 100_000):
                stop = min(count, start + 100_000)
                batches = [
                    batch(f"{destination}-{n}", [f"{prefix}k{m}" for m in range(n, n + size)])
                    for n in range(start, stop, size)
                ]
                with ledger.transaction():
                    ledger.add_batches(run, batches)
                    ids = [b.source_request_id for b in batches]
                    ledger.settle(ACKNOWLEDGED, dict.fromkeys(ids), {})
            ledger.finish_run(run, "completed", {})
        for view in reversed(LEDGER_VIEWS):
            ledger.con.execute(f"drop view {view}")
        ledger.con.execute("drop table schema_versions")
        ledger.con.execute("alter table batches drop column destination")
        for column in ("error_code", "error_reason"):
            ledger.con.execute(f"alter table batches drop column {column}")
        for column in ("events_not_sent", "batches_not_sent", "sample_users"):
            ledger.con.execute(f"alter table runs drop column {column}")


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    amplitude = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    work = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    try:
        path = work / "ledger.duckdb"
        started = time.perf_counter()
        write_old_ledger(path, events, amplitude)
        size_mib = path.stat().st_size / 2**20
        took = time.perf_counter() - started
        print(
            f"version-0 ledger, {events:,} + {amplitude:,} events, {size_mib:.0f} MiB: {took:.1f} s"
        )
        started = time.perf_counter()
        with Ledger.open(path, read_only=True) as ledger:
            counts = ledger.event_counts("amplitude")
        took = time.perf_counter() - started
        print(
            f"read-only open (migrated in memory), {counts.acknowledged:,} Amplitude: {took:.1f} s"
        )
        started = time.perf_counter()
        with Ledger.open(path) as ledger:
            counts = ledger.event_counts("events_api")
        took = time.perf_counter() - started
        print(f"first open for writing (file migrated), {counts.acknowledged:,}: {took:.1f} s")
        started = time.perf_counter()
        with Ledger.open(path, read_only=True) as ledger:
            ledger.event_counts("amplitude")
        print(f"read-only open after: {time.perf_counter() - started:.2f} s")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"peak RSS of the process: {peak:.2f} GiB")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
