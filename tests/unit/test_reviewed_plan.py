"""What a reviewed plan's comparison says changed, from two fingerprints."""

from __future__ import annotations

import pytest

from loader.errors import LoaderError
from loader.push.reviewed_plan import PlanFingerprint, check_plan, differences, read_plan


def fingerprint(**changes) -> PlanFingerprint:
    base = {
        "destination": "events_api",
        "hash": "sha256:a",
        "batches_hash": "b",
        "ledger_hash": "l",
        "batches": 2,
        "events": 5,
        "events_by_name": {"Browse": 3, "Sign Up": 2},
        "ledger": {"new": 5, "acknowledged_before": 0},
        "options": {"resend_changed": False, "sample": None},
        "build": {
            "vars": {"fixes": ["fix_a", "fix_b"], "replay_attribute_only_events": False},
            "fixes": [
                {"name": "fix_a", "rows_changed": 2, "rows_skipped": 0, "digest": "x"},
                {"name": "fix_b", "rows_changed": 1, "rows_skipped": 0, "digest": "y"},
            ],
        },
    }
    return PlanFingerprint(**{**base, **changes})


def test_a_fix_left_out_a_var_and_the_counts_are_named():
    planned = fingerprint()
    now = fingerprint(
        hash="sha256:c",
        batches_hash="d",
        events=3,
        events_by_name={"Browse": 3},
        build={
            "vars": {"fixes": ["fix_a"], "replay_attribute_only_events": True},
            "fixes": [{"name": "fix_a", "rows_changed": 1, "rows_skipped": 0, "digest": "z"}],
        },
    )
    assert differences(planned, now) == [
        "fix fix_a: changed (rows changed 2 -> 1)",
        "fix fix_b: in the plan's chain, not in this build's (var fixes)",
        "var replay_attribute_only_events: false in the plan's build, true now",
        "events by name (planned -> now): Sign Up 2 -> 0",
        "in all: 5 events in 2 batches planned, 3 in 2 now",
    ]


def test_the_same_hash_passes_and_another_destination_does_not(tmp_path):
    check_plan(tmp_path / "plan.json", fingerprint(), fingerprint())
    with pytest.raises(LoaderError) as raised:
        check_plan(tmp_path / "plan.json", fingerprint(), fingerprint(destination="amplitude"))
    assert "destination: the plan is for --destination events_api, this push is for amplitude" in (
        str(raised.value)
    )


def test_a_plan_with_other_bodies_and_the_same_counts_says_so():
    now = fingerprint(hash="sha256:c", batches_hash="other")
    assert differences(fingerprint(), now) == [
        "batch bodies: the same counts, other content (a field's value, the order, how events "
        "are cut into batches)"
    ]


def test_a_file_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("request bodies")
    with pytest.raises(LoaderError, match=f"--plan {path}: not JSON"):
        read_plan(path)
    with pytest.raises(LoaderError, match="cannot read it"):
        read_plan(tmp_path / "missing.json")
