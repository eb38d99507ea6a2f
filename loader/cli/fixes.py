"""`loader new-fix`, `loader remove-fix` and `loader lint`: the dbt fix chain."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loader.cli.common import ProjectDirOption, handles_loader_errors, out

if TYPE_CHECKING:
    from loader.fixes.scaffold import NewFix


@handles_loader_errors
def new_fix_command(
    name: Annotated[str, typer.Argument(help="What the fix does, e.g. rename_checkout_event.")],
    project_dir: ProjectDirOption = Path("."),
    context: Annotated[
        bool,
        typer.Option(
            "--context",
            help="A context fix (batch-level: environment, identities, MPID, device ids, "
            "data plan) in models/context_fixes/, appended to var context_fixes.",
        ),
    ] = False,
    rows: Annotated[
        str | None,
        typer.Option(
            "--rows",
            help="A SQL predicate on int_events__classified: the unit test's given rows are "
            "real rows matching it (pseudonymized) and one it does not match.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="With --rows: at most this many matching rows.")] = 3,
    columns: Annotated[
        str | None,
        typer.Option(
            help="With --rows: the columns to copy, comma-separated (default: event_type, "
            "event_name, custom_event_type, custom_attributes, skip_reason; the predicate's "
            "columns and replay_key are always copied)."
        ),
    ] = None,
) -> None:
    """Scaffold a fix model, its description and a unit test, appended to var `fixes` (with --context: a context fix, appended to var `context_fixes`).

    With --rows, the unit test gives real rows of the warehouse (BACKFILL_DUCKDB), pseudonymized; after writing the fix, `loader fix-test NAME --accept` records its output as the expected rows.
    """  # noqa: E501
    from loader.fixes.scaffold import model_name, new_fix

    test = None
    if rows is not None:
        if context:
            raise typer.BadParameter("--rows is for event fixes, not --context.")
        from loader import settings
        from loader.fixes.real_rows import read_real_rows, test_entry

        asked = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        found = read_real_rows(settings.warehouse_path(), rows, limit=limit, columns=asked)
        test = test_entry(model_name(name), found)
        out.print(
            f"copied {len(found.matching)} row(s) matching the predicate"
            + (" and 1 it does not match" if found.unchanged else "")
            + f" ({', '.join(found.columns)}; identities and personal data pseudonymized)",
            markup=False,
        )
    print_created(
        new_fix(project_dir, name, context=context, test=test), from_rows=test is not None
    )


@handles_loader_errors
def fix_test_command(
    name: Annotated[str, typer.Argument(help="The fix, e.g. rename_checkout_event.")],
    accept: Annotated[
        bool, typer.Option("--accept", help="Write the fix's output as the test's expect.")
    ] = False,
    test: Annotated[
        str | None, typer.Option("--test", help="The unit test, when the fix has several.")
    ] = None,
    project_dir: ProjectDirOption = Path("."),
) -> None:
    """Run a fix on its unit test's given rows and show its output as a diff against the test's expect; with --accept, record it there.

    The warehouse (BACKFILL_DUCKDB) types the given rows. Exits 1 when the output differs and --accept was not given.
    """  # noqa: E501
    from loader import settings
    from loader.fixes.fix_test import fix_test

    result = fix_test(project_dir, name, settings.warehouse_path(), test=test, accept=accept)
    for line in result.diff:
        out.print(line.rstrip("\n"), markup=False)
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    if not result.diff:
        out.print(f"{result.test}: the expected rows are the fix's output", markup=False)
    elif result.written:
        out.print(
            f"recorded the fix's output ({result.changed_rows} row(s) changed) as the expect "
            f"of {result.test}; next: `loader lint`, then `dbt build`",
            markup=False,
        )
    else:
        out.print(
            f"{result.test}: the fix's output differs from the expected rows; check the diff, "
            f"then `loader fix-test {name} --accept` to record it",
            markup=False,
        )
        raise typer.Exit(1)


def print_created(created: NewFix, *, from_rows: bool = False) -> None:
    """What was written, and the next steps."""
    where = f"after {created.after}" if created.after else "first"
    out.print(f"created {created.sql_path}", markup=False)
    out.print(f"added its description and a unit-test skeleton to {created.yml_path}", markup=False)
    if not created.layout_kept:
        out.print(
            f"note: {created.yml_path} was written again from its parsed content (its lists "
            "are not block lists lines can be added to): its comments are gone, its data is "
            "the same",
            markup=False,
        )
    context = created.var == "context_fixes"
    symptom = (
        "select environment, user_identities, count(*) from stg_quarantine__batches group by all"
        if context
        else "select event_name, custom_event_type, count(*) from int_events__classified "
        "group by all"
    )
    no_op = "environment as environment" if context else "event_name as event_name"
    lineage = "int_batches__context_fix_changes" if context else "fix_summary"
    out.print(
        f"added {created.model} to var {created.var} in dbt_project.yml (position "
        f"{created.position}, {where})\n\nNext:\n"
        f"  1. Find the symptom with SQL, e.g. `{symptom}` (docs/fixes.md).\n"
        f"  2. Edit {created.sql_path}: replace the no-op `{no_op}` with fix macros or SQL.\n"
        + (
            f"  3. Edit {created.yml_path}: the description; then `loader fix-test "
            f"{created.model} --accept` records the fix's output on the given rows.\n"
            if from_rows
            else f"  3. Edit {created.yml_path}: the description, then the unit test's given "
            "and expected rows.\n"
        )
        + f"  4. Check: `loader lint`, then `dbt build`, then `select * from {lineage}`.",
        markup=False,
    )


@handles_loader_errors
def lint_command(project_dir: ProjectDirOption = Path(".")) -> None:
    """Check the compiled SQL of every fix of both chains: var `fixes` (event fixes) and var `context_fixes` (context fixes), with sqlglot in DuckDB's dialect.

    A fix is exactly one SELECT, reads only ref()s (its chain input first), references only known columns and returns every chain column. An event fix passes replay_key, user_key and timestamp_unixtime_ms through unchanged; a context fix passes the batch key through, and the user key's inputs (mpid, invalid_mpid, user_identities, device_info, mp_deviceid) unless the fix declares `meta: {changes_identity: true}`. A TODO left from `loader new-fix` is a problem too. Each problem is printed once, as path:line:col. Exits 1 when a fix breaks a rule.
    """  # noqa: E501
    from loader.fixes.lint import lint_project

    result = lint_project(project_dir)
    # the problems and the summary are one report on stdout, a line each, in order
    for problem in result.problems:
        out.print(str(problem), markup=False)
    count = len(result.fixes)
    if result.problems:
        out.print(
            f"{len(result.problems)} problem(s) in the fix chain ({count} fixes)", markup=False
        )
        raise typer.Exit(1)
    out.print(f"{count} fixes checked: no problems", markup=False)


@handles_loader_errors
def remove_fix_command(
    name: Annotated[str, typer.Argument(help="The fix to remove, e.g. rename_checkout_event.")],
    project_dir: ProjectDirOption = Path("."),
    context: Annotated[
        bool, typer.Option("--context", help="A context fix (var context_fixes).")
    ] = False,
) -> None:
    """Remove a fix: its model file, its description and unit tests, its entry in var `fixes` (with --context: a context fix, in var `context_fixes`).

    The undo of `loader new-fix`; comments and the other fixes are left as they are.
    """  # noqa: E501
    from loader.fixes.scaffold import remove_fix

    removed = remove_fix(project_dir, name, context=context)
    if removed.sql_path is not None:
        out.print(f"removed {removed.sql_path}", markup=False)
    parts = [removed.model] if removed.described else []
    if removed.unit_tests:
        tests = ", ".join(removed.unit_tests)
        plural = "s" if len(removed.unit_tests) > 1 else ""
        parts.append(f"{'its ' if parts else ''}unit test{plural} {tests}")
    if parts:
        out.print(f"removed {' and '.join(parts)} from {removed.yml_path}", markup=False)
    if removed.position is not None:
        out.print(
            f"removed {removed.model} from var {removed.var} in dbt_project.yml (it was position "
            f"{removed.position} of {removed.chain_length})",
            markup=False,
        )
    out.print("\nNext: `dbt build` (the replay set is rebuilt without it).", markup=False)
