"""What `loader push`, `loader status` and `loader report` say after something went wrong:
a failed build, a killed run, a locked file, an interrupted push."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from loader.audit.report import render
from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.push.ledger import Ledger
from tests.conftest import ROOT, built_sample, push_env, query, run_dbt

SECRET = "truth-secret-4b1c"
runner = CliRunner()
PROJECT_PARTS = ("dbt_project.yml", "profiles.yml", "models", "macros", "seeds", "data-tests")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return built_sample(tmp_path_factory.mktemp("truth"), 1500, seed=7)


@pytest.fixture
def env(built, tmp_path, monkeypatch) -> dict[str, str]:
    credentials = {
        "MPARTICLE_API_KEY": "key",
        "MPARTICLE_API_SECRET": SECRET,
    }
    return push_env(built, tmp_path, monkeypatch, credentials)


@pytest.fixture
def emu():
    with running_emulator(EmulatorConfig(api_key="key", api_secret=SECRET)) as emulator:
        yield emulator


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def ledger_rows(env, sql: str) -> list[tuple]:
    with Ledger.open(Path(env["BACKFILL_LEDGER"]), read_only=True) as ledger:
        return ledger.query(sql)


# --- 1. a replay set older than a failed build -------------------------------------------


def test_a_failed_build_stops_the_push_and_warns_in_dry_run_and_report(env, emu):
    warehouse = Path(env["BACKFILL_DUCKDB"])
    [(built_by,)] = query(
        warehouse, "select invocation_id from meta.build_attempts where replay_events_built"
    )
    with duckdb.connect(str(warehouse)) as con:  # the next build fails at run time
        con.execute("alter table raw.quarantine_lines rename to quarantine_lines_gone")
    failed = run_dbt(warehouse, "build", check=False)
    assert failed.returncode != 0
    with duckdb.connect(str(warehouse)) as con:
        con.execute("alter table raw.quarantine_lines_gone rename to quarantine_lines")
    [(failed_by, status, nodes)] = query(
        warehouse,
        "select invocation_id, status, failed_nodes from meta.build_attempts "
        "where not replay_events_built",
    )
    assert status == "failed" and "base_quarantine__batches_parsed" in nodes

    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 2
    message = " ".join(stderr.split())
    assert "replay_events was built by `dbt build` of" in message
    assert f"(invocation {built_by})" in message and f"(invocation {failed_by}) failed" in message
    assert "base_quarantine__batches_parsed" in message
    assert "run `dbt build` until it passes" in message
    assert not emu.requests
    assert ledger_rows(env, "select count(*) from runs") == [(0,)]  # no run recorded

    code, _, stderr = invoke("push", "--dry-run")
    assert f"(invocation {failed_by}) failed" in " ".join(stderr.split())
    _, summary = render(warehouse, Path(env["BACKFILL_LEDGER"]))
    assert any(f"(invocation {failed_by}) failed" in w for w in summary.warnings)

    run_dbt(warehouse, "build")  # fixed: the push goes ahead
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 0, stderr


def test_a_build_that_fails_to_compile_stops_the_push(env, emu, tmp_path, monkeypatch):
    """A new fix not in var 'fixes': dbt stops before any hook; the project is newer."""
    project = tmp_path / "project"
    project.mkdir()
    for part in PROJECT_PARTS:
        source, target = ROOT / part, project / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    warehouse = Path(env["BACKFILL_DUCKDB"])
    run_dbt(warehouse, "build", "-s", "fix_summary", project_dir=project)  # a partial build
    (project / "models/fixes/fix_forgotten.sql").write_text("select * from {{ fix_input() }}\n")
    failed = run_dbt(warehouse, "build", project_dir=project, check=False)
    assert failed.returncode != 0 and "is not in var 'fixes'" in failed.stdout
    monkeypatch.setenv("DBT_PROJECT_DIR", str(project))

    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    message = " ".join(stderr.split())
    assert code == 2
    assert "models/fixes/fix_forgotten.sql changed at" in message
    assert "after the last dbt invocation (`dbt build` of" in message
    assert not emu.requests


def test_a_build_stopped_by_the_var_check_stops_the_push(env, emu):
    warehouse = Path(env["BACKFILL_DUCKDB"])
    failed = run_dbt(warehouse, "build", dbt_vars={"max_event_age_days": "7d"}, check=False)
    assert failed.returncode != 0 and "max_event_age_days" in failed.stdout
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 2
    assert "did not finish" in " ".join(stderr.split()) or "failed" in stderr
    assert not emu.requests


def test_a_successful_partial_build_does_not_stop_the_push(env, emu):
    run_dbt(Path(env["BACKFILL_DUCKDB"]), "build", "-s", "fix_summary")
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 0, stderr


def test_build_markers_written_before_replay_sets_were_recorded_still_judge_the_push(env, emu):
    """A warehouse last built by a version without `replay_sets_built`: the push reads its
    markers as they are (no crash), and a failed build among them still stops it."""
    warehouse = Path(env["BACKFILL_DUCKDB"])
    with duckdb.connect(str(warehouse)) as con:
        con.execute("alter table meta.build_attempts drop column replay_sets_built")
    code, _, stderr = invoke("push", "--dry-run")
    assert code == 0, stderr
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update meta.build_attempts set status = 'failed'")
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    assert code == 2 and "failed" in stderr, stderr
    assert not emu.requests


# --- 18. the plan line adds up ------------------------------------------------------------


def test_the_plan_line_adds_up_to_the_replay_set(env, emu):
    code, _, _ = invoke("push", "--endpoint", emu.base_url, "--json")
    assert code == 0
    with duckdb.connect(env["BACKFILL_DUCKDB"]) as con:  # a fix changed three events
        con.execute(
            "update replay_events set event_json = json_merge_patch(event_json, "
            """'{"data":{"event_name":"Renamed"}}') where replay_key in """
            "(select replay_key from replay_events order by replay_key limit 3)"
        )
    code, stdout, _ = invoke("push", "--dry-run")
    line = next(line for line in stdout.splitlines() if "replay set" in line)
    total = int(re.search(r"replay set (\d+) events", line).group(1))
    parts = re.findall(
        r"(\d+) (new|resumed|already acknowledged|changed after acknowledgement|in doubt"
        r"|refused before)",
        line,
    )
    assert [name for _, name in parts] == [
        "new",
        "resumed",
        "already acknowledged",
        "changed after acknowledgement",
        "in doubt",
        "refused before",
    ]
    counts = {name: int(n) for n, name in parts}
    assert counts["changed after acknowledgement"] == 3
    assert sum(counts.values()) == total


# --- 19. a push that never started is not a run -------------------------------------------


def test_a_push_on_a_locked_warehouse_records_no_run(env, emu):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', "
            "flush=True); time.sleep(60)",
            env["BACKFILL_DUCKDB"],
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, _, stderr = invoke("push", "--endpoint", emu.base_url)
        assert code == 2 and f"in use by process {holder.pid}" in stderr
    finally:
        holder.kill()
        holder.wait()
    assert ledger_rows(env, "select count(*) from runs") == [(0,)]
    code, stdout, _ = invoke("push", "--endpoint", emu.base_url, "--json")
    assert code == 0 and orjson.loads(stdout)["run_id"] == 1


# --- 3. one measure of throughput ---------------------------------------------------------


def test_throughput_is_accepted_batches_over_the_send_phase_everywhere(env, tmp_path):
    from tests.integration.test_push import synthetic_replay_set

    warehouse = tmp_path / "many.duckdb"
    synthetic_replay_set(warehouse, 450)  # 5 requests of up to 100 batches
    os.environ["BACKFILL_DUCKDB"] = str(warehouse)
    config = EmulatorConfig(api_key="key", api_secret=SECRET, latency_ms=300)
    with running_emulator(config) as emu:
        code, stdout, _ = invoke("push", "--endpoint", emu.base_url, "--rate", "250", "--json")
    assert code == 0
    report = orjson.loads(stdout)
    [(first, last_sent, last, accepted)] = ledger_rows(
        env,
        "select epoch(min(sent_at)), epoch(max(sent_at)), "
        "epoch(max(sent_at + to_milliseconds(latency_ms))), "
        "sum(batch_count) from requests where outcome = 'accepted'",
    )
    expected = accepted / (last - first)  # up to the last answer, not the last send
    assert accepted == 450 and last - last_sent >= 0.3 and expected <= 250
    assert report["sent"]["batches_per_second"] == pytest.approx(expected)
    from loader.audit.report.push import throughput
    from loader.audit.sql_session import open_session

    with open_session(warehouse, Path(env["BACKFILL_LEDGER"])) as con:
        [row] = throughput(con)[1]  # the report's per-run table
    assert row[-1] == round(expected, 1)  # batches/s
    assert row[-3] == round(last - first, 1)  # send seconds


# --- 15. status while a push runs ---------------------------------------------------------


def test_status_while_a_push_runs_says_where_its_progress_is(env):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', "
            "flush=True); time.sleep(60)",
            env["BACKFILL_LEDGER"],
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, _, stderr = invoke("status")
    finally:
        holder.kill()
        holder.wait()
    message = " ".join(stderr.split())
    assert code == 2
    assert f"a push is running (process {holder.pid} (python -c))" in message
    assert "--json" in message and "ledger.requests" in message


# --- 6. refusals grouped by a stable reason --------------------------------------------------


def sql_results(stdout: str) -> list[list[dict]]:
    """The results of `loader sql --format json`, each a list of rows."""
    parser, text, results = json.JSONDecoder(), stdout.strip(), []
    while text:
        value, end = parser.raw_decode(text)
        results.append(value)
        text = text[end:].strip()
    return results


def test_six_oversized_events_are_one_reason_everywhere(env, emu):
    keys = [
        row[0]
        for row in query(
            Path(env["BACKFILL_DUCKDB"]), "select replay_key from replay_events order by 1 limit 6"
        )
    ]
    with duckdb.connect(env["BACKFILL_DUCKDB"]) as con:
        for n, key in enumerate(keys):  # six sizes: six messages, one reason
            con.execute(
                "update replay_events set event_json = json_merge_patch(event_json, "
                "json_object('data', json_object('custom_attributes', json_object('blob', "
                "repeat('x', ?))))) where replay_key = ?",
                [140_000 + 1000 * n, key],
            )
    reason = "an event is too big for a batch even alone"
    code, _, stderr = invoke("push", "--endpoint", emu.base_url)
    printed = " ".join(stderr.split())
    assert code == 1
    assert f"6 events [event_too_big] {reason} (e.g. event is " in printed
    assert printed.count("[event_too_big]") == 2  # the plan's local checks, the run's failures
    assert f"refused locally before sending: 6 events in 6 batches [event_too_big] {reason}" in (
        printed
    )

    code, stdout, stderr = invoke("status", "--json")
    [failure] = orjson.loads(stdout)["failures"]
    assert (failure["code"], failure["reason"], failure["events"], failure["refused_by"]) == (
        "event_too_big",
        reason,
        6,
        "loader",
    )
    code, _, stderr = invoke("status")
    assert f"refused locally before sending: 6 events in 6 batches [event_too_big] {reason}" in (
        " ".join(stderr.split())
    )

    html, summary = render(Path(env["BACKFILL_DUCKDB"]), Path(env["BACKFILL_LEDGER"]))
    assert (
        f"6 events were refused locally before sending: 6: {reason} (event_too_big). They are "
        "not sent again until a fix changes them; see Failures by reason."
    ) in summary.warnings
    assert html.count('<td class="">event_too_big</td>') == 1
    assert "mParticle&#x27;s message" not in html and "(400)" not in html

    code, stdout, stderr = invoke(
        "sql", str(ROOT / "analyses" / "failures.sql"), "--format", "json"
    )
    assert code == 0, stderr
    reasons, events = sql_results(stdout)
    assert [(r["code"], r["reason"], r["events"], r["refused_by"]) for r in reasons] == [
        ("event_too_big", reason, 6, "loader")
    ]
    assert sorted(row["replay_key"] for row in events) == keys
    assert len({row["error"] for row in events}) == 6  # every byte count kept
