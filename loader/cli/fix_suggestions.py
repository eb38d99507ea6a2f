"""`loader suggest-fixes`: fixes proposed per blocked reason; `--accept NAME` writes one."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loader.cli.common import JsonOption, ProjectDirOption, cell, handles_loader_errors, out

if TYPE_CHECKING:
    from rich.table import Table

    from loader.audit.fix_suggestions import Suggestion, Suggestions


@handles_loader_errors
def suggest_fixes_command(
    plan: Annotated[
        Path | None,
        typer.Argument(
            help="Data plan JSON as mParticle exports it (as for plan-check). Without it, "
            "what is planned is judged by what the plan let through.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(help="Plan version, when the file holds a whole plan (default: latest)."),
    ] = None,
    accept: Annotated[
        list[str] | None,
        typer.Option(
            "--accept",
            help="Write this suggestion as a fix (model, description, unit test of real rows "
            "with its expect recorded) appended to var fixes. Repeatable.",
            show_default=False,
        ),
    ] = None,
    project_dir: ProjectDirOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Propose a fix per blocked reason of the warehouse (BACKFILL_DUCKDB), with its row count: a rename for a name close to a planned one, a custom_event_type the plan expects, a cast for a type the plan expects otherwise, a drop for an attribute nothing plans, a skip for an event nothing plans.

    Nothing is written until a suggestion is accepted by name with --accept.
    """  # noqa: E501
    from loader import settings
    from loader.audit.data_plan_check import load_plan
    from loader.audit.fix_suggestions import suggest_fixes
    from loader.fixes.chain import read_chain

    plan_version = load_plan(plan, version) if plan is not None else None
    warehouse = settings.warehouse_path()
    found = suggest_fixes(warehouse, plan_version)
    if accept:
        chosen = [found.named(name) for name in accept]  # every name checked before writing
        for suggestion in chosen:
            accept_suggestion(project_dir, warehouse, suggestion)
        return
    if as_json:
        out.print_json(json.dumps(found.as_dict()))
        return
    print_suggestions(
        found, set(read_chain(project_dir)), accept_command(plan, version, project_dir)
    )


def accept_command(plan: Path | None, version: int | None, project_dir: Path) -> str:
    """The command line that accepts a suggestion, NAME left to fill in."""
    words = ["loader", "suggest-fixes"]
    if plan is not None:
        words.append(str(plan))
    if version is not None:
        words += ["--version", str(version)]
    if project_dir != Path("."):
        words += ["--project-dir", str(project_dir)]
    return " ".join(shlex.quote(word) for word in words) + " --accept {name}"


def accept_suggestion(project_dir: Path, warehouse: Path, suggestion: Suggestion) -> None:
    from loader.fixes.suggested_fix import write_fix

    written = write_fix(
        project_dir,
        warehouse,
        suggestion.name,
        sql=suggestion.sql(),
        description=suggestion.description,
        predicate=suggestion.predicate,
    )
    created = written.created
    out.print(f"accepted {suggestion.name}: {suggestion.change}", markup=False)
    out.print(f"created {created.sql_path}", markup=False)
    out.print(
        f"added its description and unit test {written.test.test} to {created.yml_path}: "
        f"{written.given_rows} real row(s) it changes (pseudonymized) and one it leaves alone, "
        f"the expect recorded from the fix's output ({written.test.changed_rows} row(s) "
        "changed)",
        markup=False,
    )
    out.print(
        f"added {created.model} to var fixes in dbt_project.yml (position {created.position})",
        markup=False,
    )
    for note in written.test.notes:
        out.print(f"note: {note}", markup=False)
    out.print("Next: review the fix, then `loader lint` and `dbt build`.\n", markup=False)


def print_suggestions(found: Suggestions, chain: set[str], command: str) -> None:
    source = f"data plan {found.plan}" if found.plan else "the block metadata alone (no data plan)"
    if found.suggestions:
        out.print(suggestions_table(found, chain, source))
    else:
        out.print(f"No suggestion from {source}.", markup=False)
    if found.open:
        out.print(open_table(found))
    share = f" ({found.covered_rows / found.blocked_rows:.0%})" if found.blocked_rows else ""
    resolved = f"; {found.resolved_rows} replay unchanged under {found.plan}" if found.plan else ""
    casts = f"; the casts change {found.cast_rows}" if found.cast_rows else ""
    out.print(
        f"blocked rows: {found.blocked_rows}; the suggestions fix the blocks of "
        f"{found.covered_rows}{share}{resolved}{casts}",
        markup=False,
    )
    if not found.plan and any(reason.needs_plan for reason in found.open):
        out.print(
            "Drops, skips and casts need a data plan: run `loader suggest-fixes PLAN.json` with "
            "the plan version the replay is sent under.",
            markup=False,
        )
    pending = [s for s in found.suggestions if s.model not in chain]
    if pending:
        out.print("\nAccept one (nothing is written until you do):", markup=False)
        for suggestion in pending:
            out.print("  " + command.format(name=suggestion.name), markup=False)


def suggestions_table(found: Suggestions, chain: set[str], source: str) -> Table:
    from rich.table import Table

    table = Table(title=cell(f"Fixes suggested from {source}"))
    table.add_column("name", no_wrap=True)
    table.add_column("blocked reason")
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("suggested fix")
    table.add_column("status", no_wrap=True)
    for s in found.suggestions:
        status = f"accepted ({s.model})" if s.model in chain else "not applied"
        table.add_row(cell(s.name), cell(s.reason), cell(s.rows), cell(s.change), cell(status))
    return table


def open_table(found: Suggestions) -> Table:
    from rich.table import Table

    table = Table(title=cell("Blocked reasons without a suggestion"))
    table.add_column("blocked reason")
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("why")
    for reason in found.open:
        table.add_row(cell(reason.reason), cell(reason.rows), cell(reason.why))
    return table
