"""A push whose rate-limit answers ask for absurd waits finishes, and its run says so."""

from __future__ import annotations

from loader.push import transport
from tests.integration.test_push import (  # noqa: F401 - fixtures
    assert_delivered_exactly_once,
    built,
    emu,
    env,
    ledger_rows,
    push_json,
)


def test_retry_after_inf_and_1e9_end_in_a_completed_run(env, emu, monkeypatch):  # noqa: F811
    monkeypatch.setattr(transport, "MAX_RETRY_AFTER_S", 0.05)
    emu.script(["429:inf", "429:1e9"])
    code, report, stderr = push_json("--endpoint", emu.base_url, "--workers", "1")
    assert code == 0, stderr
    assert report["status"] == "completed"
    assert ledger_rows(env, "select status from runs") == [("completed",)]
    assert ledger_rows(
        env, "select retry_after, wait_ms from requests where status_code = 429 order by 1"
    ) == [("1e+09", 50), ("inf", 50)]
    assert_delivered_exactly_once(env, emu)
