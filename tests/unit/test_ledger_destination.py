"""A ledger with no sends takes any target; one that has sent keeps its target (the
push tests, tests/integration/test_push.py, cover refused, acknowledged and unanswered
sends with a real emulator)."""

from __future__ import annotations

from pathlib import Path

from loader.push.ledger import Ledger
from loader.push.runner import _check_destination


def test_a_new_ledger_takes_any_target_and_says_nothing():
    with Ledger.in_memory() as ledger:
        assert ledger.holdings().acknowledged == 0 and not ledger.holdings()
        assert _check_destination(ledger, Path("ledger.duckdb"), "https://x/v2", "sha256:1") is None
