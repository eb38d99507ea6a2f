"""What every command shares: the two consoles, option types and the error handler."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from loader.errors import LoaderError

# Data and paths reach these consoles: no emoji codes (`:smile:`) and no highlighting; markup
# only in the project's own text, with every value passed through `esc` (or as `cell`).
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
ProjectDirOption = Annotated[
    Path, typer.Option("--project-dir", help="The dbt project's folder.", file_okay=False)
]

P = ParamSpec("P")
R = TypeVar("R")


def esc(value: object) -> str:
    """`value` as text for a markup string: printed as it is, never read as markup.

    Every value from data, files, paths or exceptions goes through this (an event named
    `Sale [/] promo`, a file `x[/bold]y.txt`, a cell `[red]SKU-1[/red]`).
    """
    return escape(str(value))


def cell(value: object) -> Text:
    """`value` as a table cell or title printed as it is (rich reads plain str as markup)."""
    return Text(str(value))


def print_error(message: object) -> None:
    """`error: <message>` in bold red on stderr, on its own line after what stdout printed
    (when both go to one pipe, stdout's buffer would otherwise come out after it)."""
    out.file.flush()
    err.print(f"[bold red]error:[/] {esc(message)}")


def handles_loader_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a LoaderError raised by `command` into its message and the error's exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LoaderError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None

    return wrapper
