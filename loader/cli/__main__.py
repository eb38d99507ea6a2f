"""`python -m loader.cli`: the same as the `loader` command."""

from loader.cli import app

app()
