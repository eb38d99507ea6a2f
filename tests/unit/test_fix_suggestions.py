"""Names close to planned ones, suggestion names and the fix SQL a suggestion writes."""

from __future__ import annotations

import pytest

from loader.audit.data_plan_check import PlanVersion
from loader.audit.fix_suggestions import (
    Planned,
    Step,
    Suggestion,
    SuggestionError,
    Suggestions,
    close_name,
    closeness,
    edit_distance,
    json_pointer,
    planned_attributes,
    slug,
)
from loader.fixes.scaffold import described_entry


def test_edit_distance_counts_a_swap_of_neighbours_as_one_edit():
    assert edit_distance("checkout", "chekout") == 1
    assert edit_distance("checkout", "chcekout") == 1  # swapped neighbours
    assert edit_distance("search", "serach") == 1
    assert edit_distance("abc", "xyz") == 3
    assert edit_distance("", "abc") == 3


def test_close_means_case_separators_or_a_few_edits():
    assert closeness("add_to_cart", "Add To Cart") == "letter case or separators"
    assert closeness("Chekout Complete", "Checkout Complete") == "edit distance 1"
    assert closeness("Chekout Compelte", "Checkout Complete") == "edit distance 2"
    assert closeness("price", "prize") == "edit distance 1"
    assert closeness("price", "bride") is None  # 2 edits on a short name
    assert closeness("Search", "Search") is None  # the same name is not a rename
    assert closeness("id", "ip") is None  # too short to guess


def test_a_tie_chooses_nothing():
    assert close_name("prise", {"price", "prime"}) == (None, "", ["price", "prime"])
    assert close_name("Price", {"price", "prime"})[0] == "price"  # case only wins
    assert close_name("zzz", {"price"}) == (None, "", [])


def test_slugs_and_pointers():
    assert slug("Chekout Complete") == "chekout_complete"
    assert slug("$FirstName") == "first_name"
    assert json_pointer("a/b~c") == "/a~1b~0c"


def test_only_closed_custom_attributes_are_planned_names():
    def schema(additional: bool) -> dict:
        attributes = {"additionalProperties": additional, "properties": {"sku": {"type": "string"}}}
        return {"properties": {"data": {"properties": {"custom_attributes": attributes}}}}

    assert planned_attributes(schema(False)) == {"sku": {"type": "string"}}
    assert planned_attributes(schema(True)) is None
    plan = PlanVersion(
        "p", 3, {("custom_event", "other", "A"): schema(False), ("screen_view", "Home"): {}}
    )
    planned = Planned.from_plan(plan)
    assert planned.custom_events == {("other", "A")}
    assert planned.screens == {"Home"}
    assert planned.any_attribute == {"sku"} and planned.label == "p v3"


def test_a_suggestion_writes_one_cte_per_macro():
    suggestion = Suggestion(
        "rename_x",
        "rename_event",
        "event 'x'",
        3,
        "rename to 'Y'",
        (Step("renamed", '{{ rename_event("x", "Y") }}'), Step("fixed", "{{ m() }}")),
        "event_name = 'x'",
        "3 events were named 'x'. Renames them.",
    )
    sql = suggestion.sql()
    assert sql.startswith("-- fix_rename_x: 3 events were named 'x'. Renames them.\n")
    assert "from {{ fix_input() }}" in sql
    assert "    from events\n)" in sql and "    from renamed\n)" in sql
    assert sql.endswith("select * from fixed\n")
    assert "TODO" not in sql


def test_a_written_description_replaces_the_todo():
    entry = described_entry("fix_x", "word " * 30)
    assert entry.startswith("  - name: fix_x\n    description: >\n      word")
    assert all(len(line) <= 88 for line in entry.splitlines())


def test_a_name_without_a_plan_says_the_plan_may_be_missing():
    with pytest.raises(SuggestionError, match="from a data plan only"):
        Suggestions(None, 0).named("drop_debug_info")
    with pytest.raises(SuggestionError, match="the suggestions are: none.$"):
        Suggestions("p v1", 0).named("fix_drop_debug_info")
