"""What every command shares: the two consoles, option types and the error handler."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from loader.errors import LoaderError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
ProjectDirOption = Annotated[
    Path, typer.Option("--project-dir", help="The dbt project's folder.", file_okay=False)
]

P = ParamSpec("P")
R = TypeVar("R")


def print_error(message: object) -> None:
    """`error: <message>` in bold red on stderr."""
    err.print(f"[bold red]error:[/] {message}")


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
