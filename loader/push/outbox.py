"""The outbox: planned requests on disk between planning and sending.

Planning writes every request of the run here and then lets go of the warehouse; the
senders read it back one request at a time, so memory stays flat however big the
replay set is. The file is scratch: it is rebuilt by each run (the ledger, not the
outbox, says what was sent) and removed when the run ends.

Format: per request, a little-endian u32 batch count, then per batch the 36-byte id,
its number in the ledger as a u64 (0: none), a u32 event count, a u32 body length and
the body.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from loader.push.packing import ID_LENGTH, PackedBatch
from loader.push.transport import Outgoing

_U32 = struct.Struct("<I")
_BATCH = struct.Struct(f"<{ID_LENGTH}sQII")


class Outbox:
    """Append requests with `add`, then iterate `read()` (which closes the file for writing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115

    def add(self, batches: list[PackedBatch]) -> None:
        if self._file is None:
            raise ValueError("the outbox is closed")
        parts = [_U32.pack(len(batches))]
        for batch in batches:
            parts.append(
                _BATCH.pack(
                    batch.source_request_id.encode(),
                    batch.batch_no or 0,
                    batch.event_count,
                    len(batch.body),
                )
            )
            parts.append(batch.body)
        self._file.write(b"".join(parts))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self) -> Iterator[list[Outgoing]]:
        """The requests in the order they were added."""
        self.close()
        with open(self.path, "rb") as f:
            while header := f.read(_U32.size):
                (n,) = _U32.unpack(header)
                request = []
                for _ in range(n):
                    sid, number, events, size = _BATCH.unpack(f.read(_BATCH.size))
                    request.append(Outgoing(sid.decode(), events, f.read(size), number or None))
                yield request

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
