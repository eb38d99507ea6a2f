"""Every `loader` help text reads as whole sentences: no hard line break inside a
paragraph (the terminal wraps), whatever the terminal's width."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from loader.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
SENTENCE_END = re.compile(r"[.:!?)\]`]$")


def help_text(*args: str, columns: int) -> str:
    result = CliRunner().invoke(
        app, [*args, "--help"], env={"COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)}
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_command_is_checked():
    assert {"ingest", "new-fix", "remove-fix", "lint", "push", "report", "sql"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_sources_have_no_line_break_inside_a_paragraph(command):
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    texts = [click_command.help or ""] + [
        getattr(p, "help", None) or "" for p in click_command.params
    ]
    for text in texts:
        for paragraph in text.strip().split("\n\n"):
            assert "\n" not in paragraph.strip(), f"{command}: {paragraph!r}"


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_rendered_help_lines_end_sentences_when_nothing_wraps(command):
    """Wide enough that nothing wraps, every line of text ends a sentence, and every row of
    an options table starts with its option (a row without one continues a broken line)."""
    text = help_text(*([command] if command else []), columns=1000)
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith(("╭", "╰")) or line.lstrip().startswith("Usage:"):
            continue
        if line.startswith("│"):
            cells = line.strip("│ ")
            assert cells, line
            assert not re.match(r"\s{10,}", line[1:]), f"{command}: continuation row {line!r}"
            continue
        assert SENTENCE_END.search(line), f"{command}: {line.strip()!r} ends mid-sentence"


def test_lint_help_covers_both_fix_chains():
    text = " ".join(help_text("lint", columns=200).split())
    assert "var `fixes`" in text and "var `context_fixes`" in text
    assert "batch key" in text  # what a context fix must pass through
