"""A test send of a few users (`loader push --sample-users N` / `--user-key`), then the rest:
every replay event reaches the emulator exactly once, also under random 429s, 503s and drops."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loader.cli import app
from loader.emulator.server import EmulatorConfig, running_emulator
from loader.push.ledger import Ledger
from tests.conftest import built_sample, push_env, query

SECRET = "Sample-Secret-77aa"
runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return built_sample(tmp_path_factory.mktemp("sample"), 2000, seed=21)


@pytest.fixture
def env(built, tmp_path, monkeypatch) -> dict[str, str]:
    credentials = {
        "MPARTICLE_API_KEY": "key",
        "MPARTICLE_API_SECRET": SECRET,
    }
    return push_env(built, tmp_path, monkeypatch, credentials)


def replay(env) -> dict[str, tuple[str, str, str]]:
    """replay_key -> (user_key, pair of event type and name, event_json)."""
    rows = query(
        Path(env["BACKFILL_DUCKDB"]),
        "select replay_key, user_key, event_type || '/' || coalesce(event_name, ''), "
        "event_json::varchar from replay_events",
    )
    return {key: (user, pair, event) for key, user, pair, event in rows}


def greedy_cover(rows: dict[str, tuple[str, str, str]], n: int) -> tuple[list[str], int]:
    """The reference: pick the user adding most uncovered pairs, ties to the smallest key."""
    pairs_of: dict[str, set[str]] = {}
    for user, pair, _ in rows.values():
        pairs_of.setdefault(user, set()).add(pair)
    chosen: list[str] = []
    covered: set[str] = set()
    for _ in range(n):
        user = min(
            (u for u in pairs_of if u not in chosen), key=lambda u: (-len(pairs_of[u] - covered), u)
        )
        chosen.append(user)
        covered |= pairs_of[user]
    return chosen, len(covered)


def push(*args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["push", "--json", *args])
    return result.exit_code, orjson.loads(result.stdout) if result.stdout else {}, result.stderr


def delivered(rows, emu) -> dict[str, int]:
    by_event = {
        orjson.dumps(orjson.loads(e), option=orjson.OPT_SORT_KEYS): k
        for k, (_, _, e) in rows.items()
    }
    seen: dict[str, int] = {}
    for batch in emu.accepted():
        for event in batch["events"]:
            key = by_event[orjson.dumps(event, option=orjson.OPT_SORT_KEYS)]
            seen[key] = seen.get(key, 0) + 1
    return seen


@pytest.mark.parametrize(
    "faults",
    [{}, {"share_429": 0.15, "share_503": 0.1, "share_drop": 0.1, "seed": 3, "retry_after_s": 0}],
    ids=["clean", "faults"],
)
def test_sample_then_full_push_delivers_every_event_once(env, faults):
    rows = replay(env)
    expected_users, expected_covered = greedy_cover(rows, 5)
    pairs_total = len({pair for _, pair, _ in rows.values()})
    config = EmulatorConfig(api_key="key", api_secret=SECRET, **faults)
    with running_emulator(config) as emu:
        code, report, stderr = push(
            "--endpoint", emu.base_url, "--sample-users", "5", "--max-retries", "20"
        )
        assert code == 0, stderr
        plan = report["plan"]
        assert plan["sample_users"] == expected_users
        assert (plan["sample_pairs_covered"], plan["sample_pairs_total"]) == (
            expected_covered,
            pairs_total,
        )
        sample_keys = {k for k, (user, _, _) in rows.items() if user in expected_users}
        assert report["sent"]["events_acknowledged"] == len(sample_keys)
        first = delivered(rows, emu)
        assert set(first) == sample_keys and set(first.values()) == {1}

        code, report, stderr = push("--endpoint", emu.base_url, "--max-retries", "20")
        assert code == 0, stderr
        assert report["plan"]["sample_users"] is None
        assert report["plan"]["acknowledged_before"] == len(sample_keys)
        everything = delivered(rows, emu)
    assert set(everything) == set(rows) and set(everything.values()) == {1}
    with Ledger.open(Path(env["BACKFILL_LEDGER"]), read_only=True) as ledger:
        assert ledger.query("select run_id, sample_users from runs order by run_id") == [
            (1, 5),
            (2, None),
        ]


def test_users_picked_by_hand_and_the_plan_says_what_to_check(env):
    rows = replay(env)
    users = sorted({user for user, _, _ in rows.values()})
    picked = [users[-1], users[len(users) // 2]]
    result = runner.invoke(
        app, ["push", "--dry-run", "--user-key", picked[0], "--user-key", picked[1]]
    )
    assert result.exit_code == 0, result.output
    events = sum(1 for user, _, _ in rows.values() if user in picked)
    pairs = len({pair for user, pair, _ in rows.values() if user in picked})
    total = len({pair for _, pair, _ in rows.values()})
    assert f"Plan: {events} events of 2 users" in result.stdout
    assert f"2 users cover {pairs} of {total} event names" in result.stdout
    assert "Live Stream" in result.stdout
    assert f"{len(rows) - events} held back for the full send" in result.stdout

    result = runner.invoke(app, ["push", "--dry-run", "--user-key", "no-such-user"])
    assert result.exit_code == 2
    assert "no-such-user" in result.stderr and "user_key" in result.stderr


def test_the_test_send_names_its_users_as_live_stream_finds_them(env):
    """An MPID, else the customer id (else another identity), beside the user_key."""
    [(by_mpid, mpid)] = query(
        Path(env["BACKFILL_DUCKDB"]),
        "select user_key, mpid from replay_events where mpid is not null order by user_key limit 1",
    )
    [(by_customer, customer_id)] = query(
        Path(env["BACKFILL_DUCKDB"]),
        "select user_key, batch_context->'$.user_identities'->>'customer_id' "
        "from replay_events where mpid is null and batch_context->'$.user_identities' "
        "->>'customer_id' is not null order by user_key limit 1",
    )
    [(by_device, device_name, device_id)] = query(
        Path(env["BACKFILL_DUCKDB"]),
        "select user_key, name, batch_context->'$.device_info'->>name from (select *, "
        "list_sort(list_filter(json_keys(batch_context->'$.device_info'), "
        "lambda k: suffix(k, '_id')))[1] as name from replay_events) "
        "where mpid is null and coalesce(json_keys(batch_context->'$.user_identities'), []) "
        "= [] order by user_key limit 1",
    )
    assert device_name.endswith("_advertising_id")
    assert by_customer.startswith("ids:") and by_device.startswith("ids:")
    picked = ["--user-key", by_mpid, "--user-key", by_customer, "--user-key", by_device]

    result = runner.invoke(app, ["push", "--dry-run", *picked])

    assert result.exit_code == 0, result.output
    [line] = [line for line in result.stdout.splitlines() if "test send: 3 users" in line]
    assert line.endswith(
        f": MPID {mpid}, customer_id {customer_id} ({by_customer}), "
        f"{device_name} {device_id} ({by_device})"
    )
    plan = orjson.loads(runner.invoke(app, ["push", "--dry-run", "--json", *picked]).stdout)
    assert plan["plan"]["sample_users"] == [by_mpid, by_customer, by_device]
    assert plan["plan"]["sample_user_identities"][0] == f"MPID {mpid}"


def test_status_and_report_show_a_sample_run_apart(env, tmp_path):
    with running_emulator(EmulatorConfig(api_key="key", api_secret=SECRET)) as emu:
        code, _, stderr = push("--endpoint", emu.base_url, "--sample-users", "2")
        assert code == 0, stderr
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "run 1: sample (2 users), a test send" in result.stdout
    result = runner.invoke(app, ["status", "--json"])
    assert orjson.loads(result.stdout)["runs"][0]["sample_users"] == 2
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "sample (2 users)" in out.read_text()


def test_sample_refuses_resend_changed(env):
    result = runner.invoke(app, ["push", "--dry-run", "--sample-users", "2", "--resend-changed"])
    assert result.exit_code == 2
    assert "--resend-changed" in result.stderr
