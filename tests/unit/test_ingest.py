import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Iterator

import duckdb
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.errors import WarehouseLocked
from loader.ingest.importer import ingest, ingest_source
from loader.ingest.sources import LocalFiles, SourceObject
from loader.warehouse import connect
from tests.conftest import held_open, query
from tests.quarantine import example_batch, ndjson, write_file

runner = CliRunner()


def run_ingest(*paths):
    return runner.invoke(app, ["ingest", *map(str, paths)])


def test_gzip_under_txt_name_and_verification_files(tmp_path, warehouse):
    write_file(tmp_path / "q/2026-11-20/App_20261120_00001.txt", [example_batch()], gzipped=True)
    (tmp_path / "q/mParticle_Bucket_Verification_abc.txt").write_text("{}")
    (tmp_path / "q/mparticle_validation.txt").write_text("")

    result = run_ingest(tmp_path / "q")

    assert result.exit_code == 0, result.output
    assert "files read 1, skipped 2 (verification files)" in result.output
    assert f"warehouse: {warehouse.absolute()}\n" in result.output  # where it was written
    assert query(warehouse, "select is_gzip, lines_loaded from raw.ingested_files") == [(True, 1)]
    [(batch_id,)] = query(
        warehouse, "select json_extract_string(batch_json, '$.batch_id') from raw.quarantine_lines"
    )
    assert batch_id == "-5158959812941698317"


def test_int64_values_are_stored_as_read(tmp_path, warehouse):
    line = b'{"batch_id": 9007199254740993, "mpid": "-9223372036854775808", "events": []}'
    (tmp_path / "f.txt").write_bytes(line + b"\n")
    assert run_ingest(tmp_path / "f.txt").exit_code == 0
    [(text, batch_id)] = query(
        warehouse,
        "select batch_json::varchar, json_extract_string(batch_json, '$.batch_id') "
        "from raw.quarantine_lines",
    )
    assert text == line.decode()
    assert batch_id == "9007199254740993"


def test_unchanged_file_is_a_no_op_and_changed_file_replaces(tmp_path, warehouse):
    path = write_file(tmp_path / "a.txt", [example_batch(), example_batch()])
    assert run_ingest(path).exit_code == 0

    again = run_ingest(path)
    assert again.exit_code == 0
    assert "unchanged" in again.output and "lines loaded 0" in again.output
    assert query(warehouse, "select count(*) from raw.quarantine_lines") == [(2,)]

    write_file(path, [example_batch()])
    changed = run_ingest(path)
    assert "replaced" in changed.output
    assert query(warehouse, "select count(*) from raw.quarantine_lines") == [(1,)]
    assert query(warehouse, "select count(*) from raw.ingested_files") == [(1,)]


def test_malformed_lines_are_rejected_with_file_line_and_reason(tmp_path, warehouse):
    good = json.dumps(example_batch()).encode()
    body = b"\n".join([good, b'{"events": [', b"[1, 2]", b'{"ip": "\xff\xfe"}', good, b"", b"   "])
    path = tmp_path / "bad.txt"
    path.write_bytes(body + b"\n")

    result = run_ingest(path)

    assert result.exit_code == 1
    assert "lines loaded 2, rejected 3" in result.output
    rejects = query(
        warehouse, "select line_number, reason from raw.rejected_lines order by line_number"
    )
    assert [line for line, _ in rejects] == [2, 3, 4]
    assert "invalid JSON" in rejects[0][1]
    assert "not a JSON object" in rejects[1][1]
    assert "invalid UTF-8" in rejects[2][1]
    assert f"{path}:2" in result.output
    assert query(
        warehouse, "select list(line_number order by line_number) from raw.quarantine_lines"
    ) == [([1, 5],)]


def test_truncated_gzip_keeps_good_lines_and_rejects_the_rest(tmp_path, warehouse):
    compressed = gzip.compress(ndjson([example_batch()] * 50))
    path = tmp_path / "cut.txt"
    path.write_bytes(compressed[: len(compressed) * 2 // 3])

    result = run_ingest(path)

    assert result.exit_code == 1
    [(line, reason)] = query(warehouse, "select line_number, reason from raw.rejected_lines")
    assert "gzip stream truncated" in reason
    [(loaded,)] = query(warehouse, "select count(*) from raw.quarantine_lines")
    # every line complete in what the cut file decompresses to loads; the next is lost
    readable = zlib.decompressobj(wbits=31).decompress(path.read_bytes())
    assert loaded == readable.count(b"\n")
    assert line == loaded + 1


def test_globs_and_missing_paths(tmp_path, warehouse):
    write_file(tmp_path / "d1/x_1.txt", [example_batch(batch_id="1")])
    write_file(tmp_path / "d2/x_2.txt", [example_batch(batch_id="2")])
    write_file(tmp_path / "d2/copy_of_x_2.txt", [example_batch(batch_id="2")])
    result = run_ingest(f"{tmp_path}/d*/x_*.txt", tmp_path / "d2")
    assert result.exit_code == 0
    assert query(warehouse, "select count(*) from raw.ingested_files") == [(2,)]
    assert "same content as" in result.output

    missing = run_ingest(tmp_path / "nope")
    assert missing.exit_code == 2
    assert "no such file or folder" in missing.output


def test_locked_warehouse_gives_one_clear_message(tmp_path, warehouse):
    with held_open(warehouse), pytest.raises(WarehouseLocked, match="in use by process"):
        connect(warehouse)


def test_ingest_library_is_transactional_per_file(tmp_path, warehouse):
    path = write_file(tmp_path / "ok.txt", [example_batch()])
    con = duckdb.connect(str(warehouse))
    summary = ingest(con, [str(path)])
    assert summary.as_dict()["lines_loaded"] == 1
    assert con.execute("select count(*) from raw.quarantine_lines").fetchone() == (1,)
    con.close()


def test_an_interrupted_load_is_removed_and_redone(tmp_path, warehouse):
    path = write_file(tmp_path / "a.txt", [example_batch(), example_batch(batch_id="9")])
    con = duckdb.connect(str(warehouse))
    ingest(con, [])
    # what a load killed after its first chunk leaves: lines, but no ingested_files row
    con.execute(
        "insert into raw.quarantine_lines values (?, 1, '{}', 'checksum-of-killed-load', now())",
        [str(path)],
    )
    summary = ingest(con, [str(path)])
    assert summary.as_dict()["lines_loaded"] == 2
    assert con.execute(
        "select count(*), count(distinct file_checksum) from raw.quarantine_lines"
    ).fetchall() == [(2, 1)]
    con.close()


def test_local_files_list_size_and_sha256_and_open_the_bytes(tmp_path):
    write_file(tmp_path / "d/b.txt", [example_batch(batch_id="2")])
    write_file(tmp_path / "d/a.txt", [example_batch(batch_id="1")], gzipped=True)
    (tmp_path / "d/.hidden").write_text("{}")
    source = LocalFiles([str(tmp_path / "d"), str(tmp_path / "d/a.txt")])
    objects = list(source.objects())
    paths = [tmp_path / "d/a.txt", tmp_path / "d/b.txt"]
    assert objects == [SourceObject(str(p.resolve()), p.name, p.stat().st_size) for p in paths]
    for obj, path in zip(objects, paths, strict=True):
        assert source.fingerprint(obj) == hashlib.sha256(path.read_bytes()).hexdigest()
        with source.open(obj) as fh:
            assert fh.read() == path.read_bytes()


class MemorySource:
    """A source that is not a folder: objects held in memory under URIs."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.data = objects

    def objects(self) -> Iterator[SourceObject]:
        for uri, data in self.data.items():
            yield SourceObject(uri, uri.rsplit("/", 1)[-1], len(data))

    def fingerprint(self, obj: SourceObject) -> str:
        return "etag-" + hashlib.md5(self.data[obj.uri]).hexdigest()

    def open(self, obj: SourceObject) -> io.BytesIO:
        return io.BytesIO(self.data[obj.uri])


def test_any_source_is_imported_the_same_way(tmp_path):
    source = MemorySource(
        {
            "mem://bucket/q/App_1.txt": gzip.compress(ndjson([example_batch(batch_id="7")])),
            "mem://bucket/q/mparticle_validation.txt": b"",
            "mem://bucket/q/App_2.txt": ndjson([example_batch(batch_id="8")]) + b"not json\n",
        }
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    summary = ingest_source(con, source)
    assert [(f.path, f.status, f.lines_loaded, f.lines_rejected) for f in summary.files] == [
        ("mem://bucket/q/App_1.txt", "loaded", 1, 0),
        ("mem://bucket/q/mparticle_validation.txt", "skipped", 0, 0),
        ("mem://bucket/q/App_2.txt", "loaded", 1, 1),
    ]
    assert con.execute(
        "select source_file, is_gzip, file_checksum like 'etag-%' from raw.ingested_files "
        "order by source_file"
    ).fetchall() == [
        ("mem://bucket/q/App_1.txt", True, True),
        ("mem://bucket/q/App_2.txt", False, True),
    ]
    # the same objects again: unchanged
    assert [f.status for f in ingest_source(con, source).files] == [
        "unchanged",
        "skipped",
        "unchanged",
    ]
