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
