"""Paths, credentials and resource limits, from the environment."""

import os
import re
from pathlib import Path

from loader.errors import LoaderError

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


def read_secret_file(path: str, option: str = "--api-secret-file") -> str:
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
        raise LoaderError(f"{option} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise LoaderError(f"{option} {path}: not UTF-8 text") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret.strip():
        raise LoaderError(f"{option} {path}: the file is empty")
    if "\n" in secret or "\r" in secret:
        raise LoaderError(
            f"{option} {path}: the file holds more than one line; put the secret "
            "alone on its first line"
        )
    return secret


MEMORY_LIMIT_ENV = "BACKFILL_MEMORY_LIMIT"
TEMP_DIRECTORY_ENV = "BACKFILL_TEMP_DIRECTORY"
# Fits an 8 GB machine with room for the OS and the loader's Python side.
DEFAULT_MEMORY_LIMIT = "4GB"
# Ingest and push stream: DuckDB needs little for them (a sort spills), and more only
# grows their footprint. Their sessions take the lower of this and the limit.
STREAMING_MEMORY_CAP = "512MB"
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*", re.IGNORECASE)
_UNIT_BYTES = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNIT_BYTES |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


class InvalidSetting(LoaderError):
    """An environment setting that cannot be used; the message says which and what to set."""


def memory_limit(*, streaming: bool = False) -> str:
    """The memory limit of every DuckDB session (loader and dbt): `BACKFILL_MEMORY_LIMIT`,
    a size such as 4GB, 512MB or 16GiB. Past it DuckDB spills to `temp_directory()`.
    A `streaming` session (ingest, push) takes at most `STREAMING_MEMORY_CAP`."""
    raw = os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT
    match = _SIZE.fullmatch(raw)
    if not match or float(match.group(1)) <= 0:
        raise InvalidSetting(
            f"{MEMORY_LIMIT_ENV}={raw!r} is not a memory size: set it to a number and a "
            f"unit, such as 4GB, 512MB or 16GiB (default {DEFAULT_MEMORY_LIMIT})."
        )
    if streaming and _bytes(raw) > _bytes(STREAMING_MEMORY_CAP):
        return STREAMING_MEMORY_CAP
    return f"{match.group(1)}{match.group(2).upper().replace('I', 'i')}"


def _bytes(size: str) -> float:
    match = _SIZE.fullmatch(size)
    assert match is not None
    return float(match.group(1)) * _UNIT_BYTES[match.group(2).upper()]


def temp_directory() -> Path:
    """Where DuckDB spills past the memory limit: `BACKFILL_TEMP_DIRECTORY`, by default a
    folder beside the warehouse (`backfill.duckdb.tmp/`), so it shares the warehouse's disk."""
    configured = os.environ.get(TEMP_DIRECTORY_ENV)
    if configured:
        return Path(configured)
    warehouse = warehouse_path()
    return warehouse.with_name(warehouse.name + ".tmp")


REQUIRE_SUPPRESSION_LIST_ENV = "BACKFILL_REQUIRE_SUPPRESSION_LIST"


def require_suppression_list() -> bool:
    """`BACKFILL_REQUIRE_SUPPRESSION_LIST` (true/1/yes): `loader push` refuses a replay set
    built without a suppression list."""
    raw = (os.environ.get(REQUIRE_SUPPRESSION_LIST_ENV) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise InvalidSetting(
        f"{REQUIRE_SUPPRESSION_LIST_ENV}={raw!r}: set it to true or false (default false)."
    )
