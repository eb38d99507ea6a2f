"""Where quarantine files come from: a `Source` lists objects and opens byte streams.

The importer does the rest (gzip detection, line checks, loading), whatever the source.
`LocalFiles` reads paths, folders (searched recursively) and globs;
`object_stores.ObjectStore` reads S3, GCS and Azure Blob URIs, with the ETag, MD5 or
generation as fingerprint. `source_choice.source_for` is the one place that picks the
sources for the arguments of `loader ingest`.
"""

from __future__ import annotations

import glob
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from loader.errors import LoaderError


@dataclass(frozen=True)
class SourceObject:
    """One file of a source."""

    uri: str  # as the raw tables record it (`source_file`): a path, or a URI
    name: str  # its last path segment
    size: int  # bytes


class Source(Protocol):
    """A place holding quarantine files."""

    def objects(self) -> Iterator[SourceObject]:
        """The files, in a stable order, each once. Raises `LoaderError` for a bad argument."""
        ...

    def fingerprint(self, obj: SourceObject) -> str:
        """A text that changes whenever the content does (same content, same text)."""
        ...

    def open(self, obj: SourceObject) -> BinaryIO:
        """The object's bytes as stored (gzip or not), as a stream the caller closes."""
        ...


class ObjectReadError(Exception):
    """An object that could not be read whole (after retries), or changed while read.

    Raised by a source's stream; the importer records nothing of that object."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri, self.reason = uri, reason


@runtime_checkable
class ReadsAhead(Protocol):
    """A source that downloads objects before `open` asks for them."""

    def read_ahead(self, loaded: set[str]) -> None:
        """Start fetching, in order, the objects whose fingerprint is not in `loaded`."""
        ...

    def close(self) -> None:
        """Stop fetching."""
        ...


class LocalFiles:
    """Files named directly, found under folders (recursively) or matched by globs.

    Hidden files are left out; a file reached twice counts once. The fingerprint is the
    SHA-256 of the content.
    """

    def __init__(self, arguments: Iterable[str]) -> None:
        self.arguments = list(arguments)

    def objects(self) -> Iterator[SourceObject]:
        for path in self._paths():
            yield SourceObject(str(path), path.name, path.stat().st_size)

    def _paths(self) -> Iterator[Path]:
        seen: set[Path] = set()
        for argument in self.arguments:
            path = Path(argument)
            if path.is_file():
                candidates = [path]
            elif path.is_dir():
                candidates = sorted(p for p in path.rglob("*") if p.is_file())
            else:
                candidates = sorted(p for p in _glob(argument) if p.is_file())
                if not candidates:
                    raise LoaderError(
                        f"{argument}: no such file or folder, and no file matches it."
                    )
            for candidate in candidates:
                resolved = candidate.resolve()
                if resolved not in seen and not candidate.name.startswith("."):
                    seen.add(resolved)
                    yield resolved

    def fingerprint(self, obj: SourceObject) -> str:
        digest = hashlib.sha256()
        with open(obj.uri, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

    def open(self, obj: SourceObject) -> BinaryIO:
        return open(obj.uri, "rb")  # noqa: SIM115 - the caller closes it


def _glob(pattern: str) -> Iterator[Path]:
    """The paths matching `pattern`, with `**` for any depth of folders, like `glob.glob`
    (names starting with a dot match only a pattern part starting with one), except that
    symlinked folders are not followed, as in a folder walk: a symlink loop ends."""
    parts = Path(pattern).parts
    fixed = 0
    while fixed < len(parts) and not glob.has_magic(parts[fixed]):
        fixed += 1
    if fixed == len(parts):
        yield Path(pattern)
        return
    base = Path(*parts[:fixed]) if fixed else Path()
    rest = parts[fixed:]
    allow_hidden = any(part.startswith(".") for part in rest)
    for match in base.glob(str(Path(*rest))):
        below = match.parts[len(base.parts) :]
        if allow_hidden or not any(part.startswith(".") for part in below):
            yield match


DATE_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}")


def date_folder(uri: str) -> date | None:
    """The date of the innermost `YYYY-MM-DD` folder holding `uri`, or None."""
    for part in reversed(uri.split("/")[:-1]):
        if DATE_FOLDER.fullmatch(part):
            try:
                return date.fromisoformat(part)
            except ValueError:
                return None
    return None


class Sources:
    """Several sources read as one (local folders and buckets in one call).

    Every source is listed before the first object is returned, so a bad argument fails
    before anything loads. With `since`, objects in a date folder before it are left out
    (objects outside date folders stay)."""

    def __init__(self, sources: list[Source], since: date | None = None) -> None:
        self.sources, self.since = sources, since
        self._owner: dict[str, Source] = {}
        self._listed: list[SourceObject] | None = None

    def objects(self) -> Iterator[SourceObject]:
        if self._listed is None:
            self._listed = []
            for source in self.sources:
                for obj in source.objects():
                    day = date_folder(obj.uri) if self.since else None
                    if obj.uri in self._owner or (day and self.since and day < self.since):
                        continue
                    self._owner[obj.uri] = source
                    self._listed.append(obj)
        yield from self._listed

    def fingerprint(self, obj: SourceObject) -> str:
        return self._owner[obj.uri].fingerprint(obj)

    def open(self, obj: SourceObject) -> BinaryIO:
        return self._owner[obj.uri].open(obj)

    def read_ahead(self, loaded: set[str]) -> None:
        for source in self.sources:
            if isinstance(source, ReadsAhead):
                source.read_ahead(loaded)

    def close(self) -> None:
        for source in self.sources:
            if isinstance(source, ReadsAhead):
                source.close()


def is_verification_file(name: str) -> bool:
    """mParticle writes these to prove bucket access; they hold no data."""
    name = name.lower()
    return name.startswith("mparticle_bucket_verification_") or name == "mparticle_validation.txt"
