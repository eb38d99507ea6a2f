"""`loader plan-check`: mParticle data plan files, validation rules, and a real replay set."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from loader.audit.data_plan_check import (
    NOT_IN_SCHEMA,
    PlanFileError,
    classify,
    event_key,
    load_plan,
    match_key,
)
from loader.audit.data_plan_check import _validator as plan_validator
from loader.cli import app
from tests.conftest import ROOT, query, run_dbt
from tests.demo import DEMO_FIXES
from tests.quarantine import write_file

EXAMPLE_PLAN = ROOT / "examples/data_plan_shop_plan_v4.json"
NOW_MS = 1_764_000_000_000
runner = CliRunner()


def custom_attributes_schema(properties: dict, *, additional: bool = False, required=()) -> dict:
    return {
        "properties": {
            "data": {
                "additionalProperties": True,
                "properties": {
                    "custom_attributes": {
                        "additionalProperties": additional,
                        "properties": properties,
                        "required": list(required),
                        "type": "object",
                    }
                },
                "type": "object",
            }
        }
    }


def event(attributes: dict, name: str = "Add To Cart") -> dict:
    return {
        "event_type": "custom_event",
        "data": {
            "event_name": name,
            "custom_event_type": "transaction",
            "timestamp_unixtime_ms": NOW_MS,
            "custom_attributes": attributes,
        },
    }


# --- validation rules -----------------------------------------------------------------


def test_numbers_and_booleans_written_as_text_are_valid_like_in_mparticle():
    schema = custom_attributes_schema(
        {
            "price": {"type": "number", "minimum": 0},
            "qty": {"type": "integer", "enum": [1, 2, 3]},
            "gift": {"type": "boolean"},
            "sku": {"type": "string"},
        }
    )
    validator = plan_validator(schema)
    ok = event({"price": "19.99", "qty": "2", "gift": "true", "sku": 42})
    assert classify(ok, validator) == ("ok", [])

    status, problems = classify(
        event({"price": "-1", "qty": "2.5", "gift": "yes", "sku": {"a": 1}}), validator
    )
    assert status == "invalid"
    text = " | ".join(problems)
    assert "data.custom_attributes.price: '-1' is less than the minimum of 0" in text
    assert "data.custom_attributes.qty" in text
    assert "data.custom_attributes.gift" in text
    assert "data.custom_attributes.sku" in text
    assert len(problems) == 5  # qty fails both its type and its enum


def test_big_integers_are_compared_exactly():
    schema = custom_attributes_schema({"n": {"type": "integer", "maximum": 2**63 - 1}})
    validator = plan_validator(schema)
    assert classify(event({"n": str(2**63 - 1)}), validator)[0] == "ok"
    assert classify(event({"n": str(2**63)}), validator)[0] == "invalid"


def test_unplanned_attributes_are_named_and_required_ones_are_invalid():
    schema = custom_attributes_schema({"sku": {"type": "string"}}, required=["sku"])
    status, problems = classify(event({"debug_info": "x", "price": 1}), plan_validator(schema))
    assert status == "unplanned_attributes"
    assert problems[:2] == [
        "unplanned attribute data.custom_attributes.debug_info",
        "unplanned attribute data.custom_attributes.price",
    ]
    assert "'sku' is a required property" in problems[2]
    allowing = custom_attributes_schema({"sku": {"type": "string"}}, additional=True)
    assert classify(event({"sku": "a", "other": 1}), plan_validator(allowing)) == ("ok", [])


def closed(properties: dict, **extra) -> dict:
    """An object schema as mParticle's plan editor writes it: no other properties allowed."""
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


PRODUCT = closed({"id": {"type": "string"}, "name": {"type": "string"}, "price": {}})


def commerce_schema(product_action: dict | None = None, impressions: dict | None = None) -> dict:
    data = {"custom_attributes": closed({"list_name": {"type": "string"}})}
    if product_action is not None:
        data["product_action"] = product_action
    if impressions is not None:
        data["product_impressions"] = impressions
    return {"type": "object", "properties": {"data": closed(data)}}


def commerce(**data) -> dict:
    return {"event_type": "commerce_event", "data": {"timestamp_unixtime_ms": NOW_MS, **data}}


def test_fields_other_than_custom_attributes_are_invalid_not_removed():
    view_detail = commerce_schema(
        closed(
            {
                "action": {"type": "string"},
                "products": {"type": "array", "items": PRODUCT},
            }
        )
    )
    viewed = commerce(
        custom_attributes={"list_name": "home"},
        product_action={
            "action": "view_detail",
            "transaction_id": "t-1",
            "products": [{"id": "p1", "name": "Mug", "brand": "Acme", "price": 4}],
        },
    )
    status, problems = classify(viewed, plan_validator(view_detail))
    assert status == "invalid"
    assert {
        f"data.product_action.products.0.brand: {NOT_IN_SCHEMA}",
        f"data.product_action.transaction_id: {NOT_IN_SCHEMA}",
    } <= set(problems)
    assert not [p for p in problems if p.startswith("unplanned")]

    remove = commerce_schema(closed({"products": {"type": "array", "items": PRODUCT}}))
    removed = commerce(product_action={"action": "remove_from_cart", "products": [{"id": "p1"}]})
    status, problems = classify(removed, plan_validator(remove))
    assert status == "invalid"
    assert f"data.product_action.action: {NOT_IN_SCHEMA}" in problems

    impression_products = closed({"id": {"type": "string"}, "custom_attributes": closed({})})
    impressions = commerce_schema(
        impressions={
            "type": "array",
            "items": closed(
                {
                    "product_impression_list": {"type": "string"},
                    "products": {"type": "array", "items": impression_products},
                }
            ),
        }
    )
    shown = commerce(
        product_impressions=[
            {
                "product_impression_list": "top",
                "products": [{"id": "p1", "custom_attributes": {"color": "red"}}],
            }
        ]
    )
    status, problems = classify(shown, plan_validator(impressions))
    assert status == "invalid"
    assert (
        f"data.product_impressions.0.products.0.custom_attributes.color: {NOT_IN_SCHEMA}"
        in problems
    )


def test_a_screen_name_is_not_an_unplanned_attribute_but_an_extra_custom_one_is():
    data = closed({"custom_attributes": closed({"section": {"type": "string"}})})
    schema = {"type": "object", "properties": {"data": data}}
    screen = {
        "event_type": "screen_view",
        "data": {"screen_name": "Home", "custom_attributes": {"section": "top"}},
    }
    status, problems = classify(screen, plan_validator(schema))
    assert status == "invalid" and problems[0].startswith("data.screen_name: not in the plan")
    screen["data"]["custom_attributes"]["debug"] = "1"
    status, problems = classify(screen, plan_validator(schema))
    assert status == "unplanned_attributes"
    assert problems[0] == "unplanned attribute data.custom_attributes.debug"
    assert problems[1].startswith("data.screen_name: not in the plan")


def test_unplanned_user_attributes_are_removed():
    schema = closed({"tier": {"type": "string"}})
    status, problems = classify(
        {"tier": "gold", "debug": 1}, plan_validator(schema), custom_attribute_paths=((),)
    )
    assert status == "unplanned_attributes" and problems == ["unplanned attribute debug"]


def test_match_keys_follow_mparticles_rules():
    assert match_key(
        {"type": "custom_event", "criteria": {"event_name": "A", "custom_event_type": "other"}}
    ) == event_key(
        {"event_type": "custom_event", "data": {"event_name": "A", "custom_event_type": "other"}}
    )
    assert event_key({"event_type": "screen_view", "data": {"screen_name": "Home"}}) == match_key(
        {"type": "screen_view", "criteria": {"screen_name": "Home"}}
    )
    purchase = {"event_type": "commerce_event", "data": {"product_action": {"action": "purchase"}}}
    assert event_key(purchase) == match_key(
        {"type": "product_action", "criteria": {"action": "purchase"}}
    )
    impressions = {"event_type": "commerce_event", "data": {"product_impressions": [{}]}}
    assert event_key(impressions) == match_key({"type": "product_impression", "criteria": {}})
    assert match_key({"type": "user_identities"}) is None


# --- plan files -----------------------------------------------------------------------


def test_reads_a_version_a_whole_plan_and_a_bare_document(tmp_path):
    version = orjson.loads(EXAMPLE_PLAN.read_bytes())
    plan = load_plan(EXAMPLE_PLAN)
    assert (plan.plan_id, plan.version) == ("shop_plan", 4)
    assert ("custom_event", "navigation", "promo_banner_click") in plan.points
    assert plan.user_attributes_schema["properties"]["loyalty_tier"]["enum"][0] == "bronze"

    older = copy.deepcopy(version)
    older["version"] = 3
    older["version_document"]["data_points"] = older["version_document"]["data_points"][:2]
    whole = {"data_plan_id": "shop_plan", "data_plan_versions": [older, version]}
    (tmp_path / "plan.json").write_bytes(orjson.dumps(whole))
    assert load_plan(tmp_path / "plan.json").version == 4  # the latest by default
    assert len(load_plan(tmp_path / "plan.json", 3).points) == 2
    with pytest.raises(PlanFileError, match="no version 7 in the plan \\(it has 3, 4\\)"):
        load_plan(tmp_path / "plan.json", 7)

    (tmp_path / "doc.json").write_bytes(orjson.dumps(version["version_document"]))
    assert len(load_plan(tmp_path / "doc.json").points) == len(plan.points)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"version": 1}', "no version_document.data_points"),
        (
            b'{"data_points": [{"match": {"type": "screen_view", "criteria": {"screen_name": "A"}},'
            b' "validator": {"type": "json_schema", "definition": {"type": "nope"}}}]}',
            "data point 0 \\(screen_view\\) has an invalid JSON schema",
        ),
    ],
)
def test_bad_plan_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    with pytest.raises(PlanFileError, match=message):
        load_plan(path)


# --- against a real replay set --------------------------------------------------------

T = NOW_MS - 86_400_000


def blocked_batch(batch_id: str, events: list[dict], **extra) -> dict:
    for index, item in enumerate(events):
        item["data"].update(event_id=f"{batch_id}{index}", timestamp_unixtime_ms=str(T + index))
    return {
        "batch_id": batch_id,
        "mpid": batch_id,
        "environment": "production",
        "events": events,
        "context": {
            "data_plan": {
                "plan_id": "gift_plan",
                "plan_version": 1,
                "block_metadata": {
                    "dto_version": 1,
                    "blocked_event_ids": [f"{batch_id}{i}" for i in range(len(events))],
                    "blocked_user_attributes": list(extra.get("user_attributes", {})),
                },
            }
        },
        **extra,
    }


def custom(name: str, kind: str, attributes: dict | None = None) -> dict:
    data = {"event_name": name, "custom_event_type": kind}
    if attributes is not None:
        data["custom_attributes"] = attributes
    return {"event_type": "custom_event", "data": data}


def screen(name: str, attributes: dict) -> dict:
    return {
        "event_type": "screen_view",
        "data": {"screen_name": name, "custom_attributes": attributes},
    }


BATCHES = [
    blocked_batch(
        "11",
        [
            custom("Gift Card Viewed", "navigation", {"sku": f"SKU-{i}", "price": "19.99"})
            for i in range(3)
        ]
        + [custom("Gift Card Viewed", "other", {"sku": "SKU-1"}) for _ in range(2)]
        + [custom("gift card bought", "transaction", {"sku": "SKU-1"})]
        + [
            custom("Gift Card Bought", "transaction", {"sku": "SKU-2", "debug_info": "x"})
            for _ in range(2)
        ]
        + [custom("Gift Card Bought", "transaction", {"price": "abc"})]
        + [screen("Gift Shop", {"referrer": "push"}), screen("Gift Shop", {"referrer": "tv"})]
        + [{"event_type": "session_start", "data": {}}],
        user_attributes={"tier": "gold"},
    ),
    blocked_batch(
        "12",
        [custom("Gift Card Viewed", "navigation", {"sku": "SKU-9", "price": 3})],
        user_attributes={"tier": "tin", "nickname": "x"},
    ),
]


def gift_plan() -> dict:
    product = {
        "sku": {"type": "string", "pattern": "^SKU-[0-9]+$"},
        "price": {"type": "number", "minimum": 0},
    }

    def custom_point(name, kind, required=()):
        return {
            "match": {
                "type": "custom_event",
                "criteria": {"event_name": name, "custom_event_type": kind},
            },
            "validator": {
                "type": "json_schema",
                "definition": custom_attributes_schema(product, required=required),
            },
        }

    return {
        "version": 2,
        "data_plan_id": "gift_plan",
        "version_document": {
            "data_points": [
                custom_point("Gift Card Viewed", "navigation"),
                custom_point("Gift Card Bought", "transaction", required=["sku"]),
                {
                    "match": {"type": "screen_view", "criteria": {"screen_name": "Gift Shop"}},
                    "validator": {
                        "type": "json_schema",
                        "definition": custom_attributes_schema(
                            {"referrer": {"type": "string", "enum": ["push", "email"]}}
                        ),
                    },
                },
                {
                    "match": {"type": "user_attributes", "criteria": {}},
                    "validator": {
                        "type": "json_schema",
                        "definition": {
                            "additionalProperties": False,
                            "properties": {"tier": {"type": "string", "enum": ["gold", "tin"]}},
                        },
                    },
                },
            ]
        },
    }


@pytest.fixture(scope="module")
def replay_set(tmp_path_factory) -> Path:
    """Blocked events of known shapes, ingested and built with blocked user attributes on."""
    tmp = tmp_path_factory.mktemp("plan")
    warehouse = tmp / "backfill.duckdb"
    write_file(tmp / "q/Gift_1.txt", BATCHES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKFILL_DUCKDB", str(warehouse))
        result = runner.invoke(app, ["ingest", str(tmp / "q")])
    assert result.exit_code == 0, result.output
    run_dbt(
        warehouse,
        "build",
        dbt_vars={
            **DEMO_FIXES,
            "replay_reference_time_ms": NOW_MS,
            "replay_blocked_user_attributes": True,
        },
    )
    return warehouse


def run_check(warehouse: Path, plan: Path, *args: str):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKFILL_DUCKDB", str(warehouse))
        return runner.invoke(app, ["plan-check", str(plan), *args])


def write_plan(tmp_path: Path, plan: dict) -> Path:
    path = tmp_path / "plan.json"
    path.write_bytes(orjson.dumps(plan))
    return path


def test_each_replay_event_gets_the_outcome_mparticle_would_give(replay_set, tmp_path):
    result = run_check(replay_set, write_plan(tmp_path, gift_plan()), "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    rows = {
        (r["event_type"], r["custom_event_type"], r["name"], r["status"]): (
            r["events"],
            r["problems"],
        )
        for r in report["rows"]
    }
    assert rows == {
        ("custom_event", "navigation", "Gift Card Viewed", "ok"): (4, {}),
        ("custom_event", "other", "Gift Card Viewed", "unplanned"): (
            2,
            {"planned with custom_event_type 'navigation', not 'other'": 2},
        ),
        ("custom_event", "transaction", "gift card bought", "unplanned"): (
            1,
            {"planned as 'Gift Card Bought' (letter case differs)": 1},
        ),
        ("custom_event", "transaction", "Gift Card Bought", "unplanned_attributes"): (
            2,
            {"unplanned attribute data.custom_attributes.debug_info": 2},
        ),
        ("custom_event", "transaction", "Gift Card Bought", "invalid"): (
            1,
            {
                "data.custom_attributes: 'sku' is a required property": 1,
                "data.custom_attributes.price: 'abc' is not of type 'number'": 1,
            },
        ),
        ("screen_view", None, "Gift Shop", "ok"): (1, {}),
        ("screen_view", None, "Gift Shop", "invalid"): (
            1,
            {"data.custom_attributes.referrer: 'tv' is not one of ['push', 'email']": 1},
        ),
        ("session_start", None, None, "not_plannable"): (1, {}),
        # user attributes, counted per replay event that carries them
        ("user_attributes", None, None, "ok"): (12, {}),
        ("user_attributes", None, None, "unplanned_attributes"): (
            1,
            {"unplanned attribute nickname": 1},
        ),
    }
    [(total,)] = query(replay_set, "select count(*) from replay_events")
    assert sum(report["events"].values()) == total == 13
    assert report["events"]["unplanned"] == 3
    assert report["notes"] == [
        "13 events name gift_plan v1 in their batch context, not gift_plan v2: mParticle "
        "validates them against the plan they name. To send them under gift_plan v2, build "
        "with --vars '{data_plan_policy: set, data_plan_override: {plan_id: gift_plan, "
        "plan_version: 2}}'."
    ]


def test_table_output_and_exit_code(replay_set, tmp_path):
    result = run_check(replay_set, write_plan(tmp_path, gift_plan()))
    assert result.exit_code == 1
    assert "gift card bought" in result.stdout and "unplanned" in result.stdout
    assert "Gift Card Viewed" in result.stdout  # the unplanned "other" one
    assert "3 unplanned (blocked again)" in result.stdout
    assert "would be blocked again" in result.stderr
    shown = run_check(replay_set, write_plan(tmp_path, gift_plan()), "--show-ok")
    assert shown.stdout.count("Gift Shop") == 2


def test_invalid_values_alone_do_not_block(replay_set, tmp_path):
    plan = gift_plan()
    points = plan["version_document"]["data_points"]
    for kind in ("other",):
        extra = copy.deepcopy(points[0])
        extra["match"]["criteria"]["custom_event_type"] = kind
        points.append(extra)
    lower = copy.deepcopy(points[1])
    lower["match"]["criteria"]["event_name"] = "gift card bought"
    points.append(lower)
    attributes = points[1]["validator"]["definition"]["properties"]["data"]["properties"]
    attributes["custom_attributes"]["additionalProperties"] = True
    points[3]["validator"]["definition"]["additionalProperties"] = True

    result = run_check(replay_set, write_plan(tmp_path, plan), "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["would_block"] is False
    assert report["events"]["invalid"] == 2 and report["events"]["ok"] == 10


def test_example_plan_file_is_a_plan_version_export():
    plan = load_plan(EXAMPLE_PLAN)
    assert (plan.plan_id, plan.version) == ("shop_plan", 4)
    assert ("custom_event", "navigation", "promo_banner_click") in plan.points
    assert ("screen_view", "Home") in plan.points
    assert plan.user_attributes_schema["properties"]["loyalty_tier"]["type"] == "string"


def test_missing_warehouse_and_missing_plan_give_one_clear_message(tmp_path):
    result = run_check(tmp_path / "nope.duckdb", EXAMPLE_PLAN)
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    result = run_check(tmp_path / "nope.duckdb", tmp_path / "missing.json")
    assert result.exit_code == 2
    assert "missing.json: no such file" in result.stderr
