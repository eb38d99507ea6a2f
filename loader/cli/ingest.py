"""`loader ingest` and `loader sample`: Quarantine Output into the warehouse, and a sample of it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from loader import settings
from loader.cli.common import JsonOption, err, esc, handles_loader_errors, out
from loader.cli.ingest_progress import IngestProgress
from loader.cli.suppress import print_load
from loader.ingest.importer import IngestSummary, forget, ingest_source
from loader.ingest.samples import generate
from loader.ingest.source_choice import source_for
from loader.ingest.suppression import configured_list, load_suppression_list
from loader.warehouse import connect, kept_only_if_written


@handles_loader_errors
def ingest_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Quarantine files, folders (searched recursively) or globs; "
            "s3://, gs:// and az:// URIs of prefixes (searched recursively), objects or globs."
        ),
    ],
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            formats=["%Y-%m-%d"],
            help="Only files in YYYY-MM-DD date folders on or after this date "
            "(files outside date folders are read too).",
        ),
    ] = None,
    forget_files: Annotated[
        bool,
        typer.Option(
            "--forget",
            help="Remove these ingested files' rows from the raw tables instead of loading.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Load Quarantine Output files (NDJSON, gzipped or not) into the warehouse's raw tables, and the suppression list named by $BACKFILL_SUPPRESSION_LIST (see `loader suppress`).

    Exits 1 when some lines or files were rejected (they are listed in raw.rejected_lines) or some files could not be read. With --forget, exits 2 when a file was not ingested.
    """  # noqa: E501
    if forget_files:
        return forget_command(paths)
    source = source_for(paths, since.date() if since else None)
    warehouse = settings.warehouse_path()
    with kept_only_if_written(warehouse):
        con = connect(warehouse, streaming=True)
        with con, IngestProgress(source, enabled=out.is_terminal and not as_json) as progress:
            summary = ingest_source(con, source, on_file=None if as_json else progress.on_file)
            suppression = configured_list()
            suppressed = load_suppression_list(con, suppression) if suppression else None
    if as_json:
        totals = summary.as_dict()
        totals["rejections"] = [r.__dict__ for r in summary.rejections]
        totals["not_read"] = [{"path": f.path, "reason": f.note} for f in summary.not_read]
        totals.update(progress.downloads())
        if suppressed:
            totals["suppression_list"] = suppressed.__dict__
        out.print_json(json.dumps(totals))
    else:
        print_summary(summary)
        out.print(f"warehouse: {warehouse.absolute()}", markup=False, highlight=False)
        progress.print_downloads()
        if suppressed:
            print_load(suppressed)
    if summary.rejections or summary.not_read:
        raise typer.Exit(1)


def forget_command(paths: list[str]) -> None:
    """Remove ingested files from the raw tables; exit 2 when one was not ingested."""
    con = connect(settings.warehouse_path())
    with con:
        results = [(path, forget(con, path)) for path in paths]
    missing = False
    for path, removed in results:
        if removed is None:
            missing = True
            err.print(f"{path}: not ingested; nothing removed", markup=False, highlight=False)
        else:
            source_file, lines, rejected = removed
            out.print(
                f"forgot {source_file}: {lines} line{'s' * (lines != 1)}, "
                f"{rejected} rejected line{'s' * (rejected != 1)}",
                markup=False,
                highlight=False,
            )
    if any(removed is not None for _, removed in results):
        out.print("Run `dbt build` so the replay set no longer holds them.", markup=False)
    if missing:
        raise typer.Exit(2)


def print_summary(summary: IngestSummary) -> None:
    """The totals, then the first rejected lines."""
    totals = summary.as_dict()
    not_read = f", not read {totals['files_not_read']}" if totals["files_not_read"] else ""
    out.print(
        f"\nfiles read {totals['files_read']}, skipped {totals['files_skipped']} "
        f"(verification files), unchanged {totals['files_unchanged']}{not_read}; "
        f"lines loaded {totals['lines_loaded']}, rejected {totals['lines_rejected']}"
    )
    for f in summary.not_read:
        err.print(f"[red]not read[/] {esc(f.path)}: {esc(f.note)}")
    if summary.not_read:
        err.print("Files not read were not recorded; fix them and run ingest again.")
    for r in summary.rejections[:20]:
        where = f"{r.source_file}:{r.line_number}" if r.line_number else r.source_file
        err.print(f"[red]rejected[/] {esc(where)}: {esc(r.reason)}")
    if len(summary.rejections) > 20:
        err.print(f"... and {len(summary.rejections) - 20} more")
    if summary.rejections:
        err.print(
            "Rejected lines were not loaded; see `select * from raw.rejected_lines`. "
            "Fix or re-download those files and run ingest again."
        )
    if summary.count("refused"):
        err.print(
            "A refused file stays recorded so it is not read again; "
            "`loader ingest --forget PATH` removes it."
        )


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
        f"{summary.attribute_only_events} with blocked attributes only)",
        markup=False,
    )
