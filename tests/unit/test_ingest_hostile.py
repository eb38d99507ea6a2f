"""Ingest of odd and hostile input: nothing crashes, nothing is lost in silence, memory stays
bounded, and a wrong file can be forgotten."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.ingest import importer
from loader.ingest.importer import ingest_source
from loader.ingest.sources import LocalFiles, SourceObject
from tests.conftest import query
from tests.quarantine import example_batch, ndjson, write_file

runner = CliRunner()
LOADER = str(Path(sys.executable).parent / "loader")
GOOD = json.dumps(example_batch()).encode()
TOO_LONG = "line too long (over 16777216 bytes)"


def run_ingest(*arguments):
    return runner.invoke(app, ["ingest", *map(str, arguments)])


# The command is started by a small launcher, not forked from pytest itself: a child's
# peak RSS includes its parent's until it execs, and pytest may have grown large.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(arguments: list[str], tmp_path: Path, env: dict) -> tuple[int, str, str, int]:
    """Run a command in a child process: exit code, stdout, stderr, peak RSS in MB."""
    out_path, err_path, peak_path = tmp_path / "stdout", tmp_path / "stderr", tmp_path / "peak"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        launcher = [sys.executable, "-c", LAUNCHER, str(peak_path)]
        code = subprocess.run(launcher + arguments, stdout=out, stderr=err, env=env).returncode
    peak_mb = int(peak_path.read_text()) // 1024  # kilobytes on Linux
    return code, out_path.read_text(), err_path.read_text(), peak_mb


def test_a_line_over_the_limit_is_rejected_in_bounded_memory_and_the_rest_loads(
    tmp_path, warehouse
):
    folder = tmp_path / "q"
    folder.mkdir()
    # a valid batch of 40 MB, between two good lines, gzipped under a .txt name
    huge = b'{"events": [], "padding": "' + b"x" * (40 * 1024 * 1024) + b'"}'
    (folder / "a_huge.txt").write_bytes(gzip.compress(b"\n".join([GOOD, huge, GOOD]) + b"\n", 1))
    # one endless line: 40 MB and no newline before the end of the file
    (folder / "b_endless.txt").write_bytes(gzip.compress(GOOD + b"\n" + b"{" * (40 << 20), 1))
    write_file(folder / "c_after.txt", [example_batch()])

    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse)}
    code, stdout, stderr, peak_mb = run_measured([LOADER, "ingest", str(folder)], tmp_path, env)

    assert code == 1, stdout + stderr
    assert peak_mb < 400, f"peak RSS {peak_mb} MB"
    resolved = folder.resolve()
    assert query(
        warehouse,
        "select source_file, line_number, reason, length(line_excerpt) from raw.rejected_lines "
        "order by all",
    ) == [
        (str(resolved / "a_huge.txt"), 2, TOO_LONG, 200),
        (str(resolved / "b_endless.txt"), 2, TOO_LONG, 200),
    ]
    assert query(
        warehouse, "select source_file, line_number from raw.quarantine_lines order by all"
    ) == [
        (str(resolved / "a_huge.txt"), 1),
        (str(resolved / "a_huge.txt"), 3),
        (str(resolved / "b_endless.txt"), 1),
        (str(resolved / "c_after.txt"), 1),
    ]
    assert "files read 3, skipped 0 (verification files), unchanged 0; " in stdout
    assert "lines loaded 4, rejected 2" in stdout
    assert f"rejected {resolved / 'a_huge.txt'}:2: {TOO_LONG}" in stderr


def test_the_line_limit_counts_bytes_without_the_line_end(tmp_path, warehouse, monkeypatch):
    monkeypatch.setattr(importer, "MAX_LINE_BYTES", 30)
    at_limit = b'{"a": "' + b"x" * 21 + b'"}'
    assert len(at_limit) == 30
    over = b'{"a": "' + b"x" * 22 + b'"}'
    path = tmp_path / "f.txt"
    path.write_bytes(at_limit + b"\r\n" + over + b"\n" + at_limit + b"\n" + over)

    result = run_ingest(path)

    assert result.exit_code == 1
    assert query(warehouse, "select line_number from raw.quarantine_lines order by 1") == [
        (1,),
        (3,),
    ]
    assert query(
        warehouse, "select line_number, reason, line_excerpt from raw.rejected_lines order by 1"
    ) == [
        (2, "line too long (over 30 bytes)", over.decode()),
        (4, "line too long (over 30 bytes)", over.decode()),
    ]


NOBODY = 65534  # the unprivileged user and group of Debian and most Linux systems


def ingest_unprivileged(folder: Path, warehouse: Path) -> subprocess.CompletedProcess:
    """`loader ingest folder` by a user that file modes apply to. As root (CI runs as
    root, which reads a file whatever its mode) the command runs as nobody (setpriv), so
    `folder` and `warehouse` must be where nobody reaches them."""
    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse), "COLUMNS": "200"}
    command = [LOADER, "ingest", str(folder)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "as root, the test runs the ingest as nobody with setpriv (util-linux)"
        os.chown(warehouse.parent, NOBODY, NOBODY)
        env["HOME"] = str(warehouse.parent)
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=warehouse.parent)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder the unprivileged user can reach (pytest's own are its owner's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="ingest-unreadable-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_an_unreadable_file_is_reported_and_the_rest_loads(shared_folder):
    locked = write_file(shared_folder / "q/a_locked.txt", [example_batch()])
    write_file(shared_folder / "q/b_open.txt", [example_batch()])
    locked.chmod(0)
    (shared_folder / "warehouse").mkdir()
    warehouse = shared_folder / "warehouse/backfill.duckdb"
    result = ingest_unprivileged(shared_folder / "q", warehouse)

    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert f"not read {locked.resolve()}: cannot open it: Permission denied" in output
    assert query(warehouse, "select source_file from raw.ingested_files") == [
        (str((shared_folder / "q/b_open.txt").resolve()),)
    ]


class FailingSource:
    """A source whose first object cannot be fingerprinted and second cannot be opened."""

    def objects(self) -> Iterator[SourceObject]:
        for name in ("gone.txt", "denied.txt", "fine.txt"):
            yield SourceObject(f"mem://b/{name}", name, 10)

    def fingerprint(self, obj: SourceObject) -> str:
        if obj.name == "gone.txt":
            raise FileNotFoundError(2, "No such file or directory")
        return "etag-" + obj.name

    def open(self, obj: SourceObject) -> io.BytesIO:
        if obj.name == "denied.txt":
            raise PermissionError(13, "Permission denied")
        return io.BytesIO(ndjson([example_batch()]))


def test_a_source_object_that_cannot_be_read_is_reported_and_the_rest_loads(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    summary = ingest_source(con, FailingSource())
    assert [(f.path, f.status, f.note) for f in summary.files] == [
        ("mem://b/gone.txt", "not read", "cannot open it: No such file or directory"),
        ("mem://b/denied.txt", "not read", "cannot open it: Permission denied"),
        ("mem://b/fine.txt", "loaded", ""),
    ]
    assert summary.as_dict()["files_not_read"] == 2
    # nothing is recorded for them: the next run tries them again
    assert con.execute("select source_file from raw.ingested_files").fetchall() == [
        ("mem://b/fine.txt",)
    ]
    assert con.execute("select count(*) from raw.quarantine_lines").fetchall() == [(1,)]
    assert con.execute("select count(*) from raw.rejected_lines").fetchall() == [(0,)]


def test_a_file_name_that_is_not_utf8_is_reported_and_the_rest_loads(tmp_path, warehouse):
    folder = tmp_path / "q"
    folder.mkdir()
    bad = os.path.join(os.fsencode(folder), b"a_bad\xff.txt")
    with open(bad, "wb") as fh:
        fh.write(ndjson([example_batch()]))
    write_file(folder / "b_good.txt", [example_batch()])

    result = run_ingest(folder)

    assert result.exit_code == 1, result.output
    shown = f"{folder.resolve()}/a_bad\\xff.txt"
    assert f" not read  {shown}  (its name is not UTF-8; rename it)" in result.output
    assert f"not read {shown}: its name is not UTF-8; rename it" in result.output
    assert query(warehouse, "select source_file from raw.ingested_files") == [
        (str((folder / "b_good.txt").resolve()),)
    ]


def test_a_glob_does_not_follow_symlink_loops(tmp_path, warehouse):
    write_file(tmp_path / "q/2026-01-01/a.txt", [example_batch()])
    os.symlink(tmp_path / "q", tmp_path / "q/2026-01-01/loop")
    os.symlink(tmp_path / "q", tmp_path / "q/loop")
    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse)}
    done = subprocess.run(
        [LOADER, "ingest", f"{tmp_path}/q/**/*.txt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert query(warehouse, "select source_file from raw.ingested_files") == [
        (str((tmp_path / "q/2026-01-01/a.txt").resolve()),)
    ]


def test_globs_keep_their_rules_for_hidden_files_and_plain_names(tmp_path):
    write_file(tmp_path / "q/a.txt", [example_batch()])
    write_file(tmp_path / "q/d/b.txt", [example_batch()])
    write_file(tmp_path / "q/.hidden/c.txt", [example_batch()])
    write_file(tmp_path / "q/d/.d.txt", [example_batch()])
    names = [o.name for o in LocalFiles([f"{tmp_path}/q/**/*.txt"]).objects()]
    assert names == ["a.txt", "b.txt"]
    names = [o.name for o in LocalFiles([f"{tmp_path}/q/*/b.txt"]).objects()]
    assert names == ["b.txt"]


def png_like() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40 + b"\n" * 30


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_binary_file_is_refused_whole_with_one_row(tmp_path, warehouse, gzipped):
    path = tmp_path / "picture.png"
    path.write_bytes(gzip.compress(png_like()) if gzipped else png_like())

    result = run_ingest(path)

    reason = (
        "not a quarantine file: binary content (a NUL byte or invalid UTF-8 in the first "
        "1024 bytes) and no line is a JSON object"
    )
    resolved = str(path.resolve())
    assert result.exit_code == 1, result.output
    assert f"  refused  {resolved}  ({reason})" in result.output
    assert f"rejected {resolved}: {reason}" in result.output
    assert query(
        warehouse, "select source_file, line_number, reason, line_excerpt from raw.rejected_lines"
    ) == [(resolved, 0, reason, None)]
    assert query(warehouse, "select count(*) from raw.quarantine_lines") == [(0,)]
    assert query(warehouse, "select lines_loaded, lines_rejected from raw.ingested_files") == [
        (0, 1)
    ]


def test_a_text_file_with_bad_lines_is_still_read_line_by_line(tmp_path, warehouse):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello\n" + GOOD + b"\n")
    result = run_ingest(path)
    assert result.exit_code == 1
    assert query(warehouse, "select line_number from raw.rejected_lines") == [(1,)]
    assert query(warehouse, "select line_number from raw.quarantine_lines") == [(2,)]


def test_forget_removes_an_ingested_file_and_says_what_it_removed(tmp_path, warehouse):
    picture = tmp_path / "picture.png"
    picture.write_bytes(png_like())
    data = tmp_path / "a.txt"
    data.write_bytes(ndjson([example_batch(), example_batch()]) + b"not json\n")
    keep = write_file(tmp_path / "keep.txt", [example_batch()])
    assert run_ingest(picture, data, keep).exit_code == 1

    result = run_ingest("--forget", picture, data)

    assert result.exit_code == 0, result.output
    assert result.output == (
        f"forgot {picture.resolve()}: 0 lines, 1 rejected line\n"
        f"forgot {data.resolve()}: 2 lines, 1 rejected line\n"
        "Run `dbt build` so the replay set no longer holds them.\n"
    )
    for table in ("quarantine_lines", "rejected_lines", "ingested_files"):
        assert query(warehouse, f"select distinct source_file from raw.{table}") == (
            [] if table == "rejected_lines" else [(str(keep.resolve()),)]
        )
    # forgotten, the file loads again in full
    again = run_ingest(data)
    assert "   loaded  " in again.output and "2 lines" in again.output


def test_forget_a_file_that_was_not_ingested_exits_2(tmp_path, warehouse):
    keep = write_file(tmp_path / "keep.txt", [example_batch()])
    assert run_ingest(keep).exit_code == 0
    result = run_ingest("--forget", tmp_path / "never.txt")
    assert result.exit_code == 2
    assert result.output == f"{tmp_path / 'never.txt'}: not ingested; nothing removed\n"
    assert query(warehouse, "select count(*) from raw.quarantine_lines") == [(1,)]
