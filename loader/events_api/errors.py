"""The Events API's error body: `{"errors": [{"code": ..., "message": ...}, ...]}`.

The emulator writes it (`error_body`), the loader reads it (`error_messages`).
"""

from __future__ import annotations

import contextlib

import orjson


def error_body(code: str, *messages: str) -> bytes:
    """An error body with one entry per message, all under `code`."""
    return orjson.dumps({"errors": [{"code": code, "message": m} for m in messages]})


def error_messages(body: str | bytes | None) -> list[str]:
    """The message (or, lacking one, the code) of each entry of an error body.

    [] when `body` is not an error body.
    """
    with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
        errors = orjson.loads(body or "").get("errors") or []
        return [str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict)]
    return []
