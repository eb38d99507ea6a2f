"""Where quarantine files come from: a `Source` lists objects and opens byte streams.

The importer does the rest (gzip detection, line checks, loading), whatever the source.
`LocalFiles` (paths, folders searched recursively, globs) is the one source today;
object stores (S3, GCS, Azure) would be others, listing objects with their ETag or
generation as fingerprint. `source_for` is the one place that picks a source for the
arguments of `loader ingest`.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

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


def source_for(arguments: Iterable[str]) -> Source:
    """The source that `loader ingest ARGUMENTS` reads (local files today)."""
    return LocalFiles(arguments)
