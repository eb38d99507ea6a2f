"""A push to another destination than the ledger's is refused with the way forward."""

from __future__ import annotations

from pathlib import Path

import pytest

from loader.errors import LoaderError
from loader.push.runner import _check_destination


class FakeLedger:
    def __init__(self, destination):
        self._destination = destination

    def destination(self, name="events_api"):
        return self._destination


def refusal(earlier: tuple[str, str], endpoint: str, fingerprint: str) -> str:
    with pytest.raises(LoaderError) as raised:
        _check_destination(FakeLedger(earlier), Path("ledger.duckdb"), endpoint, fingerprint)
    return str(raised.value)


def test_the_same_destination_or_a_new_ledger_goes_ahead():
    _check_destination(FakeLedger(None), Path("ledger.duckdb"), "https://x/v2", "sha256:1")
    _check_destination(
        FakeLedger(("https://x/v2", "sha256:1")), Path("ledger.duckdb"), "https://x/v2", "sha256:1"
    )


def test_an_emulator_on_another_port_is_told_to_use_a_fixed_port_or_its_own_ledger():
    message = refusal(
        ("http://127.0.0.1:37413/v2", "sha256:aa"), "http://127.0.0.1:41001/v2", "sha256:aa"
    )
    assert message == (
        "the ledger ledger.duckdb records sends to http://127.0.0.1:37413/v2 (API key "
        "sha256:aa), but this run targets http://127.0.0.1:41001/v2 (API key sha256:aa). "
        "To go on with that backfill, push to the same endpoint with the same API key. "
        "Use another ledger file for another destination (BACKFILL_LEDGER=other-ledger.duckdb "
        "loader push ...), so that what one accepted is not skipped for the other. "
        "The recorded destination is a local emulator: start it on the same port "
        "(`loader emulate --port 37413`), and give rehearsals a ledger of their own "
        "(BACKFILL_LEDGER=rehearsal-ledger.duckdb)."
    )


def test_another_real_destination_is_told_to_use_another_ledger():
    message = refusal(
        ("https://s2s.mparticle.com/v2", "sha256:aa"),
        "https://s2s.eu1.mparticle.com/v2",
        "sha256:bb",
    )
    assert message == (
        "the ledger ledger.duckdb records sends to https://s2s.mparticle.com/v2 (API key "
        "sha256:aa), but this run targets https://s2s.eu1.mparticle.com/v2 (API key "
        "sha256:bb). To go on with that backfill, push to the same endpoint with the same API "
        "key. Use another ledger file for another destination "
        "(BACKFILL_LEDGER=other-ledger.duckdb loader push ...), so that what one accepted is "
        "not skipped for the other."
    )
