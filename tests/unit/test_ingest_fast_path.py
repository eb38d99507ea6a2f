"""The fast path (whole blocks checked by DuckDB) and the careful path (line by line) give
the very same raw tables, whatever the file holds; the fast path reads the good files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from loader.ingest.importer import ingest
from loader.warehouse import connect

GOOD = b'{"batch_id":"1","events":[{"event_type":"custom_event","data":{"n":1e5}}]}'
OTHER = b'{"batch_id":"2","mpid":9223372036854775807,"user_attributes":{"a":"Infinity War"}}'

CONTENTS = {
    "plain": GOOD + b"\n" + OTHER + b"\n",
    "no final line end": GOOD + b"\n" + OTHER,
    "crlf and blank lines": GOOD + b"\r\n\r\n  \t\n" + OTHER + b"\r\n\n",
    "unicode": '{"name":"caf\u00e9 \u2603 \U0001f600"}\n'.encode() + OTHER + b"\n",
    "bom": b"\xef\xbb\xbf" + GOOD + b"\n" + OTHER + b"\n",
    "invalid utf-8": GOOD + b"\n" + b'{"a":"\xff\xfe"}\n' + OTHER + b"\n",
    "not json": GOOD + b"\n{oops\n" + OTHER + b"\n",
    "an array": GOOD + b"\n[1, 2]\n" + OTHER + b"\n",
    "nan": GOOD + b'\n{"a": NaN}\n{"b": -Infinity}\n' + OTHER + b"\n",
    "trailing comma": GOOD + b'\n{"a": [1, 2,]}\n{"b": 1,}\n',
    "huge exponent": GOOD + b'\n{"a": 1e999}\n' + OTHER + b"\n",
    "nul byte": GOOD + b'\n{"a":"x\x00"}\n' + OTHER + b"\n",
    "vertical tab line": GOOD + b"\n\x0b\n" + OTHER + b"\n",
    "two documents on a line": GOOD + b" " + OTHER + b"\n",
}
GOOD_FILES = {"plain", "no final line end", "crlf and blank lines", "unicode", "vertical tab line"}


def raw_tables(warehouse: Path, files: list[Path], *, fast: bool) -> dict[str, list[tuple]]:
    with connect(warehouse) as con:
        summary = ingest(con, [str(f) for f in files], fast=fast)
        tables = {
            "lines": con.execute(
                "select source_file, line_number, batch_json::varchar, file_checksum "
                "from raw.quarantine_lines order by all"
            ).fetchall(),
            "rejected": con.execute(
                "select source_file, line_number, reason, line_excerpt, file_checksum "
                "from raw.rejected_lines order by all"
            ).fetchall(),
            "files": con.execute(
                "select * exclude (ingested_at) from raw.ingested_files order by all"
            ).fetchall(),
            "read fast": sorted(Path(f.path).stem for f in summary.files if f.fast),
        }
    return tables


@pytest.mark.parametrize("gzipped", [False, True], ids=["text", "gzip"])
def test_fast_and_careful_paths_give_the_same_raw_tables(tmp_path, gzipped):
    folder = tmp_path / "q"
    folder.mkdir()
    files = []
    for name, body in CONTENTS.items():
        path = folder / f"{name}.txt"
        path.write_bytes(gzip.compress(body) if gzipped else body)
        files.append(path)

    fast = raw_tables(tmp_path / "fast.duckdb", files, fast=True)
    careful = raw_tables(tmp_path / "careful.duckdb", files, fast=False)

    assert fast.pop("read fast") == sorted(GOOD_FILES)
    assert careful.pop("read fast") == []
    assert fast == careful
    assert len(careful["rejected"]) >= len(CONTENTS) - len(GOOD_FILES)


def test_a_truncated_gzip_is_read_by_the_careful_path(tmp_path):
    body = b"".join(GOOD.replace(b'"1"', str(i).encode()) + b"\n" for i in range(2000))
    compressed = gzip.compress(body)
    path = tmp_path / "cut.txt"
    path.write_bytes(compressed[: len(compressed) // 2])

    fast = raw_tables(tmp_path / "fast.duckdb", [path], fast=True)
    careful = raw_tables(tmp_path / "careful.duckdb", [path], fast=False)

    assert fast.pop("read fast") == careful.pop("read fast") == []
    assert fast == careful
    [(_, _, reason, _, _)] = careful["rejected"]
    assert reason.startswith("gzip stream truncated or corrupt")
    assert 0 < len(careful["lines"]) < 2000


def test_a_file_of_many_blocks_keeps_its_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr("loader.ingest.fast_path.BLOCK_BYTES", 1000)
    lines = [GOOD.replace(b'"1"', f'"{i}"'.encode()) for i in range(300)]
    path = tmp_path / "long.txt"
    path.write_bytes(b"\n\n".join(lines) + b"\n")

    fast = raw_tables(tmp_path / "fast.duckdb", [path], fast=True)
    careful = raw_tables(tmp_path / "careful.duckdb", [path], fast=False)

    assert fast.pop("read fast") == ["long"]
    assert careful.pop("read fast") == []
    assert fast == careful
    assert [line for _, line, _, _ in fast["lines"]][:3] == [1, 3, 5]
