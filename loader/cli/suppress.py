"""`loader suppress`: load the suppression list (users never to replay) into the warehouse."""

from __future__ import annotations

from typing import Annotated

import typer

from loader import settings
from loader.cli.common import handles_loader_errors, out
from loader.errors import LoaderError
from loader.ingest.suppression import (
    SETTING_ENV,
    SuppressionLoad,
    configured_list,
    load_suppression_list,
)
from loader.warehouse import connect, kept_only_if_written


@handles_loader_errors
def suppress_command(
    location: Annotated[
        str | None,
        typer.Argument(
            help=f"A CSV or Parquet file (local path, s3://, gs:// or az:// URI) with columns "
            f"identity_type and identity; default: ${SETTING_ENV}.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replace the warehouse's suppression list: the users (by MPID or identity) whose events `dbt build` skips with reason suppressed_user.

    `loader ingest` loads the list named by $BACKFILL_SUPPRESSION_LIST by itself.
    """  # noqa: E501
    location = location or configured_list()
    if location is None:
        raise LoaderError(f"Name the list: `loader suppress PATH`, or set {SETTING_ENV}.")
    warehouse = settings.warehouse_path()
    with kept_only_if_written(warehouse), connect(warehouse) as con:
        loaded = load_suppression_list(con, location)
    print_load(loaded)


def print_load(loaded: SuppressionLoad) -> None:
    """One line saying which list the warehouse now holds."""
    state = "unchanged" if loaded.unchanged else "loaded"
    out.print(
        f"suppression list {state}: {loaded.source_file} ({loaded.row_count} rows, "
        f"sha256 {loaded.checksum[:12]}). Run `dbt build` to apply it.",
        markup=False,
        highlight=False,
    )
