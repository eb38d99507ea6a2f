"""`loader ingest` from S3 against from local disk: the same files, one run, as a ratio.

The sample of `loader sample --events N` is written to disk and uploaded to a local moto
S3 server (127.0.0.1); then each is ingested into a fresh warehouse by a `loader ingest`
process, and a second ingest of the bucket (nothing to download) is timed too. Peak
memory is each `loader ingest` process's own.

Usage: python benchmarks/bench_ingest_s3.py [--events 1000000] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from loader.ingest.samples import generate

ROOT = Path(__file__).resolve().parent.parent
LOADER = str(Path(sys.executable).parent / "loader")
BUCKET = "bench-quarantine"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int) -> None:
    for _ in range(300):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"moto_server did not start on 127.0.0.1:{port}")


def timed_ingest(name: str, argument: str, env: dict) -> float:
    """Seconds for `loader ingest ARGUMENT`; prints them with the peak memory."""
    start = time.perf_counter()
    proc = subprocess.Popen([LOADER, "ingest", argument], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    tail = proc.stdout.read().decode().strip().splitlines()[-2:]
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{name} failed with status {status}")
    print(f"{name:<24} {elapsed:7.1f} s   peak RSS {usage.ru_maxrss / 1024:5.0f} MiB   {tail}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/backfill-bench-s3"))
    args = parser.parse_args()

    folder = args.work / f"sample-{args.events}"
    if not folder.exists():
        summary = generate(folder, args.events)
        print(f"generated {summary.events} events in {summary.files} files")
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    print(f"input: {len(files)} files, {size / 2**20:.0f} MiB")

    # moto in its own process: the ingest processes, forked from this one, start small
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }
    os.environ.update(env)
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint)
    fs.mkdir(BUCKET)
    start = time.perf_counter()
    fs.put(str(folder) + "/", f"{BUCKET}/mparticle/", recursive=True)
    print(f"uploaded to {endpoint} in {time.perf_counter() - start:.1f} s")

    try:
        env["BACKFILL_DUCKDB"] = str(args.work / "disk.duckdb")
        (args.work / "disk.duckdb").unlink(missing_ok=True)
        disk = timed_ingest("ingest from disk", str(folder), env)
        env["BACKFILL_DUCKDB"] = str(args.work / "s3.duckdb")
        (args.work / "s3.duckdb").unlink(missing_ok=True)
        s3 = timed_ingest("ingest from S3", f"s3://{BUCKET}/mparticle/", env)
        timed_ingest("again from S3 (no change)", f"s3://{BUCKET}/mparticle/", env)
    finally:
        moto.terminate()
        moto.wait()
    print(f"S3 / disk: {s3 / disk:.2f}x")


if __name__ == "__main__":
    main()
