"""Why a batch was refused or failed: a stable reason apart from its details.

A message such as `batch 0, event 3: data.event_name is 300 characters; the limit is 256`
names a batch, an event, a field and a count. Grouping by such messages gives one group
per event; grouping by their reason gives one. `classify` maps a message (ours, from
loader.events_api.batch_rules and packing, or mParticle's, from an HTTP 4xx body, or the
transport's) to a `Refusal`: a short `code`, a fixed `reason` text for that code, and the
message itself as `detail` (nothing is lost).

A `loader.refusals.Coded` message (a destination's refusal, which says its code where
it is made) keeps its own code and reason: the rules here are for messages without one.

A message of several problems (joined with "; ") gets the codes of its problems joined
with "+", in order. A message no rule knows gets the code `other` and, as its reason, the
message with its numbers and quoted values blanked out (so that such messages still group).
"""

from __future__ import annotations

import functools
import re

from loader.events_api.limits import MAX_BATCH_BYTES, MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES
from loader.refusals import Coded, Refusal

__all__ = ["OTHER", "REASONS", "Refusal", "classify"]

OTHER = "other"


# (code, fixed reason, pattern) in order: the first pattern found in a problem gives its code
RULES: tuple[tuple[str, str, str], ...] = (
    ("event_too_big", "an event is too big for a batch even alone", r"^event is \d+ bytes;"),
    (
        "batch_too_big",
        f"a batch is over the {MAX_BATCH_BYTES // 1024} KB batch size limit",
        r"^batch is \d+ bytes",
    ),
    (
        "request_too_big",
        f"a request body is over the {MAX_REQUEST_BYTES // 1024} KB limit",
        r"^request body is \d+ bytes",
    ),
    (
        "too_many_batches",
        f"a request holds more than {MAX_BATCHES_PER_REQUEST} batches",
        r"^request holds \d+ batches",
    ),
    ("not_json", "not valid JSON, or not the JSON shape expected", r"JSON|takes one batch"),
    ("forbidden_field", "a field that must not be sent in a replay", r"must not be sent"),
    ("unknown_field", "a field the Events API does not know", r"^unknown (batch|event) field"),
    ("bad_environment", "environment missing or not production/development", r"^environment "),
    ("bad_mpid", "mpid is not one 64-bit integer", r"^mpid must be"),
    ("identities_list", "user_identities in the list shape", r"^user_identities must be an obj"),
    ("unknown_identity_type", "an unknown identity type", r"is not a known identity type"),
    (
        "bad_event_type",
        "an event type or custom event type the Events API does not take",
        r"event_type .*(is not a valid|must be one of|is not valid for)",
    ),
    ("missing_field", "a required field is missing or empty", r"is required|missing or empty"),
    ("too_many_attributes", "too many attributes", r"has \d+ attributes; the limit is"),
    ("value_too_long", "a name or value is over its length limit", r"is \d+ characters;"),
    ("timestamp_out_of_range", "a timestamp out of range", r"is out of range"),
    ("wrong_type", "a field has the wrong type", r" must be "),
    ("content_changed", "content changed before it was acknowledged", r"^content changed"),
)
# whole-message reasons of batches that failed (sent again by the next push)
FAILURE_RULES: tuple[tuple[str, str, str], ...] = (
    ("gave_up", "no attempt succeeded, retries exhausted", r"^gave up after \d+ attempts"),
    ("rate_limited", "still rate limited after every wait", r"^still rate limited after"),
    ("run_stopped", "the run stopped before the batch was acknowledged", r"^the run stopped"),
    ("credentials_refused", "mParticle refused the credentials", r"refused the credentials"),
    ("endpoint_error", "the endpoint is wrong (not found or redirected)", r"^the endpoint "),
)
_RULES = [(code, reason, re.compile(pattern)) for code, reason, pattern in RULES]
_FAILURE_RULES = [(code, reason, re.compile(pattern)) for code, reason, pattern in FAILURE_RULES]
_HTTP = re.compile(r"^HTTP \d{3}: ")
_WHERE = re.compile(r"^(batch \d+(, event \d+)?|event \d+): ")
# problems are joined with "; ", which some messages also hold before their limit
_SPLIT = re.compile(r"; (?!the limit is|with its batch context|last error)")
REASONS = {code: reason for code, reason, _ in (*RULES, *FAILURE_RULES)}


# a run's failures often repeat one message; typed: a Coded message is not its plain text
@functools.lru_cache(maxsize=65_536, typed=True)
def classify(message: str | None) -> Refusal | None:
    """The code and fixed reason of `message` (None for no message)."""
    if message is None:
        return None
    if isinstance(message, Coded):
        return message.refusal()
    for code, reason, pattern in _FAILURE_RULES:
        if pattern.search(message):
            return Refusal(code, reason, message)
    problems = [_WHERE.sub("", part) for part in _SPLIT.split(_HTTP.sub("", message, count=1))]
    found = dict.fromkeys(_problem(problem) for problem in problems)  # in order, once each
    return Refusal(
        "+".join(dict.fromkeys(code for code, _ in found)),
        "; ".join(reason for _, reason in found),
        message,
    )


def _problem(text: str) -> tuple[str, str]:
    for code, reason, pattern in _RULES:
        if pattern.search(text):
            return code, reason
    return OTHER, _blank(text)


def _blank(text: str) -> str:
    """`text` with its numbers and quoted values blanked out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '"…"', text)
    return re.sub(r"\d+", "N", text)
