"""The `loader` command line: options, messages and exit codes. Work happens in the library."""

from __future__ import annotations

import typer

from loader.cli.audit import export_command, plan_check_command, report_command, sql_command
from loader.cli.emulate import emulate_command
from loader.cli.fix_suggestions import suggest_fixes_command
from loader.cli.fixes import fix_test_command, lint_command, new_fix_command, remove_fix_command
from loader.cli.ingest import ingest_command, sample_command
from loader.cli.push import push_command
from loader.cli.status import status_command
from loader.cli.suppress import suppress_command

app = typer.Typer(
    help="Replay blocked mParticle data: ingest Quarantine Output, then push the dbt-built "
    "replay set to the Events API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Replay blocked mParticle data. Set BACKFILL_DUCKDB to use another warehouse file."""


app.command("ingest")(ingest_command)
app.command("sample")(sample_command)
app.command("suppress")(suppress_command)
app.command("emulate")(emulate_command)
app.command("plan-check")(plan_check_command)
app.command("new-fix")(new_fix_command)
app.command("remove-fix")(remove_fix_command)
app.command("lint")(lint_command)
app.command("fix-test")(fix_test_command)
app.command("suggest-fixes")(suggest_fixes_command)
app.command("sql")(sql_command)
app.command("report")(report_command)
app.command("export")(export_command)
app.command("push")(push_command)
app.command("status")(status_command)
