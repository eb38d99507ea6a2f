"""The `loader` command line: options, messages and exit codes. Work happens in the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from loader import settings
from loader.errors import LoaderError
from loader.ingest.importer import FileResult, ingest
from loader.ingest.samples import generate
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


@app.command("emulate")
def emulate_command(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="DuckDB file to record accepted batches in (tables received_batches, "
            "received_requests; view received_events). Batches already recorded there count "
            "for de-duplication.",
        ),
    ] = None,
    reset: Annotated[bool, typer.Option(help="Empty the --db record first.")] = False,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="MPARTICLE_API_KEY", help="API key to accept.", show_default=False),
    ] = None,
    api_secret: Annotated[
        str | None,
        typer.Option(
            envvar="MPARTICLE_API_SECRET", help="API secret to accept.", show_default=False
        ),
    ] = None,
    latency_ms: Annotated[int, typer.Option(help="Added to every response.")] = 0,
    rate_limit: Annotated[
        float | None,
        typer.Option(help="Batches/s allowed; over it: 429 with Retry-After. Default: none."),
    ] = None,
    share_429: Annotated[
        float, typer.Option(help="Share of requests answered 429 with Retry-After.")
    ] = 0.0,
    share_503: Annotated[float, typer.Option(help="Share of requests answered 503.")] = 0.0,
    share_drop: Annotated[
        float,
        typer.Option(help="Share of requests processed, then dropped without an answer."),
    ] = 0.0,
    retry_after: Annotated[int, typer.Option(help="Retry-After seconds of random 429s.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the random faults.")] = 0,
    script: Annotated[
        str | None,
        typer.Option(
            help="Forced responses to the first requests, in order, comma-separated: "
            "429, 429:N (Retry-After N), 429-accel, 503, 400, 401, 403, drop, drop-after, "
            "slow:S, 202.",
        ),
    ] = None,
    url_file: Annotated[
        Path | None,
        typer.Option(help="Write the base URL to this file once listening (removed on exit)."),
    ] = None,
) -> None:
    """Run a local Events API that checks every batch, injects faults and records what arrives.

    Runs until Ctrl-C or SIGTERM, then prints a one-line summary. Point `loader push` at
    the printed URL to rehearse a backfill.
    """
    import signal
    import threading

    from loader.emulator.server import EmulatorConfig, serve

    if not api_key or not api_secret:
        raise fail(
            LoaderError(
                "the emulator needs credentials to check: pass --api-key and --api-secret "
                "or set MPARTICLE_API_KEY and MPARTICLE_API_SECRET"
            )
        )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def announce(emulator) -> None:
        for line in emulator.describe():
            out.print(line, markup=False)
        out.print("  Ctrl-C or SIGTERM to stop", markup=False)
        out.file.flush()

    try:
        config = EmulatorConfig(
            api_key=api_key,
            api_secret=api_secret,
            db_path=db,
            latency_ms=latency_ms,
            rate_limit=rate_limit,
            share_429=share_429,
            share_503=share_503,
            share_drop=share_drop,
            seed=seed,
            port=port,
            retry_after_s=retry_after,
            reset_db=reset,
            keep_in_memory=False,
        )
        script_entries = [entry.strip() for entry in (script or "").split(",") if entry.strip()]
        emulator = serve(config, stop, script=script_entries, url_file=url_file, on_ready=announce)
    except LoaderError as exc:
        raise fail(exc) from None
    out.print(f"emulator stopped: {emulator.summary()}", markup=False)


@app.command("plan-check")
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

    Lists, per event type and name, the replay events the plan would block again (unplanned
    events, unplanned attributes) or flag as invalid. Exits 1 when some would be blocked.
    """
    from rich.table import Table

    from loader.audit.data_plan_check import check_replay_set, load_plan

    try:
        plan_version = load_plan(plan, version)
        con = connect(settings.warehouse_path(), read_only=True)
        with con:
            result = check_replay_set(con, plan_version)
    except LoaderError as exc:
        raise fail(exc) from None

    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        style = {"unplanned": "red", "unplanned_attributes": "red", "invalid": "yellow"}
        table = Table(title=f"Replay set against {result.plan_id} v{result.version}")
        for column in ("status", "type", "name", "events"):
            justify = "right" if column == "events" else "left"
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
            color = style.get(row.status, "")
            status = f"[{color}]{row.status}[/]" if color else row.status
            table.add_row(status, kind, row.name or "", str(row.events), problems)
        if table.row_count:
            out.print(table)
        summary = result.as_dict()["events"]
        out.print(
            f"events: {summary['ok']} pass, {summary['unplanned']} unplanned (blocked again), "
            f"{summary['unplanned_attributes']} with unplanned attributes (removed again), "
            f"{summary['invalid']} invalid (delivered, flagged), "
            f"{summary['not_plannable']} of types plans do not validate"
        )
        for note in result.notes:
            err.print(f"[yellow]note:[/] {note}")
    if result.would_block:
        if not as_json:
            err.print(
                "Some replay events would be blocked again. Fix them (models/fixes) or update "
                "the plan, then run dbt build and this check again."
            )
        raise typer.Exit(1)


ProjectDirOption = Annotated[
    Path, typer.Option("--project-dir", help="The dbt project's folder.", file_okay=False)
]


@app.command("new-fix")
def new_fix_command(
    name: Annotated[str, typer.Argument(help="What the fix does, e.g. rename_checkout_event.")],
    project_dir: ProjectDirOption = Path("."),
) -> None:
    """Scaffold a fix model, its description and a unit test, appended to var `fixes`."""
    from loader.fixes.scaffold import new_fix

    try:
        created = new_fix(project_dir, name)
    except LoaderError as exc:
        raise fail(exc) from None
    where = f"after {created.after}" if created.after else "first"
    out.print(f"created {created.sql_path}", markup=False)
    out.print(f"added its description and a unit-test skeleton to {created.yml_path}", markup=False)
    out.print(
        f"added {created.model} to var fixes in dbt_project.yml (position {created.position}, "
        f"{where})\n\nNext:\n"
        "  1. Find the symptom with SQL, e.g. `select event_name, custom_event_type, count(*) "
        "from int_events__classified group by all` (docs/fixes.md).\n"
        f"  2. Edit {created.sql_path}: replace the no-op `event_name as event_name` with fix "
        "macros or SQL.\n"
        f"  3. Edit {created.yml_path}: the description, then the unit test's given and "
        "expected rows.\n"
        "  4. Check: `loader lint`, then `dbt build`, then `select * from fix_summary`.",
        markup=False,
    )


@app.command("lint")
def lint_command(project_dir: ProjectDirOption = Path(".")) -> None:
    """Check the compiled SQL of every fix in var `fixes` (sqlglot, DuckDB dialect).

    A fix is exactly one SELECT, reads only ref()s (its chain input first), references
    only known columns, returns every chain column, and passes replay_key, user_key and
    timestamp_unixtime_ms through unchanged. Exits 1 when a fix breaks a rule.
    """
    from loader.fixes.lint import lint_project

    try:
        result = lint_project(project_dir)
    except LoaderError as exc:
        raise fail(exc) from None
    for problem in result.problems:
        out.print(str(problem), markup=False)
    count = len(result.fixes)
    if result.problems:
        err.print(f"{len(result.problems)} problem(s) in the fix chain ({count} fixes)")
        raise typer.Exit(1)
    out.print(f"{count} fixes checked: no problems")


@app.command("sql")
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
        int, typer.Option(help="Rows shown per result in table format (0: all).")
    ] = 100,
    no_ledger: Annotated[
        bool, typer.Option("--no-ledger", help="Do not attach the ledger.")
    ] = False,
) -> None:
    """Query the warehouse and the send ledger together, read-only, in one DuckDB session.

    The ledger (BACKFILL_LEDGER) is attached as `ledger` when its file exists:
    `select * from ledger.runs`. Standard audit queries are in analyses/.
    """
    import csv
    import sys

    from rich.table import Table

    from loader.audit.sql_session import is_complete, open_session, parse_variables, read_query, run

    output = output.lower()
    if output not in ("table", "csv", "json"):
        raise fail(LoaderError(f"--format {output}: use table, csv or json"))
    limit = max_rows if output == "table" and max_rows > 0 else None

    def show(sql: str) -> None:
        for result in run(con, sql, max_rows=limit):
            if output == "csv":
                writer = csv.writer(sys.stdout, lineterminator="\n")
                writer.writerow(result.columns)
                writer.writerows(result.rows)
            elif output == "json":
                sys.stdout.write(result.to_json().decode() + "\n")
            else:
                table = Table(show_lines=False, highlight=False)
                for column in result.columns:
                    table.add_column(column, overflow="fold")
                for row in result.rows:
                    table.add_row(*("NULL" if v is None else str(v) for v in row))
                out.print(table)
                more = result.total_rows - len(result.rows)
                note = f", showing {len(result.rows)} (--max-rows 0 for all)" if more else ""
                err.print(f"{result.total_rows} rows{note}", style="dim")

    try:
        sql = read_query(query) if query is not None else None
        ledger = None if no_ledger else settings.ledger_path()
        con = open_session(settings.warehouse_path(), ledger, parse_variables(variables or []))
    except LoaderError as exc:
        raise fail(exc) from None
    with con:
        attached = bool(
            con.execute(
                "select count(*) from duckdb_databases() where database_name = 'ledger'"
            ).fetchone()[0]
        )
        if sql is None and not sys.stdin.isatty():
            sql = sys.stdin.read()
        if sql is not None:
            try:
                show(sql)
            except LoaderError as exc:
                raise fail(exc) from None
            return
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        ledger_note = "ledger attached as `ledger`" if attached else "no ledger attached"
        err.print(
            f"{settings.warehouse_path()} (read-only), {ledger_note}. "
            "End statements with ';'. Ctrl-D to quit."
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
                    err.print(f"[bold red]error:[/] {exc}")
                buffer = ""


@app.command("report")
def report_command(
    out_path: Annotated[
        Path, typer.Option("--out", help="HTML file to write.", dir_okay=False)
    ] = Path("report.html"),
) -> None:
    """Write a self-contained HTML report: the replay set and its risks, and after a push
    what the ledger recorded. No network assets: it opens offline, and can be mailed.
    """
    from loader.audit.report import write_report

    try:
        summary = write_report(settings.warehouse_path(), settings.ledger_path(), out_path)
    except LoaderError as exc:
        raise fail(exc) from None
    push = "with the push ledger" if summary.has_push else "no push recorded yet"
    out.print(f"wrote {out_path}: {summary.events_to_replay} events to replay, {push}")
    for warning in summary.warnings:
        err.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)


PodOption = Annotated[
    str,
    typer.Option(help="mParticle pod to send to: us1, us2, eu1 or au1.", case_sensitive=False),
]


@app.command("push")
def push_command(
    pod: PodOption = "us1",
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="Base URL instead of a pod, e.g. http://127.0.0.1:8080/v2 for the emulator. "
            "Requests go to BASE_URL/bulkevents.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Plan and build every request, send nothing (no credentials)."
        ),
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="With --dry-run: write the exact request bodies, plan.json and "
            "rejected.ndjson to this folder.",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Concurrent requests.")] = 8,
    rate: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Batches per second, shared by all workers (mParticle's default limit is 270).",
        ),
    ] = 250.0,
    max_retries: Annotated[
        int, typer.Option(min=0, help="Retries of a request after 5xx, timeouts, drops.")
    ] = 8,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for an answer before retrying.")
    ] = 30.0,
    resend_changed: Annotated[
        bool,
        typer.Option(
            "--resend-changed",
            help="Also send events whose content changed after they were acknowledged "
            "(or after an unanswered send). Downstream sees them twice.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Send the replay set (replay_events) to the Events API, recording every send in the ledger.

    Runs again safely: acknowledged events are skipped, interrupted batches are resent with
    the same source_request_id. Credentials come from MPARTICLE_API_KEY and
    MPARTICLE_API_SECRET. Exits 1 when a batch failed or was refused.
    """
    from loader.push.destinations.events_api import Credentials, endpoint_url
    from loader.push.runner import PushOptions, push
    from loader.push.runner import dry_run as plan_only

    if out_dir is not None and not dry_run:
        raise fail(LoaderError("--out goes with --dry-run (a push records sends in the ledger)"))
    try:
        options = PushOptions(
            endpoint=endpoint_url(pod, endpoint),
            workers=workers,
            rate=rate,
            max_retries=max_retries,
            timeout_s=timeout,
            resend_changed=resend_changed,
        )
        if dry_run:
            report = plan_only(settings.warehouse_path(), settings.ledger_path(), options, out_dir)
        else:
            credentials = Credentials.from_env()
            display = _PushDisplay(enabled=not as_json and out.is_terminal)
            with display:
                report = push(
                    settings.warehouse_path(),
                    settings.ledger_path(),
                    options,
                    credentials,
                    on_planned=None if as_json else display.planned,
                    on_progress=display.update,
                )
    except KeyboardInterrupt:
        err.print("interrupted: run `loader push` again to resume (nothing is sent twice)")
        raise typer.Exit(130) from None
    except LoaderError as exc:
        raise fail(exc) from None

    if as_json:
        out.print_json(json.dumps(report.as_dict(), default=str))
    else:
        if dry_run:
            _print_plan(report)
        _print_outcome(report)
    if report.status == "stopped":
        raise typer.Exit(2)
    if not report.ok:
        raise typer.Exit(1)


def _print_plan(report) -> None:
    plan = report.plan
    where = "would go" if report.dry_run else "go"
    out.print(
        f"[bold]Plan:[/] {report.events_planned} events of {plan.users} users in "
        f"{report.batches_planned} batches, {report.requests_planned} requests "
        f"({report.body_bytes / 1e6:.2f} MB) {where} to {report.endpoint}/bulkevents"
    )
    out.print(
        f"  replay set {plan.replay_events} events: {plan.new} new, {plan.resumed} resumed "
        f"({plan.resumed_batches} unfinished batches sent again with their ids), "
        f"{plan.acknowledged_before} already acknowledged"
    )
    if plan.events_by_type:
        types = ", ".join(f"{name} {count}" for name, count in plan.events_by_type.items())
        out.print(f"  by type: {types}")
    if plan.oldest_event_days is not None:
        out.print(f"  oldest event: {plan.oldest_event_days:g} days old")
    if plan.warn_age_days is None:
        from loader.build_settings import REBUILD_FOR_AGE_CHECKS

        err.print(f"[yellow]note:[/] {REBUILD_FOR_AGE_CHECKS}")
    if plan.older_than_warn_days:
        err.print(
            f"[yellow]warning:[/] {plan.older_than_warn_days} events are older than "
            f"{plan.warn_age_days} days: mParticle advises replaying within 2 weeks; many "
            "downstream tools drop older data"
        )
    if plan.older_than_max_days:
        err.print(
            f"[yellow]warning:[/] {plan.older_than_max_days} events are older than "
            f"{plan.max_age_days} days: the Events API is for data up to 30 days old"
        )
    for note, count in plan.data_plan_notes.items():
        out.print(f"  data plan: {count} events: {note}")
    if plan.events_by_identity_risk:
        risks = ", ".join(f"{name} {count}" for name, count in plan.events_by_identity_risk.items())
        out.print(f"  identity risk: {risks} (events)")
    high_risk = plan.events_by_identity_risk.get("high", 0)
    if high_risk:
        err.print(
            f"[yellow]warning:[/] {high_risk} events belong to users with neither an MPID nor a "
            "login identity: mParticle may create new profiles for them (extra MTUs). "
            "Build with --vars '{exclude_high_risk_users: true}' to skip them."
        )
    if plan.with_user_attributes:
        err.print(
            f"[yellow]warning:[/] {plan.with_user_attributes} events carry blocked user "
            "attributes (var replay_blocked_user_attributes): they overwrite the profile's "
            "current values, which may be newer"
        )
    changed = plan.changed + plan.in_doubt
    if changed:
        examples = ", ".join(plan.changed_examples)
        if plan.resend_changed:
            err.print(
                f"[yellow]warning:[/] sending {changed} events again whose content changed "
                f"after they were sent (e.g. {examples}): downstream sees them twice"
            )
        else:
            err.print(
                f"[yellow]note:[/] {plan.changed} events changed after they were acknowledged"
                f" and {plan.in_doubt} after an unanswered send (e.g. {examples}); not sent. "
                "--resend-changed sends them again (downstream then sees them twice)."
            )
    if plan.rejected_before:
        err.print(
            f"[yellow]note:[/] {plan.rejected_before} events were refused before with the same "
            "content; not sent (see `loader status`)"
        )
    if report.events_rejected_locally:
        err.print(
            f"[red]{report.events_rejected_locally} events fail the local batch checks[/] "
            "and are not sent:"
        )
        for reason, count in sorted(report.local_rejections.items(), key=lambda r: -r[1])[:10]:
            err.print(f"  {count} events: {reason}", markup=False)
    if report.out_dir:
        out.print(f"  request bodies, plan.json and rejected.ndjson written to {report.out_dir}")


def _print_outcome(report) -> None:
    if report.dry_run:
        return
    p = report.progress
    out.print(
        f"[bold]Run {report.run_id} {report.status}:[/] {p.events_acknowledged} events in "
        f"{p.batches_acknowledged} batches acknowledged, {p.batches_failed} batches failed, "
        f"{p.batches_rejected} refused by mParticle, {report.events_rejected_locally} events "
        f"refused locally; {p.http_requests} HTTP requests in {report.elapsed_s:.1f} s"
    )
    for failure in report.failures[:10]:
        err.print(
            f"  {failure.status}: {failure.batches} batches, {failure.events} events: "
            f"{failure.error}",
            markup=False,
        )
    if report.message:
        err.print(
            f"[bold red]error:[/] {report.message}"
            if report.status == "stopped"
            else report.message
        )
    if p.batches_failed:
        err.print("Failed batches are sent again, with the same ids, by the next `loader push`.")


class _PushDisplay:
    """The plan, then a progress bar while sending (on a terminal only)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = None
        self.task = None

    def __enter__(self) -> _PushDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def planned(self, report) -> None:
        _print_plan(report)
        if not self.enabled or not report.batches_planned:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events, {task.fields[batches]} batches, {task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=out,
        )
        self.task = self.progress.add_task(
            "send", total=report.events_planned, batches="0", rate="0 batches/s"
        )
        self.progress.start()

    def update(self, progress) -> None:
        if self.progress is None:
            return
        import time

        elapsed = max(time.monotonic() - progress.started, 1e-6)
        done = progress.batches_acknowledged + progress.batches_failed + progress.batches_rejected
        self.progress.update(
            self.task,
            completed=progress.events_acknowledged
            + progress.events_failed
            + progress.events_rejected,
            batches=f"{done}/{progress.batches_total}",
            rate=f"{progress.batches_acknowledged / elapsed:.0f} batches/s",
        )


@app.command("status")
def status_command(as_json: JsonOption = False) -> None:
    """What the ledger recorded: per run, and events sent, pending, failed (with reasons).

    Also says what the next `loader push` would send, when the warehouse can be read.
    """
    from rich.table import Table

    from loader.push.status import status

    try:
        result = status(settings.ledger_path(), settings.warehouse_path())
    except LoaderError as exc:
        raise fail(exc) from None
    if as_json:
        out.print_json(json.dumps(result.as_dict(), default=str))
        return
    if not result.runs:
        out.print(f"no push recorded in {settings.ledger_path()} yet")
    else:
        endpoints = sorted({run.endpoint for run in result.runs})
        table = Table(title=f"Runs in {result.ledger} (to {', '.join(endpoints)})")
        for column in ("run", "started (UTC)", "status", "acked", "failed", "refused", "HTTP"):
            table.add_column(column, justify="left" if column == "status" else "right")
        for run in result.runs:
            table.add_row(
                str(run.run_id),
                str(run.started_at)[:16],
                run.status,
                str(run.events_acknowledged),
                str(run.events_failed),
                str(run.events_rejected),
                str(run.http_requests),
            )
        out.print(table)
        out.print("(events per run; HTTP: requests made, retries included)", style="dim")
    events = result.events
    out.print(
        f"events: {events.acknowledged} acknowledged, {events.pending} pending, "
        f"{events.failed} failed (sent again by the next push), {events.rejected} rejected"
    )
    for failure in result.failures:
        err.print(
            f"  {failure.status}: {failure.events} events in {failure.batches} batches: "
            f"{failure.error}",
            markup=False,
        )
    replay = result.replay_set
    if result.replay_set_unavailable is not None:
        err.print(f"replay set: not read ({result.replay_set_unavailable})", markup=False)
    elif replay is not None:
        out.print(
            f"replay set: {replay.events} events; next push sends {replay.to_send} "
            f"({replay.new} new, {replay.resumed} resumed); "
            f"{replay.changed_after_acknowledgement} changed after acknowledgement, "
            f"{replay.in_doubt} in doubt, {replay.rejected_before} refused before"
        )
