"""The send ledger: what was planned, sent and acknowledged, in its own DuckDB file.

It survives deleting and rebuilding the warehouse, and joins to the replay set on
`replay_key` (and `destination`: each destination's events are kept apart under the name
the caller gives). Tables and views are documented in README.md ("The send ledger");
their names and columns are stable. The API secret never goes in: runs keep the endpoint
and a fingerprint of the API key.

- `store`: the `Ledger` (open, record, read) and the rows it returns;
- `schema`: the schema version and the migrations from every earlier ledger;
- `sql/`: the schema, the views and the migrations, as SQL;
- `refusals`: the stable code and reason of a recorded message.
"""

from loader.push.attempts import Attempt
from loader.push.ledger.schema import SCHEMA_VERSION, LedgerVersionError
from loader.push.ledger.store import (
    ACKNOWLEDGED,
    EVENTS_API,
    FAILED,
    IN_FLIGHT,
    LEDGER_VIEWS,
    OPEN_STATUSES,
    PLANNED,
    REJECTED,
    RUN_COUNTS,
    SERVICES,
    SUPERSEDED,
    BatchCount,
    EventCounts,
    FailureRow,
    Holdings,
    Ledger,
    LedgerError,
    LedgerLocked,
    RunRow,
    api_key_fingerprint,
    attach_ledger,
    now,
    outcome_label,
)

__all__ = [
    "Attempt",
    "ACKNOWLEDGED",
    "FAILED",
    "IN_FLIGHT",
    "LEDGER_VIEWS",
    "OPEN_STATUSES",
    "PLANNED",
    "REJECTED",
    "RUN_COUNTS",
    "SCHEMA_VERSION",
    "SUPERSEDED",
    "EVENTS_API",
    "SERVICES",
    "BatchCount",
    "EventCounts",
    "FailureRow",
    "Holdings",
    "Ledger",
    "LedgerError",
    "LedgerLocked",
    "LedgerVersionError",
    "RunRow",
    "api_key_fingerprint",
    "attach_ledger",
    "now",
    "outcome_label",
]
