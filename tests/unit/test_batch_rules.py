import csv
from pathlib import Path

import orjson
import pytest

from loader.events_api import batch_rules
from loader.events_api.batch_rules import (
    MAX_BATCH_BYTES,
    MAX_REQUEST_BYTES,
    check_request,
    validate_batch,
)

ROOT = Path(__file__).resolve().parents[2]
BIG = 2**53 + 7  # not representable as a float


def replay_batch(**overrides) -> dict:
    """A batch as a replay sends it: no batch_id, integer timestamps, no block metadata."""
    batch = {
        "source_request_id": "replay-1",
        "environment": "development",
        "mpid": 2**62 + 3,
        "user_identities": {
            "customer_id": "1234",
            "other_id_10": "x",
            "mobile_number": "800-555-1111",
            "phone_number_2": "800-555-2222",
            "phone_number_3": "800-555-3333",
        },
        "device_info": {"ios_advertising_id": "613ff528-afd1-4c1b-9628-e6ed25ece9c0"},
        "application_info": {"os": "OutOfBand"},
        "user_attributes": {"$age": "40", "tags": ["a", "b"]},
        "deleted_user_attributes": [],
        "partner_identities": {},
        "context": {"data_plan": {"plan_id": "main_block", "plan_version": 2}},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "checkout",
                    "custom_event_type": "transaction",
                    "custom_flags": {},
                    "timestamp_unixtime_ms": BIG,
                    "custom_attributes": {"amount": 12.5, "sku": "A1"},
                },
            },
            {
                "event_type": "screen_view",
                "data": {"screen_name": "Home", "timestamp_unixtime_ms": 1599790566900},
            },
            {"event_type": "session_start", "data": {"timestamp_unixtime_ms": 1599790566900}},
        ],
    }
    batch.update(overrides)
    return batch


def with_event_data(**data) -> dict:
    batch = replay_batch()
    batch["events"][0]["data"].update(data)
    for name in [key for key, value in data.items() if value is ...]:
        del batch["events"][0]["data"][name]
    return batch


def test_a_replay_batch_is_valid():
    assert validate_batch(replay_batch()) == []
    assert validate_batch(replay_batch(), 3) == []


def test_event_types_match_the_seed():
    with open(ROOT / "seeds/events_api_event_types.csv", newline="") as f:
        seeded = {row["event_type"] for row in csv.DictReader(f)}
    assert seeded == batch_rules.EVENT_TYPES


def test_string_timestamp_names_batch_event_and_field():
    batch = replay_batch()
    batch["events"][1]["data"]["timestamp_unixtime_ms"] = "1599790566900"
    assert validate_batch(batch, 3) == [
        "batch 3, event 1: data.timestamp_unixtime_ms must be an integer "
        '(got string "1599790566900")'
    ]


@pytest.mark.parametrize(
    ("value", "got"),
    [(1599790566900.0, "float 1599790566900.0"), (True, "boolean true"), ("", 'string ""')],
)
def test_timestamp_must_be_a_json_integer(value, got):
    assert validate_batch(with_event_data(timestamp_unixtime_ms=value), 0) == [
        f"batch 0, event 0: data.timestamp_unixtime_ms must be an integer (got {got})"
    ]


def test_timestamp_is_required():
    assert validate_batch(with_event_data(timestamp_unixtime_ms=...), 1) == [
        "batch 1, event 0: data.timestamp_unixtime_ms is required (a replay keeps the event's time)"
    ]


def test_float_parsed_from_a_huge_integer_is_refused():
    batch = orjson.loads(
        orjson.dumps(replay_batch()).replace(str(BIG).encode(), b"18446744073709551616")
    )
    [message] = validate_batch(batch, 0)
    assert message.startswith("batch 0, event 0: data.timestamp_unixtime_ms must be an integer")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("batch_id", "batch 2: batch_id must not be sent in a replay"),
        ("timestamp_unixtime_ms", "batch 2: timestamp_unixtime_ms must not be sent in a replay"),
        ("source_info", "batch 2: source_info must not be sent in a replay"),
    ],
)
def test_replay_forbidden_batch_fields(field, message):
    value = {"channel": "partner"} if field == "source_info" else "1599790566900"
    [problem] = validate_batch(replay_batch(**{field: value}), 2)
    assert problem.startswith(message)


@pytest.mark.parametrize(
    "context",
    [
        {"data_plan": {"plan_id": "p", "block_metadata": {"dto_version": 1}}},
        {"block_metadata": {"dto_version": 1}},
    ],
)
def test_block_metadata_anywhere_in_context_is_refused(context):
    [problem] = validate_batch(replay_batch(context=context), 0)
    path = (
        "context.data_plan.block_metadata" if "data_plan" in context else "context.block_metadata"
    )
    assert (
        problem == f"batch 0: {path} must not be sent in a replay (it describes the original block)"
    )


def test_event_id_is_refused():
    assert validate_batch(with_event_data(event_id="-7778608565459706417"), 0) == [
        "batch 0, event 0: data.event_id must not be sent (it is assigned by mParticle)"
    ]


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (..., "batch 0: environment is required (production or development)"),
        (
            "staging",
            'batch 0: environment must be production or development (got string "staging")',
        ),
    ],
)
def test_environment(environment, message):
    batch = replay_batch(environment=environment)
    if environment is ...:
        del batch["environment"]
    assert validate_batch(batch, 0) == [message]


def test_events_must_be_a_list():
    assert validate_batch(replay_batch(events={"a": 1}), 0) == [
        "batch 0: events must be an array (got object)"
    ]


def test_event_type_missing_and_invalid():
    batch = replay_batch()
    del batch["events"][2]["event_type"]
    batch["events"][1]["event_type"] = "page_view"
    assert validate_batch(batch, 0) == [
        'batch 0, event 1: event_type string "page_view" is not a valid event type',
        "batch 0, event 2: event_type is required",
    ]


def test_event_data_must_be_an_object():
    batch = replay_batch()
    batch["events"][2]["data"] = "x"
    assert validate_batch(batch, 0) == ['batch 0, event 2: data must be an object (got string "x")']


def test_custom_event_needs_name_and_valid_custom_event_type():
    problems = validate_batch(with_event_data(event_name=..., custom_event_type="clicky"), 0)
    assert (
        problems[0] == "batch 0, event 0: data.event_name is required for a custom_event (got null)"
    )
    assert problems[1].startswith("batch 0, event 0: data.custom_event_type must be one of ")
    assert problems[1].endswith('(got string "clicky")')
    assert len(problems) == 2


def test_screen_view_needs_screen_name():
    batch = replay_batch()
    del batch["events"][1]["data"]["screen_name"]
    assert validate_batch(batch, 0) == [
        "batch 0, event 1: data.screen_name is required for a screen_view (got null)"
    ]


def test_commerce_custom_event_type():
    event = {"event_type": "commerce_event", "data": {"timestamp_unixtime_ms": 1}}
    ok = replay_batch(
        events=[{**event, "data": {**event["data"], "custom_event_type": "purchase"}}]
    )
    assert validate_batch(ok) == []
    bad = replay_batch(events=[{**event, "data": {**event["data"], "custom_event_type": "buy"}}])
    assert validate_batch(bad) == [
        'event 0: data.custom_event_type string "buy" is not valid for a commerce_event'
    ]


def test_unknown_fields_are_refused():
    batch = replay_batch(color="red")
    batch["events"][0]["extra"] = 1
    assert validate_batch(batch, 0) == [
        'batch 0: unknown batch field "color"',
        'batch 0, event 0: unknown event field "extra"',
    ]


def test_user_identities_known_keys_with_string_values():
    batch = replay_batch(user_identities={"customer_id": 1234, "other_id_11": "x"})
    assert validate_batch(batch, 0) == [
        "batch 0: user_identities.customer_id must be a string (got integer 1234)",
        "batch 0: user_identities.other_id_11 is not a known identity type",
    ]


def test_one_user_per_batch():
    listed = [{"identity_type": "customer_id", "identity": "1"}] * 2
    [problem] = validate_batch(replay_batch(user_identities=listed), 0)
    assert problem.startswith("batch 0: user_identities must be an object")
    assert validate_batch(replay_batch(mpid=[1, 2]), 0) == [
        "batch 0: mpid must be one 64-bit integer (one user per batch; got array of 2)"
    ]
    assert validate_batch(replay_batch(mpid=str(2**63)), 0)
    assert validate_batch(replay_batch(mpid="-9223372036854775808"), 0) == []


def test_event_name_length():
    assert validate_batch(with_event_data(event_name="n" * 256)) == []
    assert validate_batch(with_event_data(event_name="n" * 257), 4) == [
        "batch 4, event 0: data.event_name is 257 characters; the limit is 256"
    ]


def test_event_attribute_count_and_value_length():
    attributes = {f"a{i}": "v" for i in range(101)}
    assert validate_batch(with_event_data(custom_attributes=attributes), 0) == [
        "batch 0, event 0: data.custom_attributes has 101 attributes; the limit is 100"
    ]
    long_value = with_event_data(custom_attributes={"note": "v" * 4097})
    assert validate_batch(long_value, 0) == [
        "batch 0, event 0: data.custom_attributes.note value is 4097 characters; the limit is 4096"
    ]
    assert validate_batch(with_event_data(custom_attributes={"note": "v" * 4096})) == []


def test_user_attribute_count_and_values():
    many = {f"u{i}": "v" for i in range(101)}
    assert validate_batch(replay_batch(user_attributes=many), 0) == [
        "batch 0: user_attributes has 101 attributes; the limit is 100"
    ]
    nested = replay_batch(user_attributes={"profile": {"a": 1}})
    assert validate_batch(nested, 0) == [
        "batch 0: user_attributes.profile must be a string, number, boolean or null (got object)"
    ]


def test_batch_size_limit_is_compact_json_bytes():
    batch = replay_batch()
    base = len(orjson.dumps(batch))
    attributes = {f"a{i}": "x" * 4000 for i in range(40)}
    batch["events"][0]["data"]["custom_attributes"] = attributes
    size = len(orjson.dumps(batch))
    assert size > MAX_BATCH_BYTES > base
    assert validate_batch(batch, 7) == [
        f"batch 7: batch is {size} bytes as compact JSON; the limit is 131072 bytes (128 KB)"
    ]


def test_request_over_256_kb_is_413():
    body = orjson.dumps([replay_batch(user_attributes={"pad": "x" * 4000})] * 70)
    assert len(body) > MAX_REQUEST_BYTES
    result = check_request(body, bulk=True)
    assert result.status == 413
    assert result.errors == [
        f"request body is {len(body)} bytes; the limit is 262144 bytes (256 KB)"
    ]


def test_request_over_100_batches_is_400():
    small = {"environment": "production"}
    assert check_request(orjson.dumps([small] * 100), bulk=True).ok
    result = check_request(orjson.dumps([small] * 101), bulk=True)
    assert (result.status, result.errors) == (
        400,
        ["request holds 101 batches; the limit is 100 a request"],
    )


def test_request_shapes():
    batch = orjson.dumps(replay_batch())
    assert check_request(batch, bulk=False).batches[0]["mpid"] == 2**62 + 3
    assert (
        check_request(b"[" + batch + b"]", bulk=False)
        .errors[0]
        .startswith("/events takes one batch")
    )
    assert (
        check_request(batch, bulk=True).errors[0].startswith("a bulk request must be a JSON array")
    )
    assert (
        check_request(b"{not json", bulk=True)
        .errors[0]
        .startswith("request body is not valid JSON")
    )


def test_one_error_per_bad_batch_and_nothing_accepted():
    bad = replay_batch(batch_id="1", environment="qa")
    result = check_request(orjson.dumps([replay_batch(), bad, replay_batch(), bad]), bulk=True)
    assert result.status == 400
    assert result.batches == []
    assert result.n_batches == 4
    assert len(result.errors) == 2
    assert result.errors[0].startswith("batch 1: batch_id must not be sent")
    assert (
        '; batch 1: environment must be production or development (got string "qa")'
        in (result.errors[0])
    )
    assert result.errors[1].startswith("batch 3: ")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source_request_id": ""}, 'source_request_id must be a non-empty string (got string "")'),
        ({"source_request_id": 7}, "source_request_id must be a non-empty string (got integer 7)"),
        ({"context": []}, "context must be an object (got array of 0)"),
        ({"context": {"data_plan": {}}}, "context.data_plan.plan_id is required (got null)"),
        (
            {"context": {"data_plan": {"plan_id": "p", "plan_version": "2"}}},
            'context.data_plan.plan_version must be an integer (got string "2")',
        ),
        ({"ip": ""}, 'ip must be a non-empty string when sent (got string "")'),
        ({"device_info": "iPhone"}, 'device_info must be an object (got string "iPhone")'),
        ({"deleted_user_attributes": [1]}, "deleted_user_attributes must be an array of strings"),
    ],
)
def test_batch_field_types(overrides, message):
    assert validate_batch(replay_batch(**overrides), 5) == [f"batch 5: {message}"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"timestamp_unixtime_ms": -1}, "data.timestamp_unixtime_ms is out of range (got -1)"),
        ({"custom_flags": ["x"]}, "data.custom_flags must be an object (got array of 1)"),
        (
            {"custom_attributes": "a=1"},
            'data.custom_attributes must be an object (got string "a=1")',
        ),
        (
            {"custom_attributes": {"a": {"b": 1}}},
            "data.custom_attributes.a must be a string, number, boolean or null (got object)",
        ),
        ({"event_name": 5}, "data.event_name is required for a custom_event (got integer 5)"),
    ],
)
def test_event_field_types(data, message):
    problems = validate_batch(with_event_data(**data), 5)
    assert problems[0] == f"batch 5, event 0: {message}"


def test_batch_and_event_must_be_objects():
    assert validate_batch([1], 2) == ["batch 2: a batch must be a JSON object (got array of 1)"]
    assert validate_batch(replay_batch(events=[None])) == [
        "event 0: an event must be a JSON object (got null)"
    ]


def test_validate_serialised_batch_uses_its_length():
    from loader.events_api.batch_rules import validate_batch_json

    data = orjson.dumps(replay_batch())
    assert validate_batch_json(data, 1) == []
    assert validate_batch_json(data + b" " * MAX_BATCH_BYTES, 1) == [
        f"batch 1: batch is {len(data) + MAX_BATCH_BYTES} bytes as compact JSON; "
        "the limit is 131072 bytes (128 KB)"
    ]
    assert validate_batch_json(b"{", 1)[0].startswith("batch 1: batch is not valid JSON")
