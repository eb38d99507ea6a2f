"""`loader sql` reaches the warehouse, the ledger and `--attach` files, and nothing else:
no file written or read elsewhere, no extension installed, no settings changed back."""

from __future__ import annotations

import duckdb
import pytest
from typer.testing import CliRunner

from loader.cli import app
from tests.integration.test_sql_session import warehouse  # noqa: F401  (the fixture)

runner = CliRunner()
REFUSED = "file system operations are disabled by configuration"
NOTE = "(loader sql reads only the warehouse, the ledger and files given with --attach)"


def shown(statement: str) -> str:
    """A statement as error messages name it: its first 80 characters."""
    return statement if len(statement) <= 80 else statement[:77] + "..."


def invoke(warehouse, *args: str, ledger=None):  # noqa: F811
    env = {
        "BACKFILL_DUCKDB": str(warehouse),
        "BACKFILL_LEDGER": str(ledger or warehouse.parent / "no-ledger.duckdb"),
    }
    return runner.invoke(app, ["sql", *args], env=env)


def test_copy_to_a_file_is_refused_and_the_file_untouched(warehouse, tmp_path):  # noqa: F811
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    script = tmp_path / "export.sql"
    statement = f"copy (select 'overwritten' as a) to '{target}' (header false)"
    script.write_text(f"{statement};\n")
    result = invoke(warehouse, str(script))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {shown(statement + ';')}: "
        f'Permission Error: Cannot access file "{target}" - {REFUSED} {NOTE}\n'
    )
    assert target.read_text() == "keep me\n"


def test_reading_other_files_is_refused(warehouse):  # noqa: F811
    result = invoke(warehouse, "select * from read_text('/etc/passwd')")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: select * from read_text('/etc/passwd'): "
        f'Permission Error: Cannot access file "/etc/passwd" - {REFUSED}'
    )
    assert result.stderr.endswith(f"{NOTE}\n")


def test_installing_an_extension_is_refused(warehouse):  # noqa: F811
    result = invoke(warehouse, "install httpfs")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        'error: install httpfs: Permission Error: Cannot access directory "'
    )
    assert result.stderr.endswith(f'" - {REFUSED} {NOTE}\n')


def test_the_lock_cannot_be_lifted(warehouse):  # noqa: F811
    result = invoke(warehouse, "set enable_external_access = true")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: set enable_external_access = true: Invalid Input Error: Cannot change "
        'configuration option "enable_external_access" - the configuration has been locked\n'
    )


def test_attach_option_adds_a_duckdb_file_read_only(warehouse, tmp_path):  # noqa: F811
    extra = tmp_path / "emulator.duckdb"
    with duckdb.connect(str(extra)) as con:
        con.execute("create table received (n int); insert into received values (41), (42)")
    sql = "select count(*) as n, (select sum(n) from emulator.received) as s from replay_events"
    result = invoke(warehouse, sql, "--attach", f"emulator={extra}", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "n,s\n5,83\n"
    refused = invoke(warehouse, "delete from emulator.received", "--attach", f"emulator={extra}")
    assert refused.exit_code == 1
    assert "read-only mode" in refused.stderr
    # an ATTACH inside the SQL is refused
    statement = f"attach '{extra}' as e2 (read_only)"
    inline = invoke(warehouse, f"{statement}; select 1")
    assert inline.exit_code == 1
    assert inline.stderr == (
        f"error: {shown(statement)}: Permission Error: Cannot access file "
        f'"{extra}" - {REFUSED} {NOTE}\n'
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("emulator", "--attach 'emulator': expected NAME=PATH, e.g. emulator=emulator.duckdb."),
        ("ledger=x.duckdb", "--attach ledger: the name is taken; choose another."),
        ("a-b=x.duckdb", "--attach a-b: use letters, digits and underscores for the name."),
    ],
)
def test_attach_option_errors(warehouse, value, message):  # noqa: F811
    result = invoke(warehouse, "select 1", "--attach", value)
    assert result.exit_code == 2
    assert result.stderr == f"error: {message}\n"


def test_attach_option_missing_file(warehouse, tmp_path):  # noqa: F811
    missing = tmp_path / "nope.duckdb"
    result = invoke(warehouse, "select 1", "--attach", f"e={missing}")
    assert result.exit_code == 2
    assert result.stderr == f"error: --attach e={missing}: no such file.\n"
