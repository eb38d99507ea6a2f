"""The suppression list on real dbt builds: users listed by email (in another case), by
MPID and by a customer_id that a context fix renamed never reach the emulator, every
other event arrives once, and a bad row stops the build naming file and line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.push.destinations.events_api import Credentials
from loader.push.runner import PushOptions, push
from tests.conftest import query, run_dbt
from tests.integration.test_context_fixes import FIX_CUSTOMER_ID, project_with
from tests.quarantine import example_batch, write_file

NOW_MS = 1_795_996_800_000
runner = CliRunner()


def batch(
    batch_id: str,
    *,
    mpid: str | None = None,
    identities: dict | None = None,
    blocked_identities: tuple[str, ...] = (),
) -> dict:
    """A batch with two blocked events named '<batch_id> e0' and '<batch_id> e1'."""
    body = example_batch(NOW_MS - 86_400_000, batch_id=batch_id, mpid=mpid)
    body["user_identities"] = identities or {}
    body["device_info"] = {}
    body["events"] = body["events"][:2]
    ids = [f"{batch_id}0", f"{batch_id}1"]
    for index, event in enumerate(body["events"]):
        event["data"]["event_id"] = ids[index]
        event["data"]["event_name"] = f"{batch_id} e{index}"
    metadata = body["context"]["data_plan"]["block_metadata"]
    metadata.update(blocked_event_ids=ids, blocked_event_attributes=[])
    metadata["blocked_user_identities"] = list(blocked_identities)
    return body


BATCHES = [
    # listed by email, other case; the plan blocked the email too
    batch("1", identities={"email": "Erased@Example.com"}, blocked_identities=("email",)),
    # an MPID user erased by email: the batch without the email is skipped too
    batch("2", mpid="8000000000000000005", identities={"email": "gone@example.com"}),
    batch("3", mpid="8000000000000000005"),
    batch("4", mpid="8000000000000000001"),  # listed by MPID
    batch("5", mpid="8000000000000000002"),  # a float would take it for ...001: replayed
    batch("6", identities={"customerId": "c-42"}),  # customer_id once the context fix renames it
    batch("7", identities={"customer_id": "C-42"}),  # another case: not the same customer_id
    batch("8", identities={"email": "kept@example.com"}, blocked_identities=("email",)),
]
SUPPRESSED = {"1", "2", "3", "4", "6"}

LIST_CSV = """identity_type,identity
email,  erased@EXAMPLE.com
Email,gone@example.com
mpid,8000000000000000001
customer_id,c-42
"""


@pytest.fixture
def ingested(tmp_path, monkeypatch) -> Path:
    warehouse = tmp_path / "backfill.duckdb"
    monkeypatch.setenv("BACKFILL_DUCKDB", str(warehouse))
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    write_file(tmp_path / "q" / "batches.txt", BATCHES)
    result = runner.invoke(app, ["ingest", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    return warehouse


def build(warehouse: Path, project: Path, *select: str, check: bool = True):
    return run_dbt(
        warehouse,
        "build",
        *select,
        dbt_vars={"replay_reference_time_ms": NOW_MS},
        project_dir=project,
        check=check,
    )


def test_suppressed_users_never_reach_the_emulator(ingested, tmp_path):
    listed = tmp_path / "erasures.csv"
    listed.write_text(LIST_CSV)
    loaded = runner.invoke(app, ["suppress", str(listed)])
    assert loaded.exit_code == 0, loaded.output
    assert "suppression list loaded" in loaded.output and "4 rows" in loaded.output
    project = project_with(tmp_path, {"cfix_customer_id": FIX_CUSTOMER_ID})
    build(ingested, project)

    outcomes = query(
        ingested,
        "select split_part(batch_id, ':', 1), event_name, outcome, skip_reason "
        "from blocked_events__outcomes",
    )
    names = {name: (outcome, reason) for _, name, outcome, reason in outcomes}
    assert len(names) == 2 * len(BATCHES)  # every blocked event has its outcome
    for batch_id in (b["batch_id"] for b in BATCHES):
        for name in (f"{batch_id} e0", f"{batch_id} e1"):
            suppressed = batch_id in SUPPRESSED
            expected = ("skipped", "suppressed_user") if suppressed else ("replay", None)
            assert names[name] == expected, name
    identities = query(
        ingested,
        "select split_part(batch_id, ':', 1), outcome, skip_reason "
        "from blocked_identities__outcomes where identity_kind = 'user' order by 1",
    )
    assert identities == [("1", "skipped", "suppressed_user"), ("8", "replay", None)]
    assert query(
        ingested,
        "select suppression_list, suppression_list_checksum, suppression_list_rows "
        "from replay_build_settings",
    ) == [(str(listed.resolve()), hashlib.sha256(listed.read_bytes()).hexdigest(), 4)]

    code = runner.invoke(app, ["push", "--dry-run"])
    assert code.exit_code == 0, code.output
    assert f"suppression list {listed.resolve()} (4 rows, sha256 " in code.stdout
    assert "built without a suppression list" not in code.output

    config = EmulatorConfig(api_key="key", api_secret="s3cret")
    with running_emulator(config) as emu:
        report = push(
            ingested,
            tmp_path / "ledger.duckdb",
            PushOptions(endpoint=emu.base_url),
            Credentials("key", "s3cret"),
        )
        accepted = emu.accepted()
    assert report.ok, report
    received = sorted(event["data"]["event_name"] for b in accepted for event in b["events"])
    kept = [b["batch_id"] for b in BATCHES if b["batch_id"] not in SUPPRESSED]
    assert received == sorted(f"{batch_id} e{i}" for batch_id in kept for i in (0, 1))
    assert {b.get("mpid") for b in accepted} == {None, 8000000000000000002}
    [(recorded,)] = query(
        tmp_path / "ledger.duckdb", "select options->>'suppression_list' from runs"
    )
    assert '"rows":4' in recorded  # the run records the list of the build it sent


def test_a_new_list_replaces_the_old_one_and_parquet_keeps_every_mpid_digit(ingested, tmp_path):
    listed = tmp_path / "erasures.parquet"
    pq.write_table(
        pa.table(
            {
                "identity_type": ["mpid", "mpid"],
                "identity": pa.array([8000000000000000002, 8000000000000000005], pa.int64()),
            }
        ),
        listed,
    )
    runner.invoke(app, ["suppress", str(tmp_path / "other.csv")])  # not found: nothing loaded
    assert runner.invoke(app, ["suppress", str(listed)]).exit_code == 0
    again = runner.invoke(app, ["suppress", str(listed)])
    assert "suppression list unchanged" in again.output
    build(ingested, Path(__file__).resolve().parents[2])
    skipped = query(
        ingested,
        "select distinct split_part(batch_id, ':', 1) from blocked_events__outcomes "
        "where skip_reason = 'suppressed_user' order by 1",
    )
    assert [batch_id for (batch_id,) in skipped] == ["2", "3", "5"]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("phone,555", "unknown identity_type 'phone'"),
        ("email,  ", "identity is empty"),
        ("mpid,8000000000000000001.0", "MPID '8000000000000000001.0' is not a 64-bit integer"),
    ],
)
def test_a_bad_row_fails_the_build_with_file_and_line(ingested, tmp_path, row, problem):
    listed = tmp_path / "erasures.csv"
    listed.write_text(f"identity_type,identity\nemail,a@example.com\n{row}\n")
    assert runner.invoke(app, ["suppress", str(listed)]).exit_code == 0
    project = Path(__file__).resolve().parents[2]
    result = build(ingested, project, "-s", "stg_suppression__identities", check=False)
    assert result.returncode != 0
    assert f"suppression list {listed.resolve()}, line 3: {problem}" in result.stdout, result.stdout


def test_a_list_without_its_columns_is_refused_when_loaded(ingested, tmp_path):
    listed = tmp_path / "erasures.csv"
    listed.write_text("type,value\nemail,a@example.com\n")
    result = runner.invoke(app, ["suppress", str(listed)])
    assert result.exit_code == 2
    assert "erasures.csv:1: the header needs columns identity_type, identity" in result.output
