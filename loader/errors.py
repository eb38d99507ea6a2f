"""Errors the CLI turns into one clear message and a non-zero exit."""


class LoaderError(Exception):
    """A failure the user can act on: `str(err)` says what happened and what to do."""

    exit_code = 2


class WarehouseLocked(LoaderError):
    """Another process (usually `dbt build`) holds the DuckDB file."""


class MissingReplaySet(LoaderError):
    """The replay model has not been built yet."""
