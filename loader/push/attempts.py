"""The record of one HTTP attempt: written by the transport, kept by the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class Attempt:
    """One HTTP attempt, as the ledger's `requests` table keeps it."""

    request_no: int
    attempt: int
    sent_at: datetime
    latency_ms: int | None
    status_code: int | None
    outcome: str
    source_request_ids: list[str]
    body_bytes: int
    retry_after: str | None = None
    rate_limit_exceeded: str | None = None
    rate_limit_percentage_used: str | None = None
    error: str | None = None
    wait_ms: int | None = None
