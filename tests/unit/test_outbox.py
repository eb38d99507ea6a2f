"""The outbox file: requests written while planning read back exactly, in order."""

from __future__ import annotations

import pytest

from loader.push.outbox import Outbox
from loader.push.packing import PackedBatch
from loader.push.transport import Outgoing


def packed(n: int, events: int, body: bytes) -> PackedBatch:
    sid = f"00000000-0000-5000-8000-{n:012d}"
    return PackedBatch(sid, f"u{n}", "c", events, b"k\n" * events, None, body)


def test_requests_come_back_byte_identical_and_in_order(tmp_path):
    requests = [
        [packed(1, 1, b'{"events":[1]}'), packed(2, 3, '{"x":"caf\u00e9"}'.encode())],
        [packed(3, 2, b"")],
        [packed(n, n, bytes(range(256)) * n) for n in range(4, 104)],  # 100 batches
    ]
    outbox = Outbox(tmp_path / "outbox")
    for request in requests:
        outbox.add(request)

    assert list(outbox.read()) == [
        [Outgoing(b.source_request_id, b.event_count, b.body) for b in request]
        for request in requests
    ]
    # read again: the same
    assert [len(r) for r in outbox.read()] == [2, 1, 100]


def test_an_empty_outbox_reads_nothing(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    assert list(outbox.read()) == []
    assert (tmp_path / "outbox").read_bytes() == b""


def test_a_closed_outbox_refuses_more_requests_and_remove_deletes_the_file(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    outbox.add([packed(1, 1, b"{}")])
    outbox.close()
    with pytest.raises(ValueError, match="the outbox is closed"):
        outbox.add([packed(2, 1, b"{}")])
    assert [[b.source_request_id for b in r] for r in outbox.read()] == [
        ["00000000-0000-5000-8000-000000000001"]
    ]
    outbox.remove()
    assert not (tmp_path / "outbox").exists()
