"""Packing mechanics shared by every destination (pure functions).

Input: the replay set's events of one user and one batch-level context (a `Group`), in
send order. A destination's packing (`Pack`: a group into `PackedBatch`es whose `body` is
the exact batch to send, in its own framing) cuts the batches; `pack_and_validate` wraps
it with the destination's local checks, and `group_requests` puts batches into requests
under the destination's `PackingLimits`. Batch ids are deterministic (`batch_id`).

An event too big for a batch even alone is not sent: it comes out as a batch with an
`error`.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import orjson

# Namespace of the batch ids (UUID version 5: SHA-1 of this namespace and the batch's content).
ID_NAMESPACE = bytes.fromhex("3f0c8a52e1d94b7a9c6e2b51d7a04f18")
ID_LENGTH = 36

Validator = Callable[..., list[str]]


@dataclass(frozen=True)
class PackingLimits:
    """How big a batch and a request may be (compact JSON bytes), and batches per request."""

    max_batch_bytes: int
    max_request_bytes: int
    max_batches_per_request: int


@dataclass(slots=True)
class Group:
    """Events of one user and one batch-level context, in send order.

    Texts stay joined, as the reader gets them from Arrow buffers (no object per event):
    `events` is every event_json text followed by a comma, `keys` every replay key
    followed by a newline. `offsets[k]` is where event k starts in `events` once shifted
    by `offsets[0]`; it has one entry more than there are events (the last is where the
    text ends). `key_offsets` likewise for `keys`.
    """

    user_key: str
    context_key: str
    batch_context: str  # JSON object text: the batch's members without "events"
    events: bytes
    offsets: list[int]
    keys: bytes
    key_offsets: list[int]
    content_hashes: list[str] | None = None  # one per event, for the ledger

    @classmethod
    def from_texts(
        cls,
        user_key: str,
        context_key: str,
        batch_context: str,
        replay_keys: list[str],
        events: list[str],
        content_hashes: list[str] | None = None,
    ) -> Group:
        encoded = [(e + ",").encode() for e in events]
        keys = [(k + "\n").encode() for k in replay_keys]
        if any("\n" in k for k in replay_keys):
            raise ValueError("a replay key must not contain a newline")
        return cls(
            user_key,
            context_key,
            batch_context,
            b"".join(encoded),
            [0, *itertools.accumulate(len(e) for e in encoded)],
            b"".join(keys),
            [0, *itertools.accumulate(len(k) for k in keys)],
            content_hashes,
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def size(self, k: int) -> int:
        """UTF-8 bytes of event k's text."""
        return self.offsets[k + 1] - self.offsets[k] - 1

    def event_texts(self) -> list[str]:
        base = self.offsets[0]
        return [
            self.events[a - base : b - base - 1].decode()
            for a, b in zip(self.offsets, self.offsets[1:], strict=False)
        ]

    def replay_keys(self) -> list[str]:
        return self.keys.decode().split("\n")[:-1]


@dataclass(slots=True)
class PackedBatch:
    """One replay batch: the exact body to send, or an `error` saying why it is not sent."""

    source_request_id: str
    user_key: str
    context_key: str
    event_count: int
    keys: bytes  # its replay keys, each followed by a newline
    content_hashes: list[str] | None
    body: bytes
    error: str | None = None
    batch_no: int | None = None  # its number in the ledger (`Ledger.number`), once given

    @property
    def replay_keys(self) -> list[str]:
        return self.keys.decode().split("\n")[:-1]


# A destination's packing: a group into batches of at most so many bytes, in its framing.
Pack = Callable[[Group, int], Iterator[PackedBatch]]


def uuid5_text(digest: bytes) -> str:
    """The canonical text of a version-5 UUID from a SHA-1 `digest` (as `uuid.uuid5` does)."""
    h = digest[:16].hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def batch_id(context: bytes, keys: bytes, events: bytes | memoryview) -> str:
    """Deterministic `source_request_id`: the same keys and content give the same id.

    `keys` are the batch's replay keys, each followed by a newline; `events` its event
    texts joined by commas. Any change of the context, of an event's bytes, or of which
    events share the batch gives another id, so mParticle de-duplicates resends but not
    corrections.
    """
    name = b"".join((ID_NAMESPACE, b"\x00", context, b"\x00", keys, b"\x00", events))
    return uuid5_text(hashlib.sha1(name).digest())


@dataclass(frozen=True)
class OneEventPacking:
    """The packing of a destination whose batches hold one event each, the body being the
    event's JSON as stored (an API that takes events, not mParticle batches)."""

    context: bytes  # the batch ids' context: the destination's name
    key_prefix: bytes  # before each replay key in its batch id, as the ledger first recorded
    max_batch_bytes: int  # the event limit an earlier run's batch is assembled under
    too_big: Callable[[int, int], str]  # (event bytes, limit) -> why it is not sent

    def pack(self, group: Group, max_batch_bytes: int) -> Iterator[PackedBatch]:
        """Each event of `group` as its own batch (a `Pack`)."""
        hashes = group.content_hashes
        for k, (text, key) in enumerate(zip(group.event_texts(), group.replay_keys(), strict=True)):
            yield self._one(
                group, key, text, hashes[k] if hashes is not None else None, max_batch_bytes
            )

    def assemble(self, group: Group, source_request_id: str) -> PackedBatch:
        """An earlier run's batch (one event) again, under its id."""
        [text], [key] = group.event_texts(), group.replay_keys()
        hashes = group.content_hashes
        batch = self._one(group, key, text, hashes[0] if hashes else None, self.max_batch_bytes)
        batch.source_request_id = source_request_id
        return batch

    def _one(
        self, group: Group, key: str, text: str, content_hash: str | None, limit: int
    ) -> PackedBatch:
        body = text.encode()
        keys = (key + "\n").encode()
        return PackedBatch(
            batch_id(self.context, self.key_prefix + keys, body),
            group.user_key,
            group.context_key,
            1,
            keys,
            [content_hash] if content_hash is not None else None,
            body,
            self.too_big(len(body), limit) if len(body) > limit else None,
        )


def _subgroup(group: Group, indexes: list[int]) -> Group:
    texts, keys, hashes = group.event_texts(), group.replay_keys(), group.content_hashes
    return Group.from_texts(
        group.user_key,
        group.context_key,
        group.batch_context,
        [keys[k] for k in indexes],
        [texts[k] for k in indexes],
        [hashes[k] for k in indexes] if hashes is not None else None,
    )


def pack_and_validate(
    group: Group, pack: Pack, validate: Validator | None, max_batch_bytes: int
) -> Iterator[PackedBatch]:
    """The destination's `pack`, then each batch checked with `validate(batch, size=...)`.

    A batch that fails is split: each of its events is checked alone, events that fail
    come out as one-event batches with the messages as `error`, and the others are
    packed again (and checked again).
    """
    for batch in pack(group, max_batch_bytes):
        if batch.error is not None or validate is None:
            yield batch
            continue
        problems = validate(orjson.loads(batch.body), size=len(batch.body))
        if not problems:
            yield batch
        elif batch.event_count == 1:
            batch.error = "; ".join(problems)
            yield batch
        else:
            yield from _isolate(group, batch, pack, validate, max_batch_bytes)


def _isolate(
    group: Group, batch: PackedBatch, pack: Pack, validate: Validator, max_batch_bytes: int
) -> Iterator[PackedBatch]:
    position = {key: k for k, key in enumerate(group.replay_keys())}
    good: list[int] = []
    for key in batch.replay_keys:
        k = position[key]
        [alone] = pack(_subgroup(group, [k]), max_batch_bytes)
        problems = validate(orjson.loads(alone.body), size=len(alone.body))
        if problems:
            alone.error = "; ".join(problems)
            yield alone
        else:
            good.append(k)
    for repacked in pack(_subgroup(group, good), max_batch_bytes):
        problems = validate(orjson.loads(repacked.body), size=len(repacked.body))
        if problems:  # a problem of the batch as a whole: keep each event apart
            for k in (position[key] for key in repacked.replay_keys):
                [alone] = pack(_subgroup(group, [k]), max_batch_bytes)
                alone.error = "; ".join(problems)
                yield alone
        else:
            yield repacked


def group_requests(
    batches: Iterable[PackedBatch],
    limits: PackingLimits,
    on_rejected: Callable[[PackedBatch], None] | None = None,
) -> Iterator[list[PackedBatch]]:
    """Consecutive sendable batches, as few requests as the limits allow (order kept).

    Batches with an `error` are not sent: they go to `on_rejected`, if given.
    """
    max_request_bytes, max_batches = limits.max_request_bytes, limits.max_batches_per_request
    current: list[PackedBatch] = []
    size = 2  # the brackets
    for batch in batches:
        if batch.error is not None:
            if on_rejected is not None:
                on_rejected(batch)
            continue
        extra = len(batch.body) + (1 if current else 0)
        if current and (size + extra > max_request_bytes or len(current) >= max_batches):
            yield current
            current, size, extra = [], 2, len(batch.body)
        current.append(batch)
        size += extra
    if current:
        yield current
