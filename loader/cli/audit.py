"""`loader plan-check`, `loader sql` and `loader report`: read the replay set and the ledger."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loader import settings
from loader.cli.common import (
    JsonOption,
    cell,
    err,
    esc,
    handles_loader_errors,
    out,
    print_error,
)
from loader.errors import LoaderError
from loader.warehouse import connect

if TYPE_CHECKING:
    import duckdb
    from rich.console import JustifyMethod
    from rich.table import Table

    from loader.audit.data_plan_check import PlanCheckResult
    from loader.audit.sql_session import QueryResult

PLAN_CHECK_STYLES = {"unplanned": "red", "unplanned_attributes": "red", "invalid": "yellow"}


@handles_loader_errors
def plan_check_command(
    plan: Annotated[
        Path,
        typer.Argument(
            help="Data plan JSON as mParticle exports it: a plan, a plan version, or a "
            "version document."
        ),
    ],
    version: Annotated[
        int | None,
        typer.Option(help="Plan version to check against, when the file holds a whole plan."),
    ] = None,
    show_ok: Annotated[bool, typer.Option(help="Also list the events that pass.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check the replay set against a data plan version before sending it.

    Lists, per event type and name, the replay events the plan would block again (unplanned events, unplanned attributes) or flag as invalid. Exits 1 when some would be blocked.
    """  # noqa: E501
    from loader.audit.data_plan_check import check_replay_set, load_plan

    plan_version = load_plan(plan, version)
    con = connect(settings.warehouse_path(), read_only=True)
    with con:
        result = check_replay_set(con, plan_version)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        print_plan_check(result, show_ok=show_ok)
    if result.would_block:
        if not as_json:
            err.print(
                "Some replay events would be blocked again. Fix them (models/fixes) or update "
                "the plan, then run dbt build and this check again."
            )
        raise typer.Exit(1)


def print_plan_check(result: PlanCheckResult, *, show_ok: bool) -> None:
    """The table of event types that do not pass (all with `show_ok`), totals and notes."""
    table = plan_check_table(result, show_ok=show_ok)
    if table.row_count:
        out.print(table)
    summary = result.as_dict()["events"]
    out.print(
        f"events: {summary['ok']} pass, {summary['unplanned']} unplanned (blocked again), "
        f"{summary['unplanned_attributes']} with unplanned attributes (removed again), "
        f"{summary['invalid']} invalid (delivered, flagged), "
        f"{summary['not_plannable']} of types plans do not validate",
        markup=False,
    )
    for note in result.notes:
        err.print(f"[yellow]note:[/] {esc(note)}")


def plan_check_table(result: PlanCheckResult, *, show_ok: bool) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=cell(f"Replay set against {result.plan_id} v{result.version}"))
    for column in ("status", "type", "name", "events"):
        justify: JustifyMethod = "right" if column == "events" else "left"
        table.add_column(column, justify=justify, no_wrap=True)
    table.add_column("problems")
    for row in result.rows:
        if row.status == "ok" and not show_ok:
            continue
        kind = row.event_type + (f" ({row.custom_event_type})" if row.custom_event_type else "")
        problems = "; ".join(
            f"{text} ({count})" if count != row.events else text
            for text, count in row.problems.most_common(5)
        )
        if len(row.problems) > 5:
            problems += f"; ... {len(row.problems) - 5} more"
        status = Text(row.status, style=PLAN_CHECK_STYLES.get(row.status, ""))
        table.add_row(status, cell(kind), cell(row.name or ""), cell(row.events), cell(problems))
    return table


@handles_loader_errors
def sql_command(
    query: Annotated[
        str | None,
        typer.Argument(
            help="SQL text, or a .sql file (e.g. analyses/failures.sql). Without it: an "
            "interactive prompt on a terminal, else SQL read from stdin.",
            show_default=False,
        ),
    ] = None,
    variables: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="NAME=VALUE, read in SQL with getvariable('NAME'). Repeatable.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--format", help="table, csv or json.", case_sensitive=False)
    ] = "table",
    max_rows: Annotated[
        int | None,
        typer.Option(
            help="Rows shown per result (0: all). Default: 100 in table format, all in csv "
            "and json.",
            show_default=False,
        ),
    ] = None,
    no_ledger: Annotated[
        bool, typer.Option("--no-ledger", help="Do not attach the ledger.")
    ] = False,
    attachments: Annotated[
        list[str] | None,
        typer.Option(
            "--attach",
            help="NAME=PATH: also attach this DuckDB file, read-only, as NAME. Repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Query the warehouse and the send ledger together, read-only, in one DuckDB session.

    The ledger (BACKFILL_LEDGER) is attached as `ledger` when its file exists: `select * from ledger.runs`. No other file can be read or written (no COPY TO, read_csv, ATTACH, extensions): pass other DuckDB files with --attach. Standard audit queries are in analyses/.
    """  # noqa: E501
    from loader.audit.sql_session import (
        ledger_attached,
        open_session,
        parse_attachments,
        parse_variables,
        read_query,
        session_variables,
    )

    output = output.lower()
    if output not in ("table", "csv", "json"):
        raise LoaderError(f"--format {output}: use table, csv or json")
    if max_rows is None:
        max_rows = 100 if output == "table" else 0
    limit = max_rows if max_rows > 0 else None
    sql = read_query(query) if query is not None else None
    ledger = None if no_ledger else settings.ledger_path()
    known: dict[str, object] = dict(parse_variables(variables or []))
    extra = parse_attachments(attachments or [])

    def session() -> duckdb.DuckDBPyConnection:
        return open_session(settings.warehouse_path(), ledger, known, extra)

    if sql is None and not sys.stdin.isatty():
        sql = sys.stdin.read()
    if sql is not None:
        with session() as con:
            print_results(con, sql, output, limit)
        return
    with session() as con:  # opens now, so that a problem shows before the prompt
        attached = ledger_attached(con)

    def show(text: str) -> None:
        # a session per statement: the files are locked (read-only) only while it runs,
        # so an open prompt does not keep `dbt build` or `loader push` from writing them
        with session() as con:
            try:
                print_results(con, text, output, limit)
            finally:
                known.update(session_variables(con))

    prompt(show, attached=attached)


def print_results(con: duckdb.DuckDBPyConnection, sql: str, output: str, limit: int | None) -> None:
    """Run `sql` and print each result as a table, CSV or JSON."""
    from loader.audit.sql_session import run

    for number, result in enumerate(run(con, sql, max_rows=limit)):
        more = result.total_rows - len(result.rows)
        note = f", showing {len(result.rows)} (--max-rows 0 for all)" if more else ""
        if output == "csv":
            if number:
                sys.stdout.write("\n")  # a blank line between results
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(result.columns)
            writer.writerows(result.rows)
        elif output == "json":
            sys.stdout.write(result.to_json().decode() + "\n")
        else:
            out.print(result_table(result))
        if output == "table" or more:
            sys.stdout.flush()
            rows = "row" if result.total_rows == 1 else "rows"
            err.print(f"{result.total_rows} {rows}{note}", style="dim", markup=False)


def result_table(result: QueryResult) -> Table:
    from rich.table import Table

    table = Table(show_lines=False, highlight=False)
    for column in result.columns:
        table.add_column(cell(column), overflow="fold")
    for row in result.rows:
        table.add_row(*(cell("NULL" if v is None else v) for v in row))
    return table


def prompt(show: Callable[[str], None], *, attached: bool) -> None:
    """Read statements until Ctrl-D or `quit`; run each as soon as it ends with ';'."""
    from loader.audit.sql_session import is_complete

    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    ledger_note = "ledger attached as `ledger`" if attached else "no ledger attached"
    err.print(
        f"{settings.warehouse_path()} (read-only), {ledger_note}. "
        "End statements with ';'. Ctrl-D to quit. Each statement opens the files anew "
        "(variables carry over), so they stay free between statements.",
        markup=False,
    )
    buffer = ""
    while True:
        try:
            line = input("...> " if buffer else "sql> ")
        except EOFError:
            break
        if not buffer and line.strip().lower() in (".quit", ".exit", "quit", "exit"):
            break
        buffer += line + "\n"
        if is_complete(buffer):
            try:
                show(buffer)
            except LoaderError as exc:
                print_error(exc)
            buffer = ""


@handles_loader_errors
def report_command(
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            help="HTML file to write (a regular file there is overwritten; a symbolic link "
            "is refused).",
            dir_okay=False,
        ),
    ] = Path("report.html"),
) -> None:
    """Write a self-contained HTML report: the replay set and its risks, and after a push what the ledger recorded. No network assets: it opens offline, and can be mailed."""  # noqa: E501
    from loader.audit.report import write_report

    summary = write_report(settings.warehouse_path(), settings.ledger_path(), out_path)
    push = (
        "with the push ledger"
        if summary.has_push
        else summary.push_running or "no push recorded yet"
    )
    wrote = "overwrote" if summary.overwrote else "wrote"
    out.print(
        f"{wrote} {out_path}: {summary.events_to_replay} events to replay, {push}", markup=False
    )
    for warning in summary.warnings:
        err.print(f"[yellow]warning:[/] {esc(warning)}")


@handles_loader_errors
def export_command(
    model: Annotated[
        str, typer.Argument(help="A table of the warehouse, e.g. resent_event_duplicates.")
    ],
    output_format: Annotated[
        str, typer.Option("--format", help="csv or parquet.", case_sensitive=False)
    ] = "csv",
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            help="File to write (replaced if it exists; a symbolic link is refused).",
            dir_okay=False,
        ),
    ] = Path("export.csv"),
) -> None:
    """Write one model of the warehouse to a CSV or Parquet file (streamed: memory stays flat). CSV has a header line; JSON columns are written as their text."""  # noqa: E501
    from loader.audit.export import export_model

    rows = export_model(settings.warehouse_path(), model, output_format.lower(), out_path)
    out.print(f"wrote {rows} rows of {model} to {out_path}", markup=False)
