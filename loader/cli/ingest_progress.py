"""What `loader ingest` shows while reading: a line per file and, for object storage, a
progress bar of objects and bytes (on a terminal only), then what was downloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loader.cli.common import esc, out
from loader.ingest.downloads import Transfer
from loader.ingest.importer import FileResult
from loader.ingest.sources import Source

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def transfers(source: Source) -> list[Transfer]:
    """The download counters of `source`'s object stores (none for local files)."""
    parts = getattr(source, "sources", [source])
    return [p.transfer for p in parts if isinstance(getattr(p, "transfer", None), Transfer)]


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class IngestProgress:
    def __init__(self, source: Source, *, enabled: bool) -> None:
        self.transfers = transfers(source)
        self.enabled = enabled and bool(self.transfers)
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.files = 0

    def __enter__(self) -> IngestProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def on_file(self, result: FileResult) -> None:
        print_file(result)
        self.files += 1
        if not self.enabled:
            return
        if self.bar is None:
            self._start()
        assert self.bar is not None and self.task is not None
        self.bar.update(self.task, completed=self.files, bytes=self._bytes())

    def _start(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("reading"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files, {task.fields[bytes]}"),
            console=out,
            transient=True,
        )
        total = sum(t.objects_total for t in self.transfers) or None
        self.task = self.bar.add_task("ingest", total=total, bytes=self._bytes())
        self.bar.start()

    def _bytes(self) -> str:
        done = sum(t.bytes_downloaded for t in self.transfers)
        return f"{_mb(done)} downloaded of {_mb(sum(t.bytes_total for t in self.transfers))}"

    def downloads(self) -> dict[str, int]:
        """Objects and bytes downloaded from object storage (nothing for local files)."""
        if not self.transfers:
            return {}
        return {
            "objects_downloaded": sum(t.objects_downloaded for t in self.transfers),
            "bytes_downloaded": sum(t.bytes_downloaded for t in self.transfers),
        }

    def print_downloads(self) -> None:
        """How much came from object storage; says so when nothing had to be downloaded."""
        if not self.transfers:
            return
        objects = sum(t.objects_downloaded for t in self.transfers)
        if not objects:
            out.print("nothing downloaded: no object is new or changed since it was loaded")
            return
        done = sum(t.bytes_downloaded for t in self.transfers)
        out.print(f"downloaded {objects} object{'s' * (objects != 1)}, {_mb(done)}")


def print_file(result: FileResult) -> None:
    """One line per file as it is read."""
    if result.status in ("refused", "not read"):
        out.print(f"{result.status:>9}  {result.path}  ({result.note})", markup=False)
        return
    counts = f"{result.lines_loaded} lines" if result.status in ("loaded", "replaced") else ""
    if result.lines_rejected:
        counts += f", [red]{result.lines_rejected} rejected[/]"
    note = f" ({esc(result.note)})" if result.note else ""
    out.print(f"{result.status:>9}  {esc(result.path)}  {counts}{note}")
