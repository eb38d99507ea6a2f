"""Who holds the warehouse, by name; and an open `loader sql` prompt does not hold it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from loader.cli import app
from tests.conftest import ROOT
from tests.integration.test_sql_session import warehouse  # noqa: F401  (the fixture)

runner = CliRunner()
HOLD = """import sys, time, duckdb
con = duckdb.connect(sys.argv[2])
print("ready", flush=True)
time.sleep(60)
"""


def test_a_lock_names_the_program_that_holds_it(tmp_path):
    path = tmp_path / "backfill.duckdb"
    duckdb.connect(str(path)).close()
    program = tmp_path / "dbt"  # a program named dbt, run as `dbt build PATH`
    program.write_text(HOLD)
    holder = subprocess.Popen(
        [sys.executable, str(program), "build", str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        env = {"BACKFILL_DUCKDB": str(path), "BACKFILL_LEDGER": str(tmp_path / "l.duckdb")}
        result = runner.invoke(app, ["ingest", str(tmp_path / "nothing")], env=env)
        sql = runner.invoke(app, ["sql", "select 1"], env=env)
    finally:
        holder.kill()
        holder.wait()
    message = (
        f"error: {path} is in use by process {holder.pid} (dbt build). "
        "Wait for it to finish, then run this command again.\n"
    )
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message)
    assert (sql.exit_code, sql.stdout, sql.stderr) == (2, "", message)


def read_until(primary: int, text: bytes, deadline: float) -> bytes:
    output = b""
    while text not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            output += os.read(primary, 4096)
    return output


def test_an_open_prompt_does_not_hold_the_warehouse(warehouse):  # noqa: F811
    primary, secondary = pty.openpty()
    env = {**os.environ, "BACKFILL_DUCKDB": str(warehouse), "COLUMNS": "100"}
    env["BACKFILL_LEDGER"] = str(warehouse.parent / "no-ledger.duckdb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "loader"), "sql"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=ROOT,
    )
    os.close(secondary)
    try:
        deadline = time.monotonic() + 60
        assert b"sql> " in read_until(primary, b"sql> ", deadline)
        os.write(primary, b"select count(*) as n from replay_events;\n")
        output = read_until(primary, b"sql> ", deadline)  # the result, then the next prompt
        assert b"5" in output and b"1 row" in output, output
        # the prompt waits for the next statement: a writer can open the file meanwhile
        with duckdb.connect(str(warehouse)) as con:
            assert con.execute("select count(*) from replay_events").fetchone() == (5,)
        os.write(primary, b"select 'again' as a;\n.quit\n")
        output = read_until(primary, b"1 row", deadline)
        assert b"again" in output, output
        process.wait(timeout=10)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
