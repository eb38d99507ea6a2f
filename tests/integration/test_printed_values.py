"""Values from the data and paths are printed as they are, never read as Rich markup.

Square brackets are Rich's markup: `[/]` closes a style (and fails when none is open),
`[v2]` or `[red]` are styles. Event names, plan ids, custom event types, file and ledger
paths hold them here, and every command shows them verbatim.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from tests.conftest import held_open, run_dbt
from tests.quarantine import write_file

NOW_MS = int(time.time() * 1000)
T = NOW_MS - 86_400_000
API_KEY, API_SECRET = "markup-key-41", "markup-secret-93d1"
NAMES = ["Sale [/] promo", "Add to Cart [v2]", "[red]SKU-1[/red]", ":smile: [bold]"]
PLAN_NOTE = (
    "keeps plan plan[/]x v2: may be blocked again unless that plan version now allows the data"
)
runner = CliRunner()


def batch(number: int, name: str, custom_event_type: str = "other") -> dict:
    event_id = f"{number}0"
    return {
        "batch_id": str(number),
        "mpid": str(number),
        "environment": "production",
        "user_identities": {"customer_id": f"C{number}"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_id": event_id,
                    "event_name": name,
                    "custom_event_type": custom_event_type,
                    "timestamp_unixtime_ms": str(T),
                },
            }
        ],
        "context": {
            "data_plan": {
                "plan_id": "plan[/]x",
                "plan_version": 2,
                "block_metadata": {"dto_version": 1, "blocked_event_ids": [event_id]},
            }
        },
    }


@dataclass
class Built:
    folder: Path
    env: dict[str, str]
    first: Path
    later: Path
    ingest: object


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    folder = tmp_path_factory.mktemp("markup")
    warehouse = folder / "backfill.duckdb"
    # the file `x[/bold]y.txt` of the folder `q/x[`: `[/bold]` closes a style never opened
    first = write_file(
        folder / "q/x[/bold]y.txt",
        [batch(i + 1, name) for i, name in enumerate(NAMES)] + [batch(9, "odd", "custom[/]")],
    )
    later = write_file(folder / "q/z.txt", [batch(8, "later")])
    env = {"BACKFILL_DUCKDB": str(warehouse), "BACKFILL_LEDGER": str(folder / "ledger.duckdb")}
    result = runner.invoke(app, ["ingest", str(first), str(later)], env=env)
    run_dbt(warehouse, "build", dbt_vars={"replay_reference_time_ms": NOW_MS})
    return Built(folder, env, first, later, result)


def test_ingest_prints_a_path_with_brackets_and_loads_the_next_file(built):
    result = built.ingest
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"   loaded  {built.first}  5 lines\n"
        f"   loaded  {built.later}  1 lines\n"
        "\nfiles read 2, skipped 0 (verification files), unchanged 0; "
        "lines loaded 6, rejected 0\n"
        f"warehouse: {built.folder / 'backfill.duckdb'}\n"
    )


def test_dry_run_prints_plan_ids_and_local_rejection_reasons(built, tmp_path):
    result = runner.invoke(app, ["push", "--dry-run", "--out", str(tmp_path / "o")], env=built.env)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert f"  data plan: 6 events: {PLAN_NOTE}" in lines
    warning, refusal = " ".join(result.stderr.split()).split(" 1 events fail", 1)
    assert warning.startswith("warning: the replay set was built without a suppression list")
    assert "1 events fail" + refusal == (
        "1 events fail the local batch checks and are not sent (refused locally before "
        "sending): 1 events [bad_event_type] an event type or custom event type the Events API "
        "does not take (e.g. event 0: data.custom_event_type must be one of attribution, "
        "location, media, navigation, other, search, social, transaction, user_content, "
        'user_preference (got string "custom[/]"))'
    )


def test_push_prints_them_and_the_run_completes(built, tmp_path):
    ledger = tmp_path / "l[" / "b]ledger.duckdb"  # l[/b]ledger.duckdb
    ledger.parent.mkdir()
    env = {**built.env, "BACKFILL_LEDGER": str(ledger)}
    env |= {"MPARTICLE_API_KEY": API_KEY, "MPARTICLE_API_SECRET": API_SECRET}
    with running_emulator(EmulatorConfig(api_key=API_KEY, api_secret=API_SECRET)) as emulator:
        result = runner.invoke(app, ["push", "--endpoint", emulator.base_url], env=env)
    assert result.exit_code == 1, result.output  # the event of type custom[/] is refused
    assert f"  data plan: 6 events: {PLAN_NOTE}" in result.stdout.splitlines()
    [summary] = [line for line in result.stdout.splitlines() if line.startswith("Run 1 ")]
    assert summary.startswith(
        "Run 1 completed_with_failures: 5 events in 5 batches acknowledged, 0 batches failed, "
        "0 refused by mParticle, 1 events refused locally;"
    )
    assert API_SECRET not in result.output

    status = runner.invoke(app, ["status"], env=env)
    assert status.exit_code == 0, status.output
    assert status.stdout.startswith(f"Runs in {ledger}\n")
    assert f"run 1: to events_api at {emulator.base_url}" in status.stdout.splitlines()
    assert "│   1 │ " in status.stdout and " │ completed_… │ " in status.stdout
    assert (
        "events: 5 acknowledged, 0 not sent yet, 0 failed (sent again by the next push), 1 refused"
        in (status.stdout.splitlines())
    )
    assert " ".join(status.stderr.split()) == (
        "refused locally before sending: 1 events in 1 batches [bad_event_type] an event type "
        "or custom event type the Events API does not take (e.g. event 0: "
        "data.custom_event_type must be one of attribution, location, media, navigation, "
        "other, search, social, transaction, user_content, user_preference "
        '(got string "custom[/]"))'
    )


def test_plan_check_table_shows_the_names(built, tmp_path):
    plan = tmp_path / "plan.json"
    point = {"match": {"type": "custom_event", "criteria": {"event_name": "later"}}}
    criteria = {"event_name": "later", "custom_event_type": "other"}
    point["match"]["criteria"] = criteria
    document = {"data_points": [point]}
    plan.write_text(
        json.dumps({"data_plan_id": "shop[/]plan", "version": 1, "version_document": document})
    )
    result = runner.invoke(app, ["plan-check", str(plan)], env=built.env)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].strip() == "Replay set against shop[/]plan v1"
    for name in NAMES:
        assert any(f"│ {name} " in line for line in lines), (name, result.stdout)


def test_sql_table_csv_and_json_show_the_values(built):
    sql = "select event_name from replay_events where event_name <> 'later' order by event_name"
    table = runner.invoke(app, ["sql", sql], env=built.env)
    assert table.exit_code == 0, table.output
    expected = sorted([*NAMES, "odd"])
    width = max(len(v) for v in expected)
    lines = table.stdout.splitlines()
    assert lines[1] == f"┃ {'event_name':<{width}} ┃"
    assert [line for line in lines if line.startswith("│")] == [
        f"│ {v:<{width}} │" for v in expected
    ]

    csv_out = runner.invoke(app, ["sql", sql, "--format", "csv"], env=built.env)
    assert csv_out.stdout == "event_name\n" + "".join(f"{v}\n" for v in expected)
    json_out = runner.invoke(app, ["sql", sql, "--format", "json"], env=built.env)
    assert json.loads(json_out.stdout) == [{"event_name": v} for v in expected]


def test_report_warning_with_a_bracketed_ledger_path_is_printed_and_shown_as_is(built, tmp_path):
    ledger = tmp_path / "l[" / "b]<img src=x onerror=alert(1)>.duckdb"
    ledger.parent.mkdir()
    with held_open(ledger) as holder:
        env = {**built.env, "BACKFILL_LEDGER": str(ledger)}
        result = runner.invoke(app, ["report", "--out", str(tmp_path / "r.html")], env=env)
    assert result.exit_code == 0, result.output
    assert (
        f"warning: A push is running (process {holder.pid} (python -c)) and holds the ledger "
        f"{ledger}; its results are not in this report: write it again once it ends."
    ) in result.stderr.splitlines()
    # the page shows the path as text: no element comes from it
    parser = Elements()
    parser.feed((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "img" not in parser.tags
    assert f"and holds the ledger {ledger}; its results are not in this report" in parser.text


class Elements(HTMLParser):
    """The tags and the text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text = ""

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.add(tag)

    def handle_data(self, data) -> None:
        self.text += data
