"""A reviewed plan: `loader push --dry-run --out DIR` fingerprints what it would send;
`loader push --plan DIR/plan.json` sends exactly that, or refuses (exit 2) saying what
changed. A real dbt build of a project copy with its own fix, the emulator, the ledger."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.push.ledger import Ledger
from tests.conftest import run_dbt
from tests.integration.test_new_fix import copy_project
from tests.quarantine import write_file

NOW_MS = 1_764_000_000_000
DAY_MS = 86_400_000
API_KEY, SECRET = "plan-key-1e2d", "Plan-Secret-Value-77c1b0"
FIX = "fix_rename_sign_up"
FIX_SQL = """-- Sign Up was renamed {new!r} in the data plan.
with events as (
    select * from {{{{ fix_input() }}}}
),

fixed as (
    select
        * replace (
            {{{{ rename_event('Sign Up', {new!r}) }}}}
        ),
    from events
)

select * from fixed
"""
runner = CliRunner()


def batch(batch_id: str, user: str, names: list[str]) -> dict:
    ids = [f"{batch_id}{i}" for i in range(len(names))]
    return {
        "batch_id": batch_id,
        "mpid": user,
        "environment": "production",
        "user_identities": {"customer_id": f"C{user}"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_id": event_id,
                    "event_name": name,
                    "custom_event_type": "other",
                    "timestamp_unixtime_ms": str(NOW_MS - DAY_MS + i),
                },
            }
            for i, (event_id, name) in enumerate(zip(ids, names, strict=True))
        ],
        "context": {"data_plan": {"block_metadata": {"dto_version": 1, "blocked_event_ids": ids}}},
    }


def build(warehouse: Path, project: Path, new_name: str) -> None:
    (project / "models/fixes" / f"{FIX}.sql").write_text(FIX_SQL.format(new=new_name))
    run_dbt(
        warehouse,
        "build",
        dbt_vars={"replay_reference_time_ms": NOW_MS, "fixes": [FIX]},
        project_dir=project,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A project copy whose one fix renames Sign Up to Signed Up, and its built warehouse."""
    tmp = tmp_path_factory.mktemp("reviewed")
    project = copy_project(tmp / "project")
    for other in (project / "models/fixes").glob("fix_*.sql"):  # the chain is this fix alone
        other.unlink()
    (project / "models/fixes/_fixes__models.yml").write_text(
        f"version: 2\nmodels:\n  - name: {FIX}\n    description: Sign Up renamed.\n"
    )
    warehouse = tmp / "backfill.duckdb"
    write_file(
        tmp / "q/Plan_1.txt",
        [
            batch("1", "101", ["Sign Up", "Browse", "Browse"]),
            batch("2", "202", ["Sign Up", "Browse"]),
        ],
    )
    result = runner.invoke(app, ["ingest", str(tmp / "q")], env={"BACKFILL_DUCKDB": str(warehouse)})
    assert result.exit_code == 0, result.output
    build(warehouse, project, "Signed Up")
    return project, warehouse


@pytest.fixture
def env(built, tmp_path, monkeypatch) -> dict[str, str]:
    """A copy of the project and warehouse, a fresh ledger and credentials, in the env."""
    project = tmp_path / "project"
    shutil.copytree(built[0], project)
    shutil.copy(built[1], tmp_path / "backfill.duckdb")
    values = {
        "BACKFILL_DUCKDB": str(tmp_path / "backfill.duckdb"),
        "BACKFILL_LEDGER": str(tmp_path / "ledger.duckdb"),
        "DBT_PROJECT_DIR": str(project),
        "MPARTICLE_API_KEY": API_KEY,
        "MPARTICLE_API_SECRET": SECRET,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def emu():
    with running_emulator(EmulatorConfig(api_key=API_KEY, api_secret=SECRET)) as emulator:
        yield emulator


def invoke(*args: str):
    return runner.invoke(app, list(args))


def planned_batches(folder: Path) -> list[dict]:
    return [
        batch
        for path in sorted(folder.glob("request-*.json"))
        for batch in orjson.loads(path.read_bytes())
    ]


def runs(env) -> list[tuple]:
    with Ledger.open(Path(env["BACKFILL_LEDGER"]), read_only=True) as ledger:
        return ledger.query("select run_id, status from runs")


def test_a_push_with_the_plan_sends_exactly_the_planned_batches(env, emu, tmp_path):
    out = tmp_path / "dry"
    dry = invoke("push", "--dry-run", "--out", str(out))
    assert dry.exit_code == 0, dry.output
    plan = orjson.loads((out / "plan.json").read_bytes())
    reviewed = plan["reviewed_plan"]
    assert reviewed["hash"].startswith("sha256:")
    assert f"plan hash: {reviewed['hash']}" in dry.stdout
    assert reviewed["events_by_name"] == {"Browse": 3, "Signed Up": 2}
    assert reviewed["ledger"]["new"] == 5 and reviewed["ledger"]["acknowledged_before"] == 0
    assert [fix["name"] for fix in reviewed["build"]["fixes"]] == [FIX]
    for path in out.iterdir():  # neither credential anywhere in the plan's files
        assert SECRET not in path.read_text() and API_KEY not in path.read_text()

    sent = invoke("push", "--plan", str(out / "plan.json"), "--endpoint", emu.base_url, "--json")
    assert sent.exit_code == 0, sent.output
    report = orjson.loads(sent.stdout)
    assert report["status"] == "completed"
    assert report["reviewed_plan"]["hash"] == reviewed["hash"]
    by_id = lambda batches: sorted(batches, key=lambda b: b["source_request_id"])  # noqa: E731
    assert by_id(emu.accepted()) == by_id(planned_batches(out))
    assert [name for (_, name) in runs(env)] == ["completed"]

    # the same plan again: the ledger has acknowledged it since, so it is not that plan
    again = invoke("push", "--plan", str(out / "plan.json"), "--endpoint", emu.base_url)
    assert again.exit_code == 2
    assert "ledger (replay events by class, planned -> now): acknowledged_before 0 -> 5" in (
        again.stderr
    )
    assert "new 5 -> 0" in again.stderr
    assert len(runs(env)) == 1  # the refused push left no run behind


def test_a_rebuild_with_a_changed_fix_is_refused_and_named(env, emu, tmp_path):
    out = tmp_path / "dry"
    assert invoke("push", "--dry-run", "--out", str(out)).exit_code == 0
    build(Path(env["BACKFILL_DUCKDB"]), Path(env["DBT_PROJECT_DIR"]), "Registered")

    refused = invoke("push", "--plan", str(out / "plan.json"), "--endpoint", emu.base_url)

    assert refused.exit_code == 2, refused.output
    assert refused.stdout == ""
    message = " ".join(refused.stderr.split())  # the console wraps long lines
    assert f"not pushing: what would be sent is not the plan {out / 'plan.json'}" in message
    assert f"fix {FIX}: changed (the rows it changed have other values)" in message
    assert "events by name (planned -> now): Registered 0 -> 2, Signed Up 2 -> 0" in message
    assert "nothing was sent" in message
    assert emu.accepted() == [] and emu.requests == []
    assert runs(env) == []


def test_a_plan_for_another_destination_or_options_is_refused(env, emu, tmp_path):
    out = tmp_path / "dry"
    assert invoke("push", "--dry-run", "--out", str(out), "--sample-users", "1").exit_code == 0

    refused = invoke("push", "--plan", str(out / "plan.json"), "--endpoint", emu.base_url)

    assert refused.exit_code == 2
    message = " ".join(refused.stderr.split())
    assert 'option sample: {"users":1,"user_keys":[]} in the plan, none now' in message
    assert emu.requests == []


def test_a_plan_file_that_is_not_a_plan_is_refused_with_its_name(env, tmp_path):
    other = tmp_path / "notes.json"
    other.write_text('{"hello": 1}')
    refused = invoke("push", "--plan", str(other), "--endpoint", "http://127.0.0.1:9/v2")
    assert refused.exit_code == 2
    assert f"--plan {other}: no reviewed_plan section" in " ".join(refused.stderr.split())
    with_dry_run = invoke("push", "--dry-run", "--plan", str(other))
    assert with_dry_run.exit_code == 2
    assert "--plan goes with a push" in with_dry_run.stderr
