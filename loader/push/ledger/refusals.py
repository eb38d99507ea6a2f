"""The stable code and reason of a recorded message (`batches.error_code`, `error_reason`)."""

from __future__ import annotations

from typing import Any

from loader.events_api.reasons import classify


def code(error: str | None) -> str | None:
    refusal = classify(error)
    return None if refusal is None else refusal.code


def reason(error: str | None) -> str | None:
    refusal = classify(error)
    return None if refusal is None else refusal.reason


def codes_relation(errors: list[str]) -> tuple[str, list[list[Any]]]:
    """Messages with their code and reason, as a relation (SQL and its parameters)."""
    sql = (
        "select unnest(?::varchar[]) as error, unnest(?::varchar[]) as code, "
        "unnest(?::varchar[]) as reason"
    )
    return sql, [errors, [code(e) for e in errors], [reason(e) for e in errors]]
