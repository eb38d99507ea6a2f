"""A refusal's stable code, given where the refusal is made.

A destination (or any rule of ours) that refuses a batch says why with a `Coded`
message: the message text as the user reads it (its detail), carrying a stable `code`
and a fixed `reason` for that code. The ledger and the run report take the code from it
as it is; only messages without one (mParticle's 4xx bodies, messages recorded by older
releases) are classified by their text (`loader.events_api.reasons`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    code: str
    reason: str
    detail: str


class Coded(str):
    """A message (the detail) with its stable `code` and the `reason` of that code."""

    code: str
    reason: str

    def __new__(cls, detail: str, code: str, reason: str) -> Coded:
        message = super().__new__(cls, detail)
        message.code = code
        message.reason = reason
        return message

    def refusal(self) -> Refusal:
        return Refusal(self.code, self.reason, str(self))


def coded(detail: str, parts: list[tuple[str, str]]) -> Coded:
    """`detail` with the codes of its problems joined with "+" and their reasons with "; ",
    in order, once each (as several problems of one message are classified)."""
    unique = dict.fromkeys(parts)
    return Coded(
        detail, "+".join(code for code, _ in unique), "; ".join(reason for _, reason in unique)
    )
