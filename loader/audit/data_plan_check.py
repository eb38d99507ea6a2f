"""Check the replay set against a data plan version before sending it.

Reads a plan as mParticle exports it (a data plan with `data_plan_versions`, one version
with `version_document`, or a bare `{"data_points": [...]}`) and validates every replay
event the way mParticle's data planning does:

- an event of a plannable type (custom, screen view, commerce) that matches no data point
  is *unplanned*: blocked again, whole;
- custom attributes (the event's `data.custom_attributes`, the batch's `user_attributes`)
  a data point does not list where its schema says `additionalProperties: false` are
  *unplanned attributes*: removed again. Other fields such a schema does not list (a
  `transaction_id`, a product's `brand`, a `screen_name`) are not removed: they are
  validation violations (*invalid*);
- other JSON-schema failures (type, enum, pattern, range, required) are *invalid*: the
  event is delivered, and the plan reports a violation.

Values are compared the way mParticle does: a string holding a number or a boolean is
valid where the plan expects one, and the other way round.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import orjson
from jsonschema import Draft7Validator, validators

from loader.errors import LoaderError, MissingReplaySet
from loader.warehouse import database_file

PLANNABLE_EVENT_TYPES = {"custom_event", "screen_view", "commerce_event"}
# match types whose data point has no criteria: the type alone identifies it
TYPE_ONLY_MATCHES = {
    "product_impression",
    "session_start",
    "session_end",
    "crash_report",
    "opt_out",
    "first_run",
    "uninstall",
    "breadcrumb",
    "network_performance",
}
BOOLEAN_TEXT = {"true": True, "false": False}
BLOCKING_STATUSES = ("unplanned", "unplanned_attributes")
STATUSES = ("ok", *BLOCKING_STATUSES, "invalid", "not_plannable")


class PlanFileError(LoaderError):
    """The plan file cannot be read as an mParticle data plan."""


@dataclass
class PlanVersion:
    plan_id: str | None
    version: int | None
    points: dict[tuple[Any, ...], dict[str, Any]]  # match key -> JSON schema
    user_attributes_schema: dict[str, Any] | None = None


@dataclass
class CheckRow:
    """Replay events of one type and name with one outcome."""

    event_type: str
    custom_event_type: str | None
    name: str | None
    status: str  # ok, unplanned, unplanned_attributes, invalid, not_plannable
    events: int = 0
    problems: Counter[str] = field(default_factory=Counter)


@dataclass
class PlanCheckResult:
    plan_id: str | None
    version: int | None
    rows: list[CheckRow]
    notes: list[str]

    def events_with(self, *statuses: str, user_attributes: bool = False) -> int:
        """Replay events with these statuses (of their user attributes, if asked)."""
        return sum(
            row.events
            for row in self.rows
            if row.status in statuses and (row.event_type == "user_attributes") == user_attributes
        )

    @property
    def would_block(self) -> bool:
        return (
            self.events_with(*BLOCKING_STATUSES) > 0
            or self.events_with(*BLOCKING_STATUSES, user_attributes=True) > 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "plan_version": self.version,
            "would_block": self.would_block,
            "events": {status: self.events_with(status) for status in STATUSES},
            "events_by_user_attributes": {
                status: self.events_with(status, user_attributes=True) for status in STATUSES
            },
            "rows": [
                {
                    "event_type": row.event_type,
                    "custom_event_type": row.custom_event_type,
                    "name": row.name,
                    "status": row.status,
                    "events": row.events,
                    "problems": dict(row.problems.most_common()),
                }
                for row in self.rows
            ],
            "notes": self.notes,
        }


# --- reading the plan ---------------------------------------------------------------


def match_key(match: dict[str, Any]) -> tuple[Any, ...] | None:
    """The identity of a data point's match, comparable with `event_key`."""
    kind = match.get("type")
    criteria = match.get("criteria") or {}
    if kind == "custom_event":
        return (kind, criteria.get("custom_event_type"), criteria.get("event_name"))
    if kind == "screen_view":
        return (kind, criteria.get("screen_name"))
    if kind in ("product_action", "promotion_action"):
        return (kind, criteria.get("action"))
    if kind == "application_state_transition":
        return (kind, criteria.get("application_transition_type"))
    if kind in TYPE_ONLY_MATCHES:
        return (kind,)
    return None


def event_key(event: dict[str, Any]) -> tuple[Any, ...]:
    """The match key an event is looked up by (mParticle's data planning rules)."""
    event_type = event.get("event_type")
    data = event.get("data") or {}
    if event_type == "custom_event":
        return ("custom_event", data.get("custom_event_type"), data.get("event_name"))
    if event_type == "screen_view":
        return ("screen_view", data.get("screen_name"))
    if event_type == "commerce_event":
        if data.get("product_action"):
            return ("product_action", (data["product_action"] or {}).get("action"))
        if data.get("promotion_action"):
            return ("promotion_action", (data["promotion_action"] or {}).get("action"))
        if data.get("product_impressions"):
            return ("product_impression",)
        return ("commerce_event",)
    if event_type == "application_state_transition":
        return (event_type, data.get("application_transition_type"))
    return (event_type,)


def _pick_version(document: dict[str, Any], version: int | None, path: Path) -> dict[str, Any]:
    versions = document.get("data_plan_versions")
    if not isinstance(versions, list) or not versions:
        raise PlanFileError(f"{path}: the plan has no data_plan_versions.")
    if version is None:
        latest: dict[str, Any] = max(versions, key=lambda v: v.get("version") or 0)
        return latest
    for candidate in versions:
        if candidate.get("version") == version:
            chosen: dict[str, Any] = candidate
            return chosen
    found = ", ".join(str(v.get("version")) for v in versions)
    raise PlanFileError(f"{path}: no version {version} in the plan (it has {found}).")


def load_plan(path: Path, version: int | None = None) -> PlanVersion:
    """Read a data plan, a plan version or a version document exported from mParticle."""
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such file.") from None
    except orjson.JSONDecodeError as exc:
        raise PlanFileError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PlanFileError(f"{path}: expected a JSON object (a data plan or a plan version).")
    plan_id = document.get("data_plan_id")
    if "data_plan_versions" in document:
        document = _pick_version(document, version, path)
    elif version is not None and document.get("version") not in (None, version):
        raise PlanFileError(
            f"{path} holds version {document.get('version')}, not {version}; "
            "drop --version or pass the whole plan."
        )
    plan_id = document.get("data_plan_id", plan_id)
    body = document.get("version_document", document)
    points = body.get("data_points") if isinstance(body, dict) else None
    if not isinstance(points, list):
        raise PlanFileError(
            f"{path}: no version_document.data_points. Export the plan version from "
            "mParticle (Data Master > Plans > Download as JSON) or the Data Planning API."
        )
    plan = PlanVersion(plan_id, document.get("version"), {})
    for index, point in enumerate(points):
        match = point.get("match") or {}
        validator = point.get("validator") or {}
        schema = validator.get("definition") if validator.get("type") == "json_schema" else None
        schema = schema if isinstance(schema, dict) else {}
        if match.get("type") == "user_attributes":
            plan.user_attributes_schema = schema
            continue
        key = match_key(match)
        if key is None:
            continue  # user_identities and types replays never carry
        try:
            Draft7Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise PlanFileError(
                f"{path}: data point {index} ({match.get('type')}) has an invalid JSON "
                f"schema: {exc.message}"
            ) from None
        plan.points[key] = schema
    return plan


# --- validating like mParticle ------------------------------------------------------


def _as_decimal(value: Any) -> Decimal | None:
    """The number a value holds or spells (exactly: no float conversion of text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _is_number(_checker: object, value: object) -> bool:
    return _as_decimal(value) is not None


def _is_integer(_checker: object, value: object) -> bool:
    number = _as_decimal(value)
    return number is not None and number == number.to_integral_value()


def _is_boolean(_checker: object, value: object) -> bool:
    return isinstance(value, bool) or (
        isinstance(value, str) and value.strip().lower() in BOOLEAN_TEXT
    )


def _is_string(_checker: object, value: object) -> bool:
    return isinstance(value, str | int | float)  # numbers and booleans convert to text


BOUNDS: dict[str, tuple[Callable[[Decimal, Decimal], bool], str]] = {
    "minimum": (lambda n, b: n >= b, "less than the minimum of"),
    "maximum": (lambda n, b: n <= b, "greater than the maximum of"),
    "exclusiveMinimum": (lambda n, b: n > b, "less than or equal to the minimum of"),
    "exclusiveMaximum": (lambda n, b: n < b, "greater than or equal to the maximum of"),
    "multipleOf": (lambda n, b: n % b == 0, "not a multiple of"),
}


# a keyword's check, as jsonschema calls it: (validator, its value, instance, schema)
KeywordCheck = Callable[[Any, Any, Any, Any], Iterator[jsonschema.ValidationError]]


def _bound(keyword: str) -> KeywordCheck:
    passes, words = BOUNDS[keyword]

    def check(
        validator: Any, limit: Any, instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        number, bound = _as_decimal(instance), _as_decimal(limit)
        if number is not None and bound is not None and not passes(number, bound):
            yield jsonschema.ValidationError(f"{instance!r} is {words} {limit!r}")

    return check


def _same_value(a: Any, b: Any) -> bool:
    if a == b and type(a) is type(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        text = {True: "true", False: "false"}
        left = text.get(a, a) if isinstance(a, bool) else str(a).strip().lower()
        right = text.get(b, b) if isinstance(b, bool) else str(b).strip().lower()
        return bool(left == right)
    exact_a, exact_b = _as_decimal(a), _as_decimal(b)
    if exact_a is not None and exact_b is not None:
        return exact_a == exact_b
    return bool(a == b)


def _enum(
    validator: Any, allowed: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if not any(_same_value(instance, value) for value in allowed):
        yield jsonschema.ValidationError(f"{instance!r} is not one of {allowed!r}")


def _const(
    validator: Any, const: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if not _same_value(instance, const):
        yield jsonschema.ValidationError(f"{const!r} was expected, not {instance!r}")


# jsonschema's extend carries no type annotations
PlanValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft7Validator,
    validators={
        **{keyword: _bound(keyword) for keyword in BOUNDS},
        "enum": _enum,
        "const": _const,
    },
    type_checker=Draft7Validator.TYPE_CHECKER.redefine_many(
        {
            "number": _is_number,
            "integer": _is_integer,
            "boolean": _is_boolean,
            "string": _is_string,
        }
    ),
)


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    validator: jsonschema.protocols.Validator = PlanValidator(
        schema, format_checker=PlanValidator.FORMAT_CHECKER
    )
    return validator


def _extra_properties(error: jsonschema.ValidationError) -> list[str]:
    known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    patterns = error.schema.get("patternProperties", {}) if isinstance(error.schema, dict) else {}
    instance = error.instance if isinstance(error.instance, dict) else {}
    return [
        name
        for name in instance
        if name not in known and not any(re.search(p, name) for p in patterns)
    ]


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(event)"


EVENT_CUSTOM_ATTRIBUTES = (("data", "custom_attributes"),)
USER_ATTRIBUTES = ((),)  # a user attributes document is itself the custom attributes
NOT_IN_SCHEMA = (
    "not in the plan's schema (a violation: delivered, not removed; only custom "
    "attributes are removed)"
)


def classify(
    instance: Any,
    validator: jsonschema.protocols.Validator,
    *,
    custom_attribute_paths: tuple[tuple[Any, ...], ...] = EVENT_CUSTOM_ATTRIBUTES,
) -> tuple[str, list[str]]:
    """`ok`, `unplanned_attributes` or `invalid`, with one message per problem.

    Blocking removes unplanned *custom* attributes only: properties a closed schema
    (`additionalProperties: false`) does not list count as unplanned attributes at
    `custom_attribute_paths` (the event's `data.custom_attributes`; for user attributes,
    the document itself), and as validation violations (invalid) anywhere else.
    """
    unplanned, invalid = [], []
    for error in validator.iter_errors(instance):
        if error.validator == "additionalProperties" and error.validator_value is False:
            parent = _where(error)
            custom = tuple(error.absolute_path) in custom_attribute_paths
            for name in _extra_properties(error):
                where = name if parent == "(event)" else f"{parent}.{name}"
                if custom:
                    unplanned.append(f"unplanned attribute {where}")
                else:
                    invalid.append(f"{where}: {NOT_IN_SCHEMA}")
        else:
            invalid.append(f"{_where(error)}: {error.message}")
    if unplanned:
        return "unplanned_attributes", unplanned + invalid
    return ("invalid", invalid) if invalid else ("ok", [])


# --- reading the replay set ---------------------------------------------------------

EVENT_SHAPES_SQL = """
    with events as (
        select
            event_json,
            -- events that differ only in time validate alike: check one of each
            json_merge_patch(event_json, '{"data": {"timestamp_unixtime_ms": null}}')::varchar
                as shape,
        from replay_events
    )
    select any_value(event_json)::varchar, count(*)
    from events
    group by shape
"""
USER_ATTRIBUTES_SQL = """
    select batch_context->'$.user_attributes' as user_attributes, count(*) as events
    from replay_events
    where json_exists(batch_context, '$.user_attributes')
    group by all
"""
PLANS_NAMED_SQL = """
    select
        json_extract_string(batch_context, '$.context.data_plan.plan_id') as plan_id,
        json_extract_string(batch_context, '$.context.data_plan.plan_version') as plan_version,
        count(*) as events
    from replay_events
    group by all
    order by events desc
"""


def _near_miss(key: tuple[Any, ...], plan: PlanVersion) -> str:
    """Why an event matches no data point, naming a planned event it nearly matches."""
    for planned in plan.points:
        if planned[0] != key[0] or planned == key:
            continue
        if key[0] == "custom_event" and planned[2] == key[2]:
            return f"planned with custom_event_type {planned[1]!r}, not {key[1]!r}"
        if str(planned[-1]).casefold() == str(key[-1]).casefold():
            return f"planned as {planned[-1]!r} (letter case differs)"
    return "no data point matches this event"


def _name_of(key: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """(custom_event_type, name) for display."""
    if key[0] == "custom_event":
        return key[1], key[2]
    return None, (key[1] if len(key) > 1 else None)


def _display_type(key: tuple[Any, ...]) -> str:
    return "commerce_event" if key[0] in ("product_action", "promotion_action") else key[0]


def check_replay_set(con: duckdb.DuckDBPyConnection, plan: PlanVersion) -> PlanCheckResult:
    """Validate every event in `replay_events` against `plan`."""
    try:
        shapes = con.execute(EVENT_SHAPES_SQL).fetchall()
    except duckdb.CatalogException:
        raise MissingReplaySet(
            f"{database_file(con)} has no replay_events table. Run `dbt build` first."
        ) from None
    rows: dict[tuple[Any, ...], CheckRow] = {}
    compiled = {key: _validator(schema) for key, schema in plan.points.items()}

    def add(key: tuple[Any, ...], status: str, count: int, problems: list[str]) -> None:
        custom_type, name = _name_of(key)
        row = rows.setdefault(
            (key, status), CheckRow(_display_type(key), custom_type, name, status)
        )
        row.events += count
        for problem in problems:
            row.problems[problem] += count

    for event_text, count in shapes:
        event = orjson.loads(event_text)
        key = event_key(event)
        if key in compiled:
            status, problems = classify(event, compiled[key])
        elif event.get("event_type") in PLANNABLE_EVENT_TYPES:
            status, problems = "unplanned", [_near_miss(key, plan)]
        else:
            status, problems = "not_plannable", []
        add(key, status, count, problems)

    if plan.user_attributes_schema is not None:
        user_validator = _validator(plan.user_attributes_schema)
        for attributes_text, count in con.execute(USER_ATTRIBUTES_SQL).fetchall():
            status, problems = classify(
                orjson.loads(attributes_text),
                user_validator,
                custom_attribute_paths=USER_ATTRIBUTES,
            )
            add(("user_attributes",), status, count, problems)

    notes = _plan_notes(con, plan)
    order = {"unplanned": 0, "unplanned_attributes": 1, "invalid": 2, "ok": 3, "not_plannable": 4}
    ordered = sorted(
        rows.values(),
        key=lambda r: (order[r.status], -r.events, r.event_type, r.name or ""),
    )
    return PlanCheckResult(plan.plan_id, plan.version, ordered, notes)


def _plan_notes(con: duckdb.DuckDBPyConnection, plan: PlanVersion) -> list[str]:
    """Say when the replay batches name another plan than the one checked."""
    notes = []
    for plan_id, plan_version, events in con.execute(PLANS_NAMED_SQL).fetchall():
        if plan_id is None:
            notes.append(
                f"{events} events are sent without a data plan (data_plan_policy drop): "
                "mParticle validates them only against a plan active for their environment."
            )
        elif plan_id != plan.plan_id or (
            plan.version is not None and plan_version not in (None, str(plan.version))
        ):
            named = f"{plan_id} v{plan_version}" if plan_version else plan_id
            checked = f"{plan.plan_id} v{plan.version}" if plan.version else str(plan.plan_id)
            notes.append(
                f"{events} events name {named} in their batch context, not {checked}: "
                "mParticle validates them against the plan they name. To send them under "
                f"{checked}, build with --vars '{{data_plan_policy: set, data_plan_override: "
                f"{{plan_id: {plan.plan_id}, plan_version: {plan.version}}}}}'."
            )
    return notes
