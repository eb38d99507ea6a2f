"""Values copied from the warehouse into a unit test's YAML: pseudonymized, JSON written so
it compares the same way every time, rendered as one YAML flow mapping a row.

Pseudonymizing keeps customer data out of git. The rules, applied to every value copied:

- identity columns (`IDENTITY_COLUMNS`: replay_key, user_key, mpid, batch_key, event_id,
  source_file) become `<column>-<n>` (mpid and event_id: a fake 64-bit number as text);
- inside JSON columns (custom_attributes, user_attributes, event_data), a member whose name
  looks like personal data (`PII_NAME`: email, phone, name, address, birth date, ip, ids of
  users, devices and advertisers, tokens, ...; `$FirstName` counts as first_name) gets a
  fake value of the same kind: a number stays a number, a string becomes `redacted-<n>`;
- anywhere, a string that looks like an email, an IP address or a phone number becomes a
  fake one: `person-<n>@example.com` (RFC 2606 reserves example.com:
  https://www.rfc-editor.org/rfc/rfc2606), `192.0.2.<n>` or `2001:db8::<n>` (documentation
  ranges: https://www.rfc-editor.org/rfc/rfc5737, https://www.rfc-editor.org/rfc/rfc3849),
  `+1-555-01<nn>`.

The same real value always gets the same fake value within one fixture (a predicate that
compares two rows still sees them equal); `<n>` counts values in the order met. Event
names, types, other attribute values and numbers are kept: the fix reads them.

JSON values are written compactly with their members sorted by name, numbers as the
warehouse holds them: the text Spark's `to_json` writes, and a value a fix leaves alone
comes back on DuckDB with the text given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

IDENTITY_COLUMNS = ("replay_key", "user_key", "mpid", "batch_key", "event_id", "source_file")
NUMERIC_IDENTITIES = ("mpid", "event_id")
JSON_COLUMNS = ("custom_attributes", "user_attributes", "event_data")
PII_NAME = re.compile(
    r"(^|_)(e_?mail|phone|mobile|tel|fax|first_?name|last_?name|full_?name|name|user_?name|"
    r"surname|address|street|city|zip|zip_?code|postal_?code|post_?code|birth_?day|"
    r"birth_?date|dob|date_of_birth|age|gender|ssn|ip|ip_?address|customer_?id|user_?id|"
    r"account_?id|member_?id|mpid|device_?id|das|idfa|idfv|gaid|aaid|advertising_?id|"
    r"push_?token|token|password|passwd|secret|credit_?card|card_?number|iban|latitude|"
    r"longitude|lat|lng|location)($|_)"
)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
IPV4 = re.compile(r"(\d{1,3}\.){3}\d{1,3}")
IPV6 = re.compile(r"[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}")
PHONE = re.compile(r"\+?[\d\s().-]{7,20}")


def snake(name: str) -> str:
    """`$FirstName`, `first-name`, `First Name` -> `first_name`."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.lstrip("$"))
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class Pseudonyms:
    """Stable fake values for one fixture: the same real value, the same fake."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}

    def fake(self, kind: str, real: object, make: Callable[[int], str]) -> str:
        key = (kind, str(real))
        if key not in self.seen:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.seen[key] = make(self.counts[kind])
        return self.seen[key]

    def identity(self, column: str, real: object) -> str | None:
        if real is None:
            return None
        if column in NUMERIC_IDENTITIES:
            return self.fake(column, real, lambda n: str(1_000_000_000_000_000_000 + n))
        return self.fake(column, real, lambda n: f"{column.replace('_', '-')}-{n}")

    def text(self, value: str) -> str:
        """A string that looks like an email, IP or phone number, faked; others kept."""
        stripped = value.strip()
        if EMAIL.fullmatch(stripped):
            return self.fake("email", value, lambda n: f"person-{n}@example.com")
        if IPV4.fullmatch(stripped):
            return self.fake("ipv4", value, lambda n: f"192.0.2.{n % 254 + 1}")
        if ":" in stripped and IPV6.fullmatch(stripped) and stripped.count(":") >= 2:
            return self.fake("ipv6", value, lambda n: f"2001:db8::{n:x}")
        if PHONE.fullmatch(stripped) and sum(c.isdigit() for c in stripped) >= 7:
            return self.fake("phone", value, lambda n: f"+1-555-01{n % 100:02d}")
        return value

    def member(self, name: str, value: Any) -> Any:
        """A JSON member's value: faked when its name looks like personal data."""
        if isinstance(value, dict | list):
            return self.json_value(value)
        if value is None or isinstance(value, bool) or not PII_NAME.search(snake(name)):
            return self.text(value) if isinstance(value, str) else value
        if isinstance(value, int | Decimal):
            return int(self.fake(f"number:{snake(name)}", value, str))
        faked = self.text(value)
        return faked if faked != value else self.fake("pii", value, lambda n: f"redacted-{n}")

    def json_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: self.member(name, item) for name, item in value.items()}
        if isinstance(value, list):
            return [self.json_value(item) for item in value]
        return self.text(value) if isinstance(value, str) else value


def parse_json(text: str) -> Any:
    """JSON text parsed with numbers exact (never through a float)."""
    return json.loads(text, parse_float=Decimal)


def json_text(value: Any) -> str:
    """Compact JSON, members sorted by name, numbers as parsed."""
    if isinstance(value, dict):
        items = (
            f"{json.dumps(k, ensure_ascii=False)}:{json_text(value[k])}" for k in sorted(value)
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def fixture_value(column: str, value: Any, names: Pseudonyms) -> Any:
    """One warehouse value as the fixture holds it."""
    if value is None:
        return None
    if column in IDENTITY_COLUMNS:
        return names.identity(column, value)
    if column in JSON_COLUMNS:
        return json_text(names.json_value(parse_json(str(value))))
    if isinstance(value, str):
        return names.text(value)
    if isinstance(value, list):
        return [names.text(v) if isinstance(v, str) else v for v in value]
    return value


def yaml_scalar(value: Any) -> str:
    """A value as a YAML flow scalar that reads back as the same value (strings quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    text = str(value)
    if "\n" not in text and text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text)


def yaml_row(row: dict[str, Any]) -> str:
    """`{column: value, ...}` on one line."""
    return "{" + ", ".join(f"{name}: {yaml_scalar(value)}" for name, value in row.items()) + "}"
