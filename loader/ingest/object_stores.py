"""Quarantine Output in object storage (S3, Google Cloud Storage, Azure Blob) as a `Source`.

Each URI is read through fsspec (s3fs, gcsfs, adlfs: the `s3`, `gcs`, `azure` extras),
with the cloud's own credential chain and endpoint settings. Objects are listed once, up
front, so a bad bucket fails before anything loads. The fingerprint is the object's
content hash or version from the listing (ETag, MD5, generation) with its size, so an
object already loaded is skipped without downloading it.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from datetime import date
from typing import Any, BinaryIO

from loader.errors import LoaderError
from loader.ingest.downloads import Downloads, RemoteObject, Transfer, version_of
from loader.ingest.sources import SourceObject, date_folder, is_verification_file
from loader.object_storage import Store, filesystem


class ObjectStore:
    """Objects under prefixes (searched recursively) or matching globs, in one store."""

    def __init__(self, store: Store, arguments: list[str], since: date | None = None) -> None:
        self.store = store
        self.arguments = arguments
        self.since = since
        self.transfer = Transfer()
        self._objects: dict[str, RemoteObject] = {}
        self._downloads: Downloads | None = None

    def objects(self) -> Iterator[SourceObject]:
        if not self._objects:
            self._list()
        for remote in self._objects.values():
            yield remote.obj

    def _list(self) -> None:
        for argument in self.arguments:
            fs, path = filesystem(self.store, argument)
            root = argument.split("://", 1)[1].split("/", 1)[0]  # bucket (or container@account)
            found = self._find(fs, path, argument)
            for fs_path in sorted(found):
                info = found[fs_path]
                key = fs_path.split("/", 1)[1] if "/" in fs_path else ""
                name = key.rsplit("/", 1)[-1]
                uri = f"{self.store.scheme}://{root}/{key}"
                day = date_folder(uri)
                too_old = self.since is not None and day is not None and day < self.since
                if name.startswith(".") or uri in self._objects or too_old:
                    continue
                size = int(info.get("size") or 0)
                obj = SourceObject(uri, name, size)
                self._objects[uri] = RemoteObject(obj, fs, fs_path, version_of(info))
                self.transfer.objects_total += 1
                self.transfer.bytes_total += size

    def _find(self, fs: Any, path: str, uri: str) -> dict[str, dict[str, Any]]:
        """The files (path -> info) of one argument; a clear LoaderError when none."""
        try:
            if glob.has_magic(path):
                found: dict[str, dict[str, Any]] = {}
                for match, info in fs.glob(path.rstrip("/"), detail=True).items():
                    if info.get("type") == "directory":
                        found.update(fs.find(match, detail=True))
                    else:
                        found[match] = info
            else:
                found = fs.find(path.rstrip("/"), detail=True)
                if not found:
                    info = fs.info(path)
                    found = {path: info} if info.get("type") == "file" else {}
        except FileNotFoundError:
            found = {}
            if not self._bucket_exists(fs, path, uri):
                raise LoaderError(
                    f"{uri}: the {_bucket_word(self.store)} does not exist "
                    "(check its name and the account or endpoint)."
                ) from None
        except Exception as exc:  # denied, no credentials, endpoint down: each library's own
            raise self._denied(uri, exc) from None
        found = {p: i for p, i in found.items() if i.get("type", "file") == "file"}
        if not found:
            raise LoaderError(f"{uri}: no object under this prefix, and no object matches it.")
        return found

    def _bucket_exists(self, fs: Any, path: str, uri: str) -> bool:
        try:
            return bool(fs.exists(path.split("/", 1)[0]))
        except Exception as exc:
            raise self._denied(uri, exc) from None

    def _denied(self, uri: str, exc: Exception) -> LoaderError:
        return LoaderError(
            f"{uri}: cannot list it ({type(exc).__name__}: {_first_line(exc)}). "
            f"Check {self.store.check}."
        )

    def fingerprint(self, obj: SourceObject) -> str:
        remote = self._objects[obj.uri]
        return f"{self.store.scheme}:{remote.version}:{obj.size}"

    def read_ahead(self, loaded: set[str]) -> None:
        """Start downloading, a few at a time, the objects whose fingerprint is not loaded."""
        if not self._objects:
            self._list()
        wanted, seen = [], set(loaded)
        for remote in self._objects.values():
            fingerprint = self.fingerprint(remote.obj)
            if not is_verification_file(remote.obj.name) and fingerprint not in seen:
                seen.add(fingerprint)
                wanted.append(remote)
        self._downloads = Downloads(wanted, self.transfer, self.store.retry_delays)

    def open(self, obj: SourceObject) -> BinaryIO:
        if self._downloads is None:
            self._downloads = Downloads([], self.transfer, self.store.retry_delays)
        return self._downloads.open(self._objects[obj.uri])

    def close(self) -> None:
        if self._downloads is not None:
            self._downloads.close()


def _bucket_word(store: Store) -> str:
    return "container" if store.scheme == "az" else "bucket"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
