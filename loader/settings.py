"""Paths and credentials, from the environment."""

import os
from pathlib import Path

WAREHOUSE_ENV = "BACKFILL_DUCKDB"
LEDGER_ENV = "BACKFILL_LEDGER"
DEFAULT_WAREHOUSE = "backfill.duckdb"
DEFAULT_LEDGER = "ledger.duckdb"


def warehouse_path() -> Path:
    """The DuckDB file dbt builds into; `BACKFILL_DUCKDB` overrides it for dbt too."""
    return Path(os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE)


def ledger_path() -> Path:
    """The send ledger, a separate DuckDB file that survives rebuilding the warehouse."""
    return Path(os.environ.get(LEDGER_ENV) or DEFAULT_LEDGER)


def read_secret_file(path: str) -> str:
    """The API secret held in file `path` (`-`: the first line of standard input), without
    one trailing newline.

    Raises `LoaderError` naming the file (never its content) when it cannot be read, is
    empty, or holds more than one line.
    """
    import sys

    from loader.errors import LoaderError

    try:
        text = sys.stdin.readline() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LoaderError(f"--api-secret-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise LoaderError(f"--api-secret-file {path}: not UTF-8 text") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret.strip():
        raise LoaderError(f"--api-secret-file {path}: the file is empty")
    if "\n" in secret or "\r" in secret:
        raise LoaderError(
            f"--api-secret-file {path}: the file holds more than one line; put the secret "
            "alone on its first line"
        )
    return secret
