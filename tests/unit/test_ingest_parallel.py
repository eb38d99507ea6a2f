"""Local files read ahead by worker processes give the very raw tables of a serial run,
and a bad line is still reported with its file and line."""

from __future__ import annotations

import gzip
import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loader.errors import LoaderError
from loader.ingest import importer, parallel
from loader.ingest.importer import ingest
from loader.warehouse import connect


def batch(n: int) -> bytes:
    return b'{"batch_id":"%d","mpid":9223372036854775807,"events":[{"data":{"n":%d}}]}' % (n, n)


def quarantine(folder: Path) -> list[Path]:
    folder.mkdir()
    files = []
    for i in range(6):
        lines = [batch(i * 1000 + n) for n in range(300)]
        if i == 3:
            lines[41] = b'{"batch_id": NaN}'  # line 42: orjson refuses it
        content = b"\n".join(lines) + b"\n"
        path = folder / f"part-{i}.txt"
        path.write_bytes(gzip.compress(content) if i % 2 else content)
        files.append(path)
    (folder / "part-6.txt").write_bytes(gzip.compress(batch(7))[:-6])  # truncated gzip
    return [*files, folder / "part-6.txt"]


def raw_tables(warehouse: Path, folder: Path) -> tuple[dict, list, list]:
    with connect(warehouse) as con:
        summary = ingest(con, [str(folder)])
        tables = {
            table: con.execute(
                f"select * exclude (ingested_at) from raw.{table} order by all"
            ).fetchall()
            for table in ("quarantine_lines", "rejected_lines", "ingested_files")
        }
        schema = con.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' order by all"
        ).fetchall()
    reported = [(Path(r.source_file).name, r.line_number, r.reason) for r in summary.rejections]
    statuses = [(Path(f.path).name, f.status, Path(f.note).name) for f in summary.files]
    return tables, reported, schema, statuses


def test_parallel_ingest_gives_the_raw_tables_of_a_serial_one(tmp_path, monkeypatch):
    folder = tmp_path / "q"
    quarantine(folder)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 10**15)
    serial = raw_tables(tmp_path / "serial.duckdb", folder)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    parallel_run = raw_tables(tmp_path / "parallel.duckdb", folder)

    assert parallel_run == serial
    tables, reported, _, _ = parallel_run
    assert len(tables["quarantine_lines"]) == 6 * 300 - 1
    assert reported[0][:2] == ("part-3.txt", 42)
    assert reported[0][2].startswith("invalid JSON")
    assert reported[1][0] == "part-6.txt" and "gzip stream truncated" in reported[1][2]
    assert len(reported) == 2


def test_parallel_ingest_again_changes_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "q"
    quarantine(folder)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    first = raw_tables(tmp_path / "w.duckdb", folder)
    with connect(tmp_path / "w.duckdb") as con:
        summary = ingest(con, [str(folder)])
    assert {f.status for f in summary.files} == {"unchanged"}
    assert raw_tables(tmp_path / "w.duckdb", folder)[0] == first[0]


def test_parallel_ingest_across_commits_and_copies_matches_a_serial_one(tmp_path, monkeypatch):
    """A commit after every file, a file whose content another file already has, and a
    file changed since an earlier ingest: the same rows, statuses and notes either way."""
    folder = tmp_path / "q"
    quarantine(folder)
    (folder / "part-7.txt").write_bytes((folder / "part-1.txt").read_bytes())  # a copy
    monkeypatch.setattr(importer, "COMMIT_BYTES", 1)
    runs = []
    for min_bytes in (10**15, 0):  # serial, then parallel
        monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", min_bytes)
        warehouse = tmp_path / f"w{min_bytes}.duckdb"
        (folder / "part-0.txt").write_bytes(batch(1) + b"\n")
        raw_tables(warehouse, folder)
        (folder / "part-0.txt").write_bytes(b"\n".join(batch(n) for n in range(5)) + b"\n")
        runs.append(raw_tables(warehouse, folder))
    serial, parallel_run = runs

    assert parallel_run == serial
    tables, _, _, statuses = parallel_run
    assert ("part-0.txt", "replaced", "") not in statuses  # the note explains it
    assert [s[:2] for s in statuses if s[0] in ("part-0.txt", "part-7.txt")] == [
        ("part-0.txt", "replaced"),
        ("part-7.txt", "unchanged"),
    ]
    assert sum(1 for row in tables["quarantine_lines"] if row[0].endswith("part-0.txt")) == 5


def good_quarantine(folder: Path, files: int) -> None:
    """`files` files of 300 good batches each, plain and gzip: every one staged."""
    folder.mkdir()
    for i in range(files):
        content = b"\n".join(batch(i * 1000 + n) for n in range(300)) + b"\n"
        (folder / f"part-{i:02}.txt").write_bytes(gzip.compress(content) if i % 2 else content)


def committed_files(warehouse: Path) -> set[str]:
    """The files the warehouse holds, after checking that each holds its lines, all of
    them, and that no line is there without its file."""
    with connect(warehouse) as con:
        counts = con.execute(
            "select f.source_file, f.lines_loaded, count(l.line_number) "
            "from raw.ingested_files f left join raw.quarantine_lines l "
            "using (source_file, file_checksum) group by all"
        ).fetchall()
        [(stray,)] = con.execute(
            "select count(*) from raw.quarantine_lines where file_checksum not in "
            "(select file_checksum from raw.ingested_files)"
        ).fetchall()
    assert stray == 0
    assert all(loaded == found == 300 for _, loaded, found in counts)
    return {Path(name).name for name, _, _ in counts}


def staging(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".ingest")


def test_the_staging_folder_beside_the_warehouse_is_gone_after_bad_lines_and_unreadable_files(
    tmp_path, monkeypatch
):
    folder, warehouse = tmp_path / "q", tmp_path / "w.duckdb"
    good_quarantine(folder, 20)
    (folder / "part-20.txt").write_bytes(batch(1) + b"\n{not json\n")
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "COMMIT_STAGED_LINES", 1)  # a commit after every file
    staged_seen = []

    def on_file(result: importer.FileResult) -> None:
        if not staged_seen:
            staged_seen.extend(p.suffix for p in staging(warehouse).iterdir())
            (folder / "part-19.txt").unlink()  # gone once listed, before a worker reads it

    with connect(warehouse) as con:
        summary = ingest(con, [str(folder)], on_file)

    assert ".parquet" in staged_seen  # the workers staged files there
    assert not staging(warehouse).exists()
    assert [(Path(r.source_file).name, r.line_number) for r in summary.rejections] == [
        ("part-20.txt", 2)
    ]
    assert [Path(f.path).name for f in summary.not_read] == ["part-19.txt"]


def test_an_interrupted_ingest_keeps_whole_files_and_removes_the_staging_folder(
    tmp_path, monkeypatch
):
    folder, warehouse = tmp_path / "q", tmp_path / "w.duckdb"
    good_quarantine(folder, 8)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "COMMIT_STAGED_LINES", 600)  # a commit every two files
    reported = []

    def on_file(result: importer.FileResult) -> None:
        reported.append(Path(result.path).name)
        if len(reported) == 4:
            raise KeyboardInterrupt  # Ctrl-C while files 5 and later are staged

    with connect(warehouse) as con, pytest.raises(KeyboardInterrupt):
        ingest(con, [str(folder)], on_file)

    assert not staging(warehouse).exists()
    assert committed_files(warehouse) == set(reported)
    assert raw_tables(warehouse, folder)[0] == raw_tables(tmp_path / "clean.duckdb", folder)[0]


def test_a_worker_killed_fails_the_ingest_clearly_and_a_rerun_loads_the_rest(tmp_path, monkeypatch):
    folder, warehouse = tmp_path / "q", tmp_path / "w.duckdb"
    good_quarantine(folder, 40)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "COMMIT_STAGED_LINES", 600)
    reported = []

    def on_file(result: importer.FileResult) -> None:
        reported.append(Path(result.path).name)
        if len(reported) == 1:
            worker = multiprocessing.active_children()[0]
            os.kill(worker.pid, signal.SIGKILL)
            multiprocessing.connection.wait([worker.sentinel])

    with connect(warehouse) as con, pytest.raises(LoaderError, match="run loader ingest again"):
        ingest(con, [str(folder)], on_file)

    assert not staging(warehouse).exists()
    assert committed_files(warehouse) == set(reported)
    assert 0 < len(reported) < 40
    rerun = raw_tables(warehouse, folder)
    assert [s[1] for s in rerun[3]].count("unchanged") == len(reported)
    assert rerun[0] == raw_tables(tmp_path / "clean.duckdb", folder)[0]


KILLED_WHILE_STAGING = """
import multiprocessing, os, signal, sys
from pathlib import Path
from loader.ingest import importer, parallel
from loader.warehouse import connect

warehouse, folder, record = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
parallel.PARALLEL_MIN_BYTES = 0
importer.COMMIT_STAGED_LINES = 600  # a commit every two files
insert, inserted = importer.insert_prepared, []


def insert_then_die(*args):
    count = insert(*args)
    inserted.append(count)
    if len(inserted) == 5:  # four files committed, the fifth inserted, not committed
        staged = sorted(os.listdir(str(warehouse) + ".ingest"))
        workers = [str(p.pid) for p in multiprocessing.active_children()]
        record.write_text(" ".join(staged) + "\\n" + " ".join(workers))
        os.kill(os.getpid(), signal.SIGKILL)
    return count


importer.insert_prepared = insert_then_die
with connect(warehouse) as con:
    importer.ingest(con, [folder])
"""


def ended(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
    except FileNotFoundError:
        return True


def test_an_ingest_killed_while_files_are_staged_keeps_whole_files_and_its_workers_end(
    tmp_path,
):
    folder, warehouse, record = tmp_path / "q", tmp_path / "w.duckdb", tmp_path / "record"
    good_quarantine(folder, 8)
    run = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_STAGING, str(warehouse), str(folder), str(record)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr

    staged, workers = (line.split() for line in record.read_text().splitlines())
    assert any(name.endswith(".parquet") for name in staged)  # killed with files staged
    deadline = time.monotonic() + 10
    while not all(ended(int(pid)) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(ended(int(pid)) for pid in workers)  # they stop staging files
    assert committed_files(warehouse) == {f"part-{i:02}.txt" for i in range(4)}
    rerun = raw_tables(warehouse, folder)
    assert [s[1] for s in rerun[3]] == ["unchanged"] * 4 + ["loaded"] * 4
    assert not staging(warehouse).exists()
    assert rerun[0] == raw_tables(tmp_path / "clean.duckdb", folder)[0]
