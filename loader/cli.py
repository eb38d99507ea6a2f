"""The `loader` command line: options, messages and exit codes. Work happens in the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from loader import settings
from loader.errors import LoaderError
from loader.ingest import FileResult, ingest
from loader.samples import generate
from loader.warehouse import connect

app = typer.Typer(
    help="Replay blocked mParticle data: ingest Quarantine Output, then push the dbt-built "
    "replay set to the Events API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


@app.callback()
def main() -> None:
    """Replay blocked mParticle data. Set BACKFILL_DUCKDB to use another warehouse file."""


def fail(exc: LoaderError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(exc.exit_code)


@app.command("ingest")
def ingest_command(
    paths: Annotated[
        list[str], typer.Argument(help="Quarantine files, folders (searched recursively) or globs.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Load Quarantine Output files (NDJSON, gzipped or not) into the warehouse's raw tables.

    Exits 1 when some lines were rejected: they are listed in raw.rejected_lines.
    """

    def report(result: FileResult) -> None:
        if as_json:
            return
        counts = f"{result.lines_loaded} lines" if result.status in ("loaded", "replaced") else ""
        if result.lines_rejected:
            counts += f", [red]{result.lines_rejected} rejected[/]"
        note = f" ({result.note})" if result.note else ""
        out.print(f"{result.status:>9}  {result.path}  {counts}{note}")

    try:
        con = connect(settings.warehouse_path())
        with con:
            summary = ingest(con, paths, on_file=report)
    except LoaderError as exc:
        raise fail(exc) from None

    totals = summary.as_dict()
    if as_json:
        totals["rejections"] = [r.__dict__ for r in summary.rejections]
        out.print_json(json.dumps(totals))
    else:
        out.print(
            f"\nfiles read {totals['files_read']}, skipped {totals['files_skipped']} "
            f"(verification files), unchanged {totals['files_unchanged']}; "
            f"lines loaded {totals['lines_loaded']}, rejected {totals['lines_rejected']}"
        )
        for r in summary.rejections[:20]:
            err.print(f"[red]rejected[/] {r.source_file}:{r.line_number}: {r.reason}")
        if len(summary.rejections) > 20:
            err.print(f"... and {len(summary.rejections) - 20} more")
        if summary.rejections:
            err.print(
                "Rejected lines were not loaded; see `select * from raw.rejected_lines`. "
                "Fix or re-download those files and run ingest again."
            )
    if summary.rejections:
        raise typer.Exit(1)


@app.command("sample")
def sample_command(
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write the sample quarantine output to.")
    ],
    events: Annotated[int, typer.Option(help="About how many events to write.")] = 2_000,
    days: Annotated[int, typer.Option(help="Spread events over this many past days.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same ids.")] = 7,
) -> None:
    """Write a realistic sample Quarantine Output folder (for the demo and benchmarks)."""
    summary = generate(out_dir, events, seed=seed, days=days)
    out.print(
        f"wrote {summary.files} files to {out_dir}: {summary.batches} batches, "
        f"{summary.events} events ({summary.blocked_events} blocked, "
        f"{summary.attribute_only_events} with blocked attributes only)"
    )


if __name__ == "__main__":
    app()
