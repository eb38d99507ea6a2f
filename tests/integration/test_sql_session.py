"""`loader sql`: the warehouse read-only, the ledger attached as `ledger`, audit queries."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from loader.audit.sql_session import LedgerUnavailable, SqlError, open_session, run
from loader.cli import app
from tests.conftest import ROOT, held_open, query, run_dbt
from tests.pushed import API_SECRET, Pushed, pushed_backfill
from tests.quarantine import write_file

NOW_MS = 1_764_000_000_000
T = NOW_MS - 86_400_000
runner = CliRunner()


def blocked_batch(batch_id: str, mpid: str, events: int) -> dict:
    ids = [f"{batch_id}{i}" for i in range(events)]
    return {
        "batch_id": batch_id,
        "mpid": mpid,
        "environment": "production",
        "user_identities": {"customer_id": f"C{mpid}"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_id": event_id,
                    "event_name": "Audit Me",
                    "custom_event_type": "other",
                    "timestamp_unixtime_ms": str(T + i),
                },
            }
            for i, event_id in enumerate(ids)
        ],
        "context": {"data_plan": {"block_metadata": {"dto_version": 1, "blocked_event_ids": ids}}},
    }


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sql")
    path = tmp / "backfill.duckdb"
    write_file(
        tmp / "q/Audit_1.txt",
        [blocked_batch("1", "9007199254740993", 3), blocked_batch("2", "2", 2)],
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKFILL_DUCKDB", str(path))
        result = runner.invoke(app, ["ingest", str(tmp / "q")])
    assert result.exit_code == 0, result.output
    run_dbt(path, "build", dbt_vars={"replay_reference_time_ms": NOW_MS})
    return path


@pytest.fixture
def ledger(tmp_path) -> Path:
    """A ledger-like DuckDB file: the session attaches whatever file BACKFILL_LEDGER names."""
    path = tmp_path / "ledger.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table acknowledged (replay_key varchar, run_id integer)")
        con.execute("insert into acknowledged values ('1:10', 7), ('1:11', 7)")
    return path


def invoke(warehouse: Path, ledger: Path | None, *args: str, stdin: str | None = None):
    env = {
        "BACKFILL_DUCKDB": str(warehouse),
        "BACKFILL_LEDGER": str(ledger or warehouse.parent / "no-ledger.duckdb"),
    }
    return runner.invoke(app, ["sql", *args], env=env, input=stdin)


def test_one_query_joins_the_replay_set_and_the_ledger(warehouse, ledger):
    result = invoke(
        warehouse,
        ledger,
        "select r.replay_key, a.run_id from replay_events r "
        "left join ledger.acknowledged a using (replay_key) order by 1",
        "--format",
        "csv",
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows == [
        ["replay_key", "run_id"],
        ["1:10", "7"],
        ["1:11", "7"],
        ["1:12", ""],
        ["2:20", ""],
        ["2:21", ""],
    ]


def test_both_files_are_read_only(warehouse, ledger):
    for sql in ("create table main.x (a int)", "insert into ledger.acknowledged values ('x', 1)"):
        result = invoke(warehouse, ledger, sql)
        assert result.exit_code == 1
        assert "read-only" in result.stderr.lower()
    with duckdb.connect(str(ledger), read_only=True) as con:
        assert con.execute("select count(*) from acknowledged").fetchone() == (2,)


def test_without_a_ledger_file_the_warehouse_alone_is_open(warehouse, tmp_path):
    result = invoke(warehouse, None, "select count(*) as n from replay_events", "--format", "csv")
    assert result.stdout.splitlines() == ["n", "5"]
    assert not (warehouse.parent / "no-ledger.duckdb").exists(), "must not create a ledger"


def test_variables_and_the_events_for_user_analysis(warehouse):
    result = invoke(
        warehouse,
        None,
        str(ROOT / "analyses/events_for_user.sql"),
        "--set",
        "user_key=mpid:9007199254740993",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["replay_key"] for row in rows] == ["1:10", "1:11", "1:12"]
    # JSON columns come out as JSON, the MPID exact
    assert rows[0]["batch_context"]["mpid"] == 9007199254740993
    assert rows[0]["event_json"]["data"]["timestamp_unixtime_ms"] == T
    # without the variable: the user with the most events
    default = json.loads(
        invoke(warehouse, None, "analyses/events_for_user.sql", "--format", "json").stdout
    )
    assert {row["replay_key"][:2] for row in default} == {"1:"}


def test_several_statements_table_format_and_row_limit(warehouse):
    result = invoke(
        warehouse,
        None,
        "set variable n = 2; select 'first' as which; "
        "select replay_key from replay_events order by 1 limit getvariable('n')::int",
        "--max-rows",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert "first" in result.stdout and "1:10" in result.stdout and "1:11" not in result.stdout
    assert "2 rows, showing 1" in result.stderr


def test_sql_from_stdin_and_errors(warehouse):
    piped = invoke(warehouse, None, "--format", "csv", stdin="select 40 + 2 as answer;\n")
    assert piped.stdout.splitlines() == ["answer", "42"]
    bad = invoke(warehouse, None, "select * from no_such_table")
    assert bad.exit_code == 1
    assert "no_such_table" in bad.stderr
    missing = invoke(warehouse, None, "analyses/nope.sql")
    assert missing.exit_code == 2 and "analyses/nope.sql: no such file" in missing.stderr
    assert invoke(warehouse, None, "select 1", "--set", "bad name=1").exit_code == 2
    assert invoke(warehouse, None, "select 1", "--set", "novalue").exit_code == 2


def test_a_ledger_held_by_a_running_push_gives_one_clear_message(warehouse, ledger):
    with held_open(ledger):
        with pytest.raises(LedgerUnavailable, match="loader push"):
            open_session(warehouse, ledger)
        result = invoke(warehouse, ledger, "select 1")
        assert result.exit_code == 2 and "--no-ledger" in result.stderr
        assert invoke(warehouse, ledger, "select 1", "--no-ledger").exit_code == 0


def test_library_reports_the_failing_statement(warehouse):
    con = open_session(warehouse)
    with con, pytest.raises(SqlError, match="^select nope from replay_events"):
        list(run(con, "select 1; select nope from replay_events"))


def test_interactive_prompt_on_a_terminal(warehouse):
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
    os.write(primary, b"select 6 * 7\n as answer;\n.quit\n")
    output = b""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                output += os.read(primary, 4096)
            except OSError:
                break
    process.wait(timeout=10)
    os.close(primary)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "read-only" in text and "sql> " in text and "...> " in text
    assert "42" in text


# --- the audit queries in analyses/, on a ledger a real push wrote ------------------------


@pytest.fixture(scope="module")
def pushed(tmp_path_factory) -> Pushed:
    return pushed_backfill(tmp_path_factory.mktemp("pushed"))


def audit(pushed: Pushed, name: str, *args: str) -> list[list[dict]]:
    """The results of one analyses/ file, each a list of rows."""
    result = invoke(
        pushed.warehouse, pushed.ledger, f"analyses/{name}.sql", "--format", "json", *args
    )
    assert result.exit_code == 0, result.output
    decoder, text, results = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        value, end = decoder.raw_decode(text)
        results.append(value)
        text = text[end:].strip()
    return results


def ledger_rows(pushed: Pushed, sql: str) -> list[tuple]:
    with duckdb.connect(str(pushed.ledger), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_sent_in_run_lists_every_acknowledged_event(pushed):
    chosen, rows = audit(pushed, "sent_in_run")
    assert chosen == [{"run_id": 1, "chosen": "the latest run that sent something"}]
    sent = pushed.report.progress
    assert len(rows) == sent.events_acknowledged > 0
    assert {row["run_id"] for row in rows} == {1}
    assert {row["replay_set_now"] for row in rows} == {"as sent"}
    acknowledged = ledger_rows(
        pushed, "select source_request_id from batches where status = 'acknowledged'"
    )
    assert {row["source_request_id"] for row in rows} == {sid for (sid,) in acknowledged}
    chosen, again = audit(pushed, "sent_in_run", "--set", "run_id=1")
    assert chosen == [{"run_id": 1, "chosen": "given with --set run_id"}]
    assert again == rows


@pytest.mark.parametrize("value", ["abc", "2"])
def test_sent_in_run_names_a_run_that_does_not_exist(pushed, value):
    result = invoke(
        pushed.warehouse, pushed.ledger, "analyses/sent_in_run.sql", "--set", f"run_id={value}"
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: set variable sent_in_run__run = (: Invalid Input Error: "
        f"run_id {value}: no such run in the ledger (its runs: 1)\n"
    )


def test_sent_in_run_skips_a_later_run_that_sent_nothing(pushed, tmp_path):
    ledger = tmp_path / "ledger.duckdb"
    shutil.copy(pushed.ledger, ledger)
    with duckdb.connect(str(ledger)) as con:  # a second push with nothing left to send
        con.execute("insert into runs select * replace (2 as run_id) from runs where run_id = 1")
    result = invoke(pushed.warehouse, ledger, "analyses/sent_in_run.sql", "--format", "csv")
    assert result.exit_code == 0, result.output
    chosen, rows = result.stdout.split("\n\n")
    assert chosen == "run_id,chosen\n1,the latest run that sent something"
    assert {line.split(",")[0] for line in rows.splitlines()[1:]} == {"1"}


def test_failures_give_codes_reasons_mparticles_messages_and_the_events(pushed):
    summary, events = audit(pushed, "failures")
    reasons = {(row["status"], row["refused_by"], row["code"]): row for row in summary}
    refused = reasons[("rejected", "mparticle", "missing_field")]
    assert (refused["events"], refused["reason"]) == (1, "a required field is missing or empty")
    assert refused["example_error"] == (
        'HTTP 400: Required event field "event_type" is missing or empty.'
    )
    gave_up = reasons[("failed", None, "gave_up")]["example_error"]
    assert "HTTP 503" in gave_up and "service unavailable" in gave_up
    assert "401 Unauthorized" in reasons[("failed", None, "credentials_refused")]["example_error"]
    progress = pushed.report.progress
    total = sum(row["events"] for row in summary)
    assert total == len(events) == progress.events_failed + progress.events_rejected
    assert {row["code"] for row in events} == {code for _, _, code in reasons}
    assert all(row["event_type"] == "custom_event" for row in events)
    assert API_SECRET not in json.dumps(summary + events)


def test_blocked_events_never_replayed_with_their_reason(pushed):
    summary, events = audit(pushed, "blocked_never_replayed")
    why = {row["why"]: row["events"] for row in summary}
    progress = pushed.report.progress
    [(planned_not_sent,)] = ledger_rows(
        pushed, "select sum(event_count) from batches where status in ('planned', 'in_flight')"
    )
    assert why["failed"] == progress.events_failed
    assert progress.batches_rejected == 1
    assert why["rejected"] == progress.events_rejected > 0
    assert why["not sent yet"] == planned_not_sent > 0
    skipped = {
        f"skipped: {reason}": n
        for reason, n in query(
            pushed.warehouse,
            "select skip_reason, count(*) from blocked_events__outcomes "
            "where outcome = 'skipped' and blocked_kind = 'blocked_event' group by all",
        )
    }
    assert {k: v for k, v in why.items() if k.startswith("skipped: ")} == skipped
    assert len(events) == sum(why.values())
    acknowledged = {
        key for (key,) in ledger_rows(pushed, "select replay_key from acknowledged_events")
    }
    assert not acknowledged & {row["replay_key"] for row in events}


def test_max_rows_in_every_format(warehouse):
    sql = "select range as n from range(5)"
    csv_out = invoke(warehouse, None, sql, "--format", "csv", "--max-rows", "2")
    assert csv_out.exit_code == 0, csv_out.output
    assert csv_out.stdout == "n\n0\n1\n"
    assert csv_out.stderr == "5 rows, showing 2 (--max-rows 0 for all)\n"
    json_out = invoke(warehouse, None, sql, "--format", "json", "--max-rows", "2")
    assert json.loads(json_out.stdout) == [{"n": 0}, {"n": 1}]
    assert json_out.stderr == "5 rows, showing 2 (--max-rows 0 for all)\n"
    # without --max-rows, csv and json give every row (the table shows 100)
    every = invoke(warehouse, None, "select range as n from range(150)", "--format", "csv")
    assert every.stdout == "n\n" + "".join(f"{i}\n" for i in range(150))
    assert every.stderr == ""


def test_csv_results_are_separated_by_a_blank_line(warehouse):
    result = invoke(warehouse, None, "select 1 as a; select 2 as b, 3 as c", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "a\n1\n\nb,c\n2,3\n"


def test_one_row_is_one_row(warehouse):
    result = invoke(warehouse, None, "select 1 as a")
    assert result.stderr == "1 row\n"
    assert invoke(warehouse, None, "select 1 as a from range(2)").stderr == "2 rows\n"
    none = invoke(warehouse, None, "select 1 as a where false")
    assert none.stderr == "0 rows\n"
