"""The trigger list a replay set without replay_trigger_events is checked against: the
dbt project's seeds/trigger_events.csv, read as dbt seeds it, with bad rows named."""

from __future__ import annotations

from pathlib import Path

import pytest

from loader.push.trigger_list import BadTriggerList, TriggersUnchecked, read_seed, seed_file


def project(tmp_path: Path, seed: str | None, settings: str = "name: p\n") -> Path:
    (tmp_path / "dbt_project.yml").write_text(settings)
    if seed is not None:
        folder = tmp_path / "seeds"
        folder.mkdir()
        (folder / "trigger_events.csv").write_text(seed)
    return tmp_path


def test_rows_are_read_as_dbt_seeds_them_an_empty_name_meaning_every_event(tmp_path):
    seed = "integration,event_type,event_name\nbraze,custom_event,Order Completed\n\n"
    seed += 'customer_io,screen_view,\nbraze,custom_event,"Paid, twice"\n'
    listed = read_seed(seed_file(project(tmp_path, seed)))
    assert listed.source == tmp_path / "seeds" / "trigger_events.csv"
    assert listed.rows == [
        ("braze", "custom_event", "Order Completed"),
        ("customer_io", "screen_view", None),
        ("braze", "custom_event", "Paid, twice"),
    ]


def test_the_seed_is_found_in_the_projects_seed_paths(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "trigger_events.csv").write_text("integration,event_type,event_name\n")
    found = seed_file(project(tmp_path, None, "name: p\nseed-paths: [data]\n"))
    assert found == tmp_path / "data" / "trigger_events.csv"
    assert read_seed(found).rows == []


def test_without_a_project_or_its_seed_file_the_events_cannot_be_checked(tmp_path):
    with pytest.raises(TriggersUnchecked, match="no dbt project was found"):
        seed_file(None)
    with pytest.raises(TriggersUnchecked, match=r"has no seeds/trigger_events\.csv"):
        seed_file(project(tmp_path, None))


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ("integration,event_name\n", r"line 1: no column event_type"),
        ("integration,event_type,event_name\nbraze,,Paid\n", r"line 2: event_type is empty"),
        ("integration,event_type,event_name\n\n,custom_event,\n", r"line 3: integration is empty"),
        ("integration,event_type,event_name\nbraze,custom_event\n", r"line 2: 2 fields"),
    ],
)
def test_a_bad_row_is_named_by_file_line_and_field(tmp_path, seed, message):
    path = seed_file(project(tmp_path, seed))
    with pytest.raises(BadTriggerList, match=rf"{path}, {message}"):
        read_seed(path)
