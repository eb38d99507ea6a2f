"""Packing replay events into batches and requests: limits, grouping, exact bytes, ids."""

from __future__ import annotations

import random
import uuid

import duckdb
import orjson
import pyarrow as pa
import pytest

from loader.events_api.batch_rules import validate_batch
from loader.push.destinations.events_api import LIMITS, assemble, pack_group, request_body
from loader.push.packing import Group, PackedBatch, batch_id, group_requests
from loader.push.packing import pack_and_validate as pack_and_validate_with
from loader.push.replay_reader import iter_groups


def pack_and_validate(group, validate, max_batch_bytes):
    """The shared checks wrapped around the Events API's packing."""
    return pack_and_validate_with(group, pack_group, validate, max_batch_bytes)


MAX_BATCH_BYTES = LIMITS.max_batch_bytes
MAX_REQUEST_BYTES = LIMITS.max_request_bytes
MAX_BATCHES_PER_REQUEST = LIMITS.max_batches_per_request
BIG = 2**63 - 1
CONTEXT = (
    '{"environment":"production","mpid":-9223372036854775807,'
    '"user_identities":{"customer_id":"C1","email":"\u00e9l\u00e8ve@example.com"},'
    '"context":{"data_plan":{"plan_id":"shop","plan_version":3}},"deleted_user_attributes":[]}'
)


def event(n: int, pad: int = 0, *, name: str = "Checkout Complete") -> str:
    """A custom event's JSON text, with number spellings a re-serialiser would change."""
    ts, big, padding = 1_700_000_000_000 + n, BIG - n, "x" * pad
    return (
        f'{{"event_type":"custom_event","data":{{"event_name":"{name}",'
        f'"custom_event_type":"other","timestamp_unixtime_ms":{ts},"custom_attributes":'
        f'{{"price":1.50,"big":{big},"e":1e2,"pad":"{padding}","text":"caf\u00e9 \\u00e9"}}}}}}'
    )


def group(events: list[str], *, user: str = "mpid:1", context: str = CONTEXT, tag: str = "k"):
    return Group.from_texts(
        user,
        f"ctx-{user}",
        context,
        [f"{tag}:{i}" for i in range(len(events))],
        events,
        [f"h{i}" for i in range(len(events))],
    )


def test_a_batch_holds_the_context_members_an_id_and_the_events_byte_for_byte():
    events = [event(i) for i in range(3)]
    [batch] = pack_group(group(events), MAX_BATCH_BYTES)
    body = batch.body.decode()
    assert body.startswith('{"source_request_id":"' + batch.source_request_id + '",')
    assert CONTEXT[1:-1] in body
    assert body.endswith(',"events":[' + ",".join(events) + "]}")
    parsed = orjson.loads(batch.body)
    assert parsed["events"] == [orjson.loads(e) for e in events]
    assert parsed["mpid"] == -9223372036854775807  # exact, never through a float
    assert parsed["events"][0]["data"]["custom_attributes"]["big"] == BIG
    assert {k: v for k, v in parsed.items() if k not in ("events", "source_request_id")} == (
        orjson.loads(CONTEXT)
    )
    assert uuid.UUID(batch.source_request_id).version == 5
    assert batch.replay_keys == ["k:0", "k:1", "k:2"]
    assert batch.content_hashes == ["h0", "h1", "h2"]


def test_an_empty_context_gives_a_valid_batch():
    [batch] = pack_group(group([event(1)], context="{}"), MAX_BATCH_BYTES)
    parsed = orjson.loads(batch.body)
    assert set(parsed) == {"source_request_id", "events"}


def test_batches_are_dense_and_never_over_the_limit():
    events = [event(i, pad=10_000) for i in range(40)]  # ~10 KB each
    batches = list(pack_group(group(events), MAX_BATCH_BYTES))
    assert all(len(b.body) <= MAX_BATCH_BYTES for b in batches)
    assert [k for b in batches for k in b.replay_keys] == [f"k:{i}" for i in range(40)]
    # dense: each batch but the last could not take the next event
    for b, following in zip(batches, batches[1:], strict=False):
        first_next = int(following.replay_keys[0].split(":")[1])
        assert len(b.body) + 1 + len(events[first_next].encode()) > MAX_BATCH_BYTES
    assert len(batches) == -(-40 // len(batches[0].replay_keys))


@pytest.mark.parametrize("seed", range(5))
def test_random_sizes_never_exceed_batch_and_request_limits(seed):
    rng = random.Random(seed)
    batches = []
    for u in range(30):
        sizes = [rng.choice([0, 50, 2_000, 40_000, 127_000]) for _ in range(rng.randint(1, 12))]
        batches += pack_group(
            group([event(i, pad=p) for i, p in enumerate(sizes)], user=str(u)), MAX_BATCH_BYTES
        )
    sendable = [b for b in batches if b.error is None]
    assert all(len(b.body) <= MAX_BATCH_BYTES for b in sendable)
    requests = list(group_requests(sendable, LIMITS))
    assert [b for r in requests for b in r] == sendable  # every batch once, in order
    for r in requests:
        assert len(r) <= MAX_BATCHES_PER_REQUEST
        assert len(request_body(b.body for b in r)) <= MAX_REQUEST_BYTES
        assert orjson.loads(request_body(b.body for b in r))  # valid JSON array


def test_requests_stop_at_100_batches():
    batches = [
        b for u in range(250) for b in pack_group(group([event(u)], user=str(u)), MAX_BATCH_BYTES)
    ]
    sizes = [len(r) for r in group_requests(batches, LIMITS)]
    assert sizes == [100, 100, 50]


def test_an_event_too_big_even_alone_is_not_sent_and_says_why():
    events = [event(0), event(1, pad=MAX_BATCH_BYTES), event(2)]
    batches = list(pack_group(group(events), MAX_BATCH_BYTES))
    errors = [b for b in batches if b.error]
    assert [b.replay_keys for b in errors] == [["k:1"]]
    assert "over the 131072-byte (128 KB) batch limit" in errors[0].error
    sent = [k for b in batches if not b.error for k in b.replay_keys]
    assert sent == ["k:0", "k:2"]
    sendable = [b for b in batches if not b.error]
    assert [len(r) for r in group_requests(sendable, LIMITS)] == [2]


def test_a_context_holding_a_reserved_member_is_refused_per_event():
    context = '{"environment":"production","events":[]}'
    batches = list(pack_group(group([event(0), event(1)], context=context), MAX_BATCH_BYTES))
    assert len(batches) == 2
    assert all("must not hold events" in b.error for b in batches)
    # a nested member of that name is fine
    nested = '{"environment":"production","user_attributes":{"events":"3"}}'
    [ok] = pack_group(group([event(0)], context=nested), MAX_BATCH_BYTES)
    assert ok.error is None


def test_ids_are_deterministic_and_change_with_content_or_composition():
    events = [event(i) for i in range(3)]
    first = [b.source_request_id for b in pack_group(group(events), MAX_BATCH_BYTES)]
    assert first == [b.source_request_id for b in pack_group(group(list(events)), MAX_BATCH_BYTES)]
    changed = events[:2] + [event(2).replace("Checkout", "Check out")]
    assert [b.source_request_id for b in pack_group(group(changed), MAX_BATCH_BYTES)] != first
    fewer = [b.source_request_id for b in pack_group(group(events[:2]), MAX_BATCH_BYTES)]
    assert fewer != first
    other_context = CONTEXT.replace('"C1"', '"C2"')
    assert [
        b.source_request_id
        for b in pack_group(group(events, context=other_context), MAX_BATCH_BYTES)
    ] != (first)
    # identical event texts under other replay keys are another batch
    assert [
        b.source_request_id for b in pack_group(group(events, tag="other"), MAX_BATCH_BYTES)
    ] != first
    assert (
        batch_id(b"a", b"k\n", b"e") == batch_id(b"a", b"k\n", b"e") != batch_id(b"a", b"k\n", b"f")
    )


def test_assemble_rebuilds_a_batch_under_its_recorded_id():
    events = [event(i) for i in range(3)]
    [packed] = pack_group(group(events), MAX_BATCH_BYTES)
    rebuilt = assemble(group(events), packed.source_request_id)
    assert rebuilt.body == packed.body


def test_a_bad_event_is_isolated_and_the_others_are_still_sent():
    events = [event(0), event(1, name=""), event(2), event(3)]
    batches = list(pack_and_validate(group(events), validate_batch, MAX_BATCH_BYTES))
    bad = [b for b in batches if b.error]
    assert [b.replay_keys for b in bad] == [["k:1"]]
    assert "event_name is required" in bad[0].error
    good = [b for b in batches if not b.error]
    assert [k for b in good for k in b.replay_keys] == ["k:0", "k:2", "k:3"]
    assert len(good) == 1  # repacked together
    assert all(validate_batch(orjson.loads(b.body)) == [] for b in good)


def test_a_batch_level_problem_rejects_each_event_with_the_message():
    context = '{"environment":"staging"}'
    batches = list(
        pack_and_validate(
            group([event(0), event(1)], context=context), validate_batch, MAX_BATCH_BYTES
        )
    )
    assert len(batches) == 2
    assert all("environment must be production or development" in b.error for b in batches)


def test_groups_are_rebuilt_across_record_batches_and_never_mixed(tmp_path):
    """The reader's contract: a group's first row carries user, context and batch_context."""
    rows = []
    for u in range(7):
        for c in range(2):
            context = f'{{"environment":"production","mpid":{u},"app":"{c}"}}'
            for i in range(5 + u):
                head = i == 0 or (u == 3 and i == 1)  # a tie on the first timestamp
                rows.append(
                    {
                        "group_no": u * 2 + c,
                        "user_key": f"mpid:{u}" if head else None,
                        "context_key": f"c{u}{c}" if head else None,
                        "batch_context": context if head else None,
                        "key_line": f"{u}:{c}:{i}\n",
                        "event_text": event(u * 100 + c * 10 + i) + ",",
                        "content_hash": f"h{u}{c}{i}",
                    }
                )
    table = pa.Table.from_pylist(rows)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=4))
    groups = list(iter_groups(reader))
    assert len(groups) == 14
    for g in groups:
        u, c = g.context_key[1], g.context_key[2]
        assert g.user_key == f"mpid:{u}"
        keys = g.replay_keys()
        assert keys == [f"{u}:{c}:{i}" for i in range(5 + int(u))]
        expected = {r["key_line"][:-1]: r for r in rows}
        assert g.event_texts() == [expected[k]["event_text"][:-1] for k in keys]
        assert g.content_hashes == [expected[k]["content_hash"] for k in keys]
        [batch] = pack_group(g, MAX_BATCH_BYTES)
        assert orjson.loads(batch.body)["mpid"] == int(u)
        assert batch.replay_keys == keys
    assert sum(len(g) for g in groups) == len(rows)


def test_sizes_are_utf8_bytes(tmp_path):
    """Sizes come from DuckDB/Arrow as bytes: a multi-byte text is measured in bytes."""
    con = duckdb.connect()
    text = '{"event_type":"custom_event","data":{"event_name":"\u00e9\u00e9"}}'
    table = con.sql(
        "select 1::bigint as group_no, 'mpid:1' as user_key, 'c' as context_key, "
        "'{}' as batch_context, 'k' || chr(10) as key_line, ?::varchar || ',' as event_text, "
        "null::varchar as content_hash",
        params=[text],
    ).to_arrow_table()
    [g] = iter_groups(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
    assert g.size(0) == len(text.encode()) > len(text)
    assert g.event_texts() == [text]


def test_validation_wraps_any_destinations_packing():
    """The shared checks split and re-pack with the packing they are given, not the Events
    API's: here a framing of one array per batch, whose check refuses event 1."""

    def pack_arrays(group: Group, max_batch_bytes: int):
        texts, keys = group.event_texts(), group.keys
        body = ("[" + ",".join(texts) + "]").encode()
        yield PackedBatch("id", group.user_key, group.context_key, len(texts), keys, None, body)

    def refuse_event_1(batch, size):
        return (
            ["event 1 refused"]
            if any(e["data"]["timestamp_unixtime_ms"] % 10 == 1 for e in batch)
            else []
        )

    batches = list(
        pack_and_validate_with(
            group([event(0), event(1), event(2)]), pack_arrays, refuse_event_1, 10**6
        )
    )
    assert [(b.event_count, b.error) for b in batches] == [(1, "event 1 refused"), (2, None)]
    assert all(b.body.startswith(b"[") for b in batches)
