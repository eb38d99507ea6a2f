"""The custom_event_type values have one home, seeds/events_api_custom_event_types.csv:
the fix macro reads the seed; the batch rules' list must equal it."""

from __future__ import annotations

import csv
from pathlib import Path

from loader.events_api.batch_rules import CUSTOM_EVENT_TYPES

SEED = Path(__file__).resolve().parents[2] / "seeds/events_api_custom_event_types.csv"


def seed_values() -> list[str]:
    with SEED.open(newline="") as file:
        return [row["custom_event_type"] for row in csv.DictReader(file)]


def test_the_seed_lists_each_custom_event_type_once():
    values = seed_values()
    assert len(values) == len(set(values)) == 10


def test_batch_rules_accept_exactly_the_seeds_custom_event_types():
    assert CUSTOM_EVENT_TYPES == frozenset(seed_values())
