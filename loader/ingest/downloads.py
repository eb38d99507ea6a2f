"""Downloading objects ahead of the importer: a few blocks at a time, in order, retried.

The importer reads one object at a time (one writer into DuckDB). Meanwhile a thread
pool fetches the next blocks (ranged reads of `BLOCK_BYTES`) of the objects it will read,
so thousands of small objects are not bound by latency. At most `WINDOW_BYTES` are held
ahead of the reader, so memory stays flat whatever the size of an object or a bucket.
A block is retried on a dropped connection; after the last block the object's version is
asked again, and an object that changed while read is refused (`ObjectReadError`).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from loader.ingest.sources import ObjectReadError, SourceObject
from loader.object_storage import RETRY_DELAYS_S

BLOCK_BYTES = 8 * 1024 * 1024
WINDOW_BYTES = 64 * 1024 * 1024
WORKERS = 8
CHANGED = (
    "it changed while it was read (its version is now different); "
    "run ingest again to load the new content"
)


@dataclass
class Transfer:
    """What a source has listed and downloaded so far (for a progress display)."""

    objects_total: int = 0
    bytes_total: int = 0
    objects_downloaded: int = 0
    bytes_downloaded: int = 0


@dataclass(frozen=True)
class RemoteObject:
    obj: SourceObject
    fs: Any  # the fsspec filesystem holding it
    path: str  # its path in `fs`
    version: str  # from the listing, see `version_of`


def _blocks(size: int) -> list[tuple[int, int]]:
    return [(start, min(start + BLOCK_BYTES, size)) for start in range(0, size, BLOCK_BYTES)]


class Downloads:
    """Fetches the blocks of `planned` objects ahead of `open`, in their order."""

    def __init__(
        self,
        planned: list[RemoteObject],
        transfer: Transfer,
        retry_delays: tuple[Any, ...] = RETRY_DELAYS_S,
    ) -> None:
        self.transfer, self.retry_delays = transfer, retry_delays
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="download")
        self._lock = threading.Lock()
        # (object uri, block index or -1 for the version check) in reading order
        self._queue: list[tuple[RemoteObject, int]] = []
        for remote in planned:
            self._queue += [(remote, i) for i in range(len(_blocks(remote.obj.size)))]
            self._queue.append((remote, -1))
        self._next = 0  # first entry of `_queue` not submitted yet
        self._futures: dict[tuple[str, int], Future[Any]] = {}
        self._ahead = 0  # bytes submitted and not yet read
        self._counted: set[str] = set()  # objects read to their end (counted once)
        with self._lock:
            self._fill()

    def count_object(self, remote: RemoteObject) -> None:
        """`remote` was read to its end: one object downloaded, however often it is read
        (a file whose fast path fails is read again line by line)."""
        with self._lock:
            if remote.obj.uri not in self._counted:
                self._counted.add(remote.obj.uri)
                self.transfer.objects_downloaded += 1

    def open(self, remote: RemoteObject) -> BinaryIO:
        raw = _ObjectStream(self, remote)
        return io.BufferedReader(raw, buffer_size=1024 * 1024)

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def take(self, remote: RemoteObject, index: int) -> Any:
        """Block `index` of `remote` (or, for -1, its version now), waiting for it."""
        key = (remote.obj.uri, index)
        with self._lock:
            self._drop_before(remote)
            future = self._futures.pop(key, None)
            if future is None:
                future = self._submit(remote, index)
        try:
            result = future.result()
        finally:
            with self._lock:
                if index >= 0:
                    start, end = _blocks(remote.obj.size)[index]
                    self._ahead -= end - start
                self._fill()
        return result

    def _drop_before(self, remote: RemoteObject) -> None:
        """Forget blocks of objects the importer passed over (skipped after all)."""
        position = next(
            (i for i, (r, _) in enumerate(self._queue) if r.obj.uri == remote.obj.uri), None
        )
        if position is None:
            return
        for r, i in self._queue[:position]:
            future = self._futures.pop((r.obj.uri, i), None)
            if future is not None:
                future.cancel()
                if i >= 0:
                    start, end = _blocks(r.obj.size)[i]
                    self._ahead -= end - start
        del self._queue[:position]
        self._next = max(self._next - position, 0)

    def _fill(self) -> None:
        """Submit the next blocks while fewer than `WINDOW_BYTES` wait to be read."""
        while self._next < len(self._queue) and self._ahead < WINDOW_BYTES:
            remote, index = self._queue[self._next]
            self._next += 1
            key = (remote.obj.uri, index)
            if key not in self._futures:
                self._futures[key] = self._submit(remote, index)

    def _submit(self, remote: RemoteObject, index: int) -> Future[Any]:
        if index < 0:  # asked once the last block is in: a change during it shows
            last = self._futures.get((remote.obj.uri, len(_blocks(remote.obj.size)) - 1))

            def version_after_last_block() -> str:
                if last is not None:
                    last.exception()  # waits; submitted earlier, so it never waits on itself
                return _version_now(remote)

            return self._pool.submit(_retried, remote, self.retry_delays, version_after_last_block)
        start, end = _blocks(remote.obj.size)[index]
        self._ahead += end - start
        return self._pool.submit(
            _retried, remote, self.retry_delays, lambda: self._fetch(remote, start, end)
        )

    def _fetch(self, remote: RemoteObject, start: int, end: int) -> bytes:
        data = remote.fs.cat_file(remote.path, start=start, end=end)
        if len(data) != end - start:
            if _version_now(remote) != remote.version:
                raise ObjectReadError(remote.obj.uri, CHANGED)
            raise OSError(f"got {len(data)} bytes of {end - start} at offset {start}")
        with self._lock:
            self.transfer.bytes_downloaded += len(data)
        return bytes(data)


def _version_now(remote: RemoteObject) -> str:
    return version_of(remote.fs.info(remote.path))


def version_of(info: dict[str, Any]) -> str:
    """What changes when an object's content does: its MD5 or ETag, else its generation."""
    for key in ("md5Hash", "content_md5", "ETag", "etag", "generation"):
        value = info.get(key)
        if value:
            if isinstance(value, bytes | bytearray):
                value = value.hex()
            return f"{key}={str(value).strip(chr(34))}"
    last_modified = info.get("last_modified") or info.get("LastModified") or info.get("updated")
    return f"modified={last_modified}"


def _retried(remote: RemoteObject, delays: tuple[Any, ...], call: Callable[[], Any]) -> Any:
    """`call()`, tried again after a dropped connection or a server error."""
    for delay in (*delays, None):
        try:
            return call()
        except ObjectReadError:
            raise
        except FileNotFoundError:
            raise ObjectReadError(remote.obj.uri, "deleted since it was listed") from None
        except PermissionError as exc:
            raise ObjectReadError(remote.obj.uri, f"access denied ({exc})") from None
        except Exception as exc:  # the libraries raise many kinds for a dropped connection
            if delay is None:
                reason = f"{type(exc).__name__}: {str(exc)[:300]}"
                raise ObjectReadError(remote.obj.uri, f"{reason} (after retries)") from None
            time.sleep(delay)
    raise AssertionError("unreachable")


class _ObjectStream(io.RawIOBase):
    """The bytes of one object, block after block; checks its version at the end."""

    def __init__(self, downloads: Downloads, remote: RemoteObject) -> None:
        self.downloads, self.remote = downloads, remote
        self.count = len(_blocks(remote.obj.size))
        self.index = 0
        self.block = memoryview(b"")
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.block:
            if self.index >= self.count:
                self._finish()
                return 0
            self.block = memoryview(self.downloads.take(self.remote, self.index))
            self.index += 1
        n = min(len(buffer), len(self.block))
        buffer[:n] = self.block[:n]
        self.block = self.block[n:]
        return n

    def _finish(self) -> None:
        if self.done:
            return
        version = self.downloads.take(self.remote, -1)
        if version != self.remote.version:
            raise ObjectReadError(self.remote.obj.uri, CHANGED)
        self.done = True
        self.downloads.count_object(self.remote)
