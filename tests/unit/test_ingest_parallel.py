"""Local files read ahead by worker processes give the very raw tables of a serial run,
and a bad line is still reported with its file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

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
