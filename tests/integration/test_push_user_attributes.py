"""What `loader push --dry-run` says about user attributes agrees with the warehouse's
`replay_user_attributes`: blocked ones only when the build sends them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from loader.cli import app
from tests.integration.test_push import synthetic_replay_set


def warehouse_with_user_attributes(path: Path, *, blocked_sent: bool) -> None:
    """20 events of 20 users; users 1-10 carry user attributes in their batch: from a fix
    (var replay_blocked_user_attributes off), or their blocked ones (on) for users 1-4."""
    synthetic_replay_set(path, 20)
    with duckdb.connect(str(path)) as con:
        con.execute(
            "update replay_events set batch_context = json_merge_patch(batch_context, "
            """'{"user_attributes": {"tier": "gold"}}') where mpid::int <= 10"""
        )
        con.execute(
            f"""create table replay_user_attributes as
            select 'mpid:' || i as user_key, {blocked_sent} and i <= 4 as will_send,
                case when not ({blocked_sent} and i <= 4)
                    then 'var replay_blocked_user_attributes is false' end as not_sent_reason
            from range(1, 13) t(i)"""
        )


@pytest.mark.parametrize("blocked_sent", [False, True])
def test_the_dry_run_counts_blocked_user_attributes_as_the_build_decided(
    tmp_path, monkeypatch, blocked_sent
):
    warehouse = tmp_path / "backfill.duckdb"
    warehouse_with_user_attributes(warehouse, blocked_sent=blocked_sent)
    monkeypatch.setenv("BACKFILL_DUCKDB", str(warehouse))
    monkeypatch.setenv("BACKFILL_LEDGER", str(tmp_path / "ledger.duckdb"))
    monkeypatch.setenv("MPARTICLE_API_KEY", "key")
    monkeypatch.setenv("MPARTICLE_API_SECRET", "user-attributes-secret")
    result = CliRunner().invoke(app, ["push", "--dry-run", "--endpoint", "http://127.0.0.1:9/v2"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    if blocked_sent:
        assert "4 events carry their users' blocked user attributes" in said
        assert "6 more events set user attributes a fix put there" in said
    else:
        assert "blocked user attributes" not in said
        assert "10 events set user attributes a fix put there" in said
