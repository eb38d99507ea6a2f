"""`loader suggest-fixes`: fixes proposed for what the data plan blocked, one per reason.

The blocked reasons are read from the warehouse's `int_events__classified` (the start of the
fix chain: every event the block metadata names, before any fix):

- an event blocked whole, per (event type, custom_event_type, name);
- an attribute blocked from events otherwise allowed, per attribute name;
- with a plan, an attribute whose JSON type is not the one the plan gives it.

What is *planned* comes from a data plan version (`load_plan`, as `loader plan-check` reads
it) or, without one, from the block metadata alone: events the plan let through (in the
same files, not blocked) and the attributes of events that lost nothing are planned. The
proposals, each a fix built from the toolkit macros (macros/fix_macros.sql):

- `rename_event` for an unplanned custom event whose name is close to a planned one
  (`close_name`: letter case, separators, or a small edit distance), `set_custom_event_type`
  when the name is planned with another custom_event_type;
- `rename_attribute` for a blocked attribute close to a planned attribute name;
- `drop_attributes` for a blocked attribute no data point plans (needs a plan);
- `cast_attribute` for a value the plan types otherwise, when the cast converts it (needs a
  plan);
- `skip_events` for an event no data point plans (needs a plan).

Nothing here writes: the CLI writes a suggestion the user accepts by name
(loader.fixes.suggested_fix).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from loader.audit.data_plan_check import PlanVersion
from loader.errors import LoaderError
from loader.warehouse import connect, database_file

CHAIN_START = "int_events__classified"
SEPARATORS = re.compile(r"[\s_\-.]+")
MAX_NAME = 50  # a suggestion's name; the fix model is fix_<name>
LET_THROUGH = "the data plan (judged by what it let through)"


class SuggestionError(LoaderError):
    """The warehouse cannot be read for suggestions (missing, not built)."""


@dataclass(frozen=True)
class Step:
    """One toolkit macro call, in its own CTE of the fix."""

    cte: str
    macro: str


@dataclass(frozen=True)
class Suggestion:
    """A fix for one blocked reason, ready to be written under `name`."""

    name: str
    kind: str  # rename_event, set_custom_event_type, rename_attribute, drop, cast, skip
    reason: str  # the blocked reason, for people
    rows: int  # rows of int_events__classified the reason covers
    change: str  # what the fix does, for people
    steps: tuple[Step, ...]
    predicate: str  # SQL on int_events__classified: the rows the fix changes
    description: str  # the fix's description in its YAML

    @property
    def model(self) -> str:
        return f"fix_{self.name}"

    def sql(self) -> str:
        """The fix model's SQL."""
        ctes, source = [], "events"
        for step in self.steps:
            ctes.append(
                f"{step.cte} as (\n    select\n        * replace (\n            {step.macro}\n"
                f"        ),\n    from {source}\n)"
            )
            source = step.cte
        header = "\n".join(f"-- {line}" for line in _wrap(f"{self.model}: {self.description}"))
        body = ",\n\n".join(["with events as (\n    select * from {{ fix_input() }}\n)", *ctes])
        return f"{header}\n\n{body}\n\nselect * from {source}\n"


@dataclass(frozen=True)
class OpenReason:
    """A blocked reason without a suggestion, and why."""

    reason: str
    rows: int
    why: str
    needs_plan: bool = False
    resolved: bool = False  # the plan version plans it as it is: it replays unchanged


@dataclass
class Suggestions:
    plan: str | None  # "shop_plan v4", or None: from the block metadata alone
    blocked_rows: int
    suggestions: list[Suggestion] = field(default_factory=list)
    open: list[OpenReason] = field(default_factory=list)
    covered_rows: int = 0  # distinct rows whose block a suggestion addresses (not casts)
    cast_rows: int = 0  # distinct rows a cast changes

    @property
    def resolved_rows(self) -> int:
        return sum(reason.rows for reason in self.open if reason.resolved)

    def named(self, name: str) -> Suggestion:
        name = name.removeprefix("fix_")
        for suggestion in self.suggestions:
            if suggestion.name == name:
                return suggestion
        known = ", ".join(s.name for s in self.suggestions) or "none"
        hint = (
            " Drops, skips and casts are suggested from a data plan only: give the plan file "
            "as when they were listed."
            if self.plan is None
            else ""
        )
        raise SuggestionError(
            f"no suggestion is named {name!r}; the suggestions are: {known}.{hint}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "blocked_rows": self.blocked_rows,
            "covered_rows": self.covered_rows,
            "cast_rows": self.cast_rows,
            "resolved_by_plan_rows": self.resolved_rows,
            "suggestions": [
                {
                    "name": s.name,
                    "model": s.model,
                    "kind": s.kind,
                    "reason": s.reason,
                    "rows": s.rows,
                    "change": s.change,
                    "predicate": s.predicate,
                }
                for s in self.suggestions
            ],
            "without_suggestion": [
                {
                    "reason": r.reason,
                    "rows": r.rows,
                    "why": r.why,
                    "needs_plan": r.needs_plan,
                    "resolved_by_plan": r.resolved,
                }
                for r in self.open
            ],
        }


# --- names ---------------------------------------------------------------------------


def normalized(name: str) -> str:
    """A name without letter case and separators: `Add_To-Cart` -> `addtocart`."""
    return SEPARATORS.sub("", name).casefold()


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    two neighbouring letters, one each."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i]
        for j, right in enumerate(b, 1):
            cost = left != right
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and left == b[j - 2] and a[i - 2] == right:
                best = min(best, previous2[j - 2] + 1)
            current.append(best)
        previous2, previous = previous, current
    return previous[-1]


def closeness(name: str, planned: str) -> str | None:
    """How `name` is close to `planned` ("letter case or separators", "edit distance N"), or
    None when it is not: the same letters apart from case and separators, or at most 2
    edits (1 below 8 letters) away."""
    if name == planned:
        return None
    if normalized(name) == normalized(planned):
        return "letter case or separators"
    a, b = name.casefold(), planned.casefold()
    allowed = 1 if min(len(a), len(b)) < 8 else 2
    if min(len(a), len(b)) < 3:
        return None
    distance = edit_distance(a, b)
    return f"edit distance {distance}" if distance <= allowed else None


def close_name(name: str, planned: set[str]) -> tuple[str | None, str, list[str]]:
    """The one planned name closest to `name`, how it is close, and all equally close ones
    (when several: none is chosen)."""
    scored = []
    for candidate in planned:
        how = closeness(name, candidate)
        if how is not None:
            rank = 0 if how.startswith("letter") else edit_distance(name.casefold(), candidate)
            scored.append((rank, candidate, how))
    if not scored:
        return None, "", []
    best = min(rank for rank, _, _ in scored)
    tied = sorted(candidate for rank, candidate, _ in scored if rank == best)
    if len(tied) > 1:
        return None, "", tied
    how = next(how for rank, candidate, how in scored if rank == best)
    return tied[0], how, tied


def slug(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def jinja_string(text: str) -> str:
    """A Jinja string literal (Python escapes) holding `text`."""
    return json.dumps(text, ensure_ascii=False)


def json_pointer(name: str) -> str:
    """The JSON Pointer of a custom attribute (RFC 6901: `~` and `/` escaped)."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _wrap(text: str, width: int = 86) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


# --- what the warehouse holds --------------------------------------------------------

BLOCKED_EVENTS_SQL = f"""
    select
        event_type,
        custom_event_type,
        coalesce(event_name, json_extract_string(event_data, '$.screen_name')) as name,
        count(*) as rows,
    from {CHAIN_START}
    where is_blocked_event
    group by all
    order by rows desc, event_type, custom_event_type, name
"""
BLOCKED_ATTRIBUTES_SQL = f"""
    with attributes as (
        select
            event_type,
            custom_event_type,
            event_name,
            unnest(blocked_attributes) as attribute,
        from {CHAIN_START}
        where not is_blocked_event
    )
    select attribute, event_type, custom_event_type, event_name, count(*) as rows,
    from attributes
    group by all
    order by all
"""
ALLOWED_EVENTS_SQL = f"""
    select distinct events.event_type, events.custom_event_type, events.event_name
    from stg_quarantine__events as events
    anti join (select batch_key, event_index from {CHAIN_START} where is_blocked_event) as blocked
        using (batch_key, event_index)
    where events.event_type = 'custom_event'
"""
UNTOUCHED_ATTRIBUTES_SQL = f"""
    select distinct unnest(json_keys(events.custom_attributes))
    from stg_quarantine__events as events
    anti join {CHAIN_START} as affected using (batch_key, event_index)
    where json_type(events.custom_attributes) = 'OBJECT'
"""
# per event and attribute: the value's JSON type and what cast_attribute can make of it
ATTRIBUTE_TYPES_SQL = f"""
    with events as (
        select event_type, custom_event_type, event_name, custom_attributes,
        from {CHAIN_START}
        where event_type = 'custom_event' and json_type(custom_attributes) = 'OBJECT'
    ),
    members as (
        select *, unnest(json_keys(custom_attributes)) as attribute from events
    ),
    typed as (
        select
            *,
            '/' || replace(replace(attribute, '~', '~0'), '/', '~1') as pointer,
        from members
    ),
    valued as (
        select
            event_type, custom_event_type, event_name, attribute,
            json_type(custom_attributes, pointer) as kind,
            trim(json_extract_string(custom_attributes, pointer)) as text,
        from typed
    )
    select
        event_type, custom_event_type, event_name, attribute, kind,
        count(*) filter (where regexp_full_match(text, '-?(0|[1-9][0-9]*)')) as integer_text,
        count(*) filter (
            where regexp_full_match(text, '-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]+)?')
        ) as number_text,
        count(*) filter (where lower(text) in ('true', 'false', '1', '0')) as boolean_text,
        count(*) as rows,
    from valued
    group by all
"""
NUMBER_KINDS = {"BIGINT", "UBIGINT", "HUGEINT", "DOUBLE", "INTEGER"}


def _query(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    try:
        return con.execute(sql).fetchall()
    except duckdb.CatalogException:
        raise SuggestionError(
            f"{database_file(con)} has no {CHAIN_START} or stg_quarantine__events: "
            "run `dbt build` first."
        ) from None


# --- what the plan plans ---------------------------------------------------------------


def planned_attributes(schema: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The custom attributes a data point's schema lists (name -> its schema), or None when
    the schema leaves them open (nothing is blocked for its name)."""
    data = (schema.get("properties") or {}).get("data") or {}
    attributes = (data.get("properties") or {}).get("custom_attributes")
    if not isinstance(attributes, dict):
        return None
    properties = attributes.get("properties") or {}
    if attributes.get("additionalProperties", True) is not False:
        return None
    return {
        str(name): (value if isinstance(value, dict) else {}) for name, value in properties.items()
    }


@dataclass
class Planned:
    """What is planned: custom events by (custom_event_type, name), screen names, attribute
    names (per custom event key, and of any event)."""

    custom_events: set[tuple[str | None, str | None]]
    screens: set[str | None]
    # custom event key -> attribute schemas
    attributes_of: dict[tuple[Any, ...], dict[str, dict[str, Any]]]
    any_attribute: set[str]
    label: str | None  # "plan_id vN"; None: inferred from the block metadata

    @classmethod
    def from_plan(cls, plan: PlanVersion) -> Planned:
        events, screens, attributes_of, names = set(), set(), {}, set()
        for key, schema in plan.points.items():
            if key[0] == "custom_event":
                events.add((key[1], key[2]))
                attributes = planned_attributes(schema)
                if attributes is not None:
                    attributes_of[(key[1], key[2])] = attributes
                    names |= set(attributes)
            elif key[0] == "screen_view":
                screens.add(key[1])
        version = f" v{plan.version}" if plan.version is not None else ""
        return cls(events, screens, attributes_of, names, f"{plan.plan_id}{version}")

    @classmethod
    def from_metadata(cls, con: duckdb.DuckDBPyConnection) -> Planned:
        allowed = {(cet, name) for _, cet, name in _query(con, ALLOWED_EVENTS_SQL)}
        untouched = {str(name) for (name,) in _query(con, UNTOUCHED_ATTRIBUTES_SQL)}
        return cls(allowed, set(), {}, untouched, None)


# --- the suggestions -----------------------------------------------------------------


def _event_where(event_type: str, custom_event_type: str | None, name: str | None) -> str:
    if event_type == "screen_view":
        screen = "json_extract_string(event_data, '$.screen_name')"
        return f"event_type = 'screen_view' and {screen} = {sql_string(name or '')}"
    cet = (
        f"custom_event_type = {sql_string(custom_event_type)}"
        if custom_event_type is not None
        else "custom_event_type is null"
    )
    named = f"event_name = {sql_string(name)}" if name is not None else "event_name is null"
    return f"event_type = {sql_string(event_type)} and {named} and {cet}"


def _describe_event(event_type: str, custom_event_type: str | None, name: str | None) -> str:
    """`'Search' (other)`, `screen_view 'Home'`."""
    if event_type == "custom_event":
        named = repr(name) if name is not None else "custom event without a name"
        return f"{named} ({custom_event_type})" if custom_event_type else named
    return f"{event_type} {name!r}" if name is not None else event_type


class _Names:
    """Unique suggestion names, at most MAX_NAME characters."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = "_".join(slug(p) for p in parts)[:MAX_NAME].strip("_")
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base[: MAX_NAME - 3]}_{n}"
        self.used.add(name)
        return name


def _event_suggestions(
    con: duckdb.DuckDBPyConnection, planned: Planned, names: _Names, found: Suggestions
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Suggestions for events blocked whole; returns each custom event key's planned target
    (after the suggested fix) for the type checks."""
    targets: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    where_plan = f"in {planned.label}" if planned.label else "by the events let through"
    for event_type, cet, name, rows in _query(con, BLOCKED_EVENTS_SQL):
        reason = f"event {_describe_event(event_type, cet, name)}"
        where = _event_where(event_type, cet, name)
        if event_type == "custom_event" and (cet, name) in planned.custom_events:
            targets[(cet, name)] = (cet, name)
            found.open.append(
                OpenReason(
                    reason,
                    rows,
                    f"planned {where_plan} as it is: it replays unchanged"
                    if planned.label
                    else "the same event was let through in these files (the plan changed?)",
                    resolved=planned.label is not None,
                )
            )
            continue
        if event_type == "screen_view" and name in planned.screens:
            found.open.append(
                OpenReason(reason, rows, f"planned {where_plan}: replays unchanged", resolved=True)
            )
            continue
        if event_type == "custom_event" and name is not None:
            suggestion = _custom_event_fix(planned, names, reason, rows, cet, name, where)
            if suggestion is not None:
                found.suggestions.append(suggestion[0])
                targets[(cet, name)] = suggestion[1]
                continue
        if event_type not in ("custom_event", "screen_view"):
            found.open.append(
                OpenReason(reason, rows, f"no suggestion for {event_type} events: write the fix")
            )
        elif planned.label is None:
            found.open.append(
                OpenReason(
                    reason,
                    rows,
                    "no event let through has a close name; with a data plan: skip it",
                    needs_plan=True,
                )
            )
        else:
            found.suggestions.append(
                Suggestion(
                    names("skip", name or event_type),
                    "skip",
                    reason,
                    rows,
                    "skip: no data point plans it",
                    (
                        Step(
                            "fixed",
                            "{{ skip_events("
                            + jinja_string(where)
                            + ", "
                            + jinja_string(f"unplanned event: no data point of {planned.label}")
                            + ") }}",
                        ),
                    ),
                    where,
                    f"{rows} blocked events were {_describe_event(event_type, cet, name)}, "
                    f"which no data point of {planned.label} plans, nor one with a close name. "
                    "Skips them with a reason (the rows stay, not replayed).",
                )
            )
    return targets


def _custom_event_fix(
    planned: Planned,
    names: _Names,
    reason: str,
    rows: int,
    cet: str | None,
    name: str,
    where: str,
) -> tuple[Suggestion, tuple[Any, ...]] | None:
    """A rename and/or a custom_event_type for an unplanned custom event, or None."""
    source = planned.label or LET_THROUGH
    types_of_name = sorted(str(t) for t, n in planned.custom_events if n == name and t)
    if len(types_of_name) == 1:
        target = types_of_name[0]
        macro = (
            "{{ set_custom_event_type("
            + jinja_string(target)
            + ", where="
            + jinja_string(where.removeprefix("event_type = 'custom_event' and "))
            + ") }}"
        )
        return (
            Suggestion(
                names("set", name, "type"),
                "set_custom_event_type",
                reason,
                rows,
                f"set custom_event_type {target!r}",
                (Step("fixed", macro),),
                where,
                f"{rows} blocked custom events {name!r} were sent with custom_event_type "
                f"{cet!r}; {source} plans {name!r} as {target!r}. Sets the planned type.",
            ),
            (target, name),
        )
    same_type = {n for t, n in planned.custom_events if t == cet and n}
    new, how, tied = close_name(name, same_type)
    other_type = None
    if new is None and not tied:
        any_type = {n for _, n in planned.custom_events if n}
        new, how, tied = close_name(name, any_type)
        if new is not None:
            found_types = sorted(str(t) for t, n in planned.custom_events if n == new and t)
            if len(found_types) != 1:
                return None
            other_type = found_types[0]
    if new is None:
        return None
    steps = [
        Step(
            "renamed" if other_type else "fixed",
            "{{ rename_event(" + jinja_string(name) + ", " + jinja_string(new) + ") }}",
        )
    ]
    change = f"rename to {new!r}"
    if other_type:
        retype = f"event_name = {sql_string(new)} and custom_event_type = {sql_string(cet or '')}"
        if cet is None:
            retype = f"event_name = {sql_string(new)} and custom_event_type is null"
        steps.append(
            Step(
                "fixed",
                "{{ set_custom_event_type("
                + jinja_string(other_type)
                + ", where="
                + jinja_string(retype)
                + ") }}",
            )
        )
        change += f", custom_event_type {other_type!r}"
    planned_as = f"{new!r}" + (f" ({other_type})" if other_type else "")
    return (
        Suggestion(
            names("rename", name),
            "rename_event",
            reason,
            rows,
            f"{change} ({how})",
            tuple(steps),
            where,
            f"{rows} blocked custom events were named {name!r}, which {source} does not plan; "
            f"{planned_as} is planned ({how}). Renames them to the planned name.",
        ),
        (other_type or cet, new),
    )


def _attribute_suggestions(
    con: duckdb.DuckDBPyConnection, planned: Planned, names: _Names, found: Suggestions
) -> None:
    """Suggestions for attributes blocked from events otherwise allowed."""
    per_attribute: dict[str, dict[tuple[Any, ...], int]] = defaultdict(dict)
    for attribute, event_type, cet, event_name, rows in _query(con, BLOCKED_ATTRIBUTES_SQL):
        per_attribute[str(attribute)][(event_type, cet, event_name)] = rows
    source = planned.label or LET_THROUGH
    for attribute, events in per_attribute.items():
        rows = sum(events.values())
        reason = f"attribute {attribute!r}" + (
            f" ({len(events)} events)" if len(events) > 1 else ""
        )
        candidates = set(planned.any_attribute)
        if planned.label is not None:  # the attributes planned on these very events
            candidates = set()
            for _, cet, event_name in events:
                candidates |= set(planned.attributes_of.get((cet, event_name), {}))
        predicate = f"json_exists(custom_attributes, {sql_string(json_pointer(attribute))})"
        if attribute.startswith("./"):  # a path the block metadata names outside custom attributes
            found.open.append(OpenReason(reason, rows, "not a custom attribute: write the fix"))
            continue
        new, how, tied = close_name(attribute, candidates)
        if new is not None:
            found.suggestions.append(
                Suggestion(
                    names("rename_attribute", attribute),
                    "rename_attribute",
                    reason,
                    rows,
                    f"rename to {new!r} ({how})",
                    (
                        Step(
                            "fixed",
                            "{{ rename_attribute("
                            + jinja_string(attribute)
                            + ", "
                            + jinja_string(new)
                            + ") }}",
                        ),
                    ),
                    predicate,
                    f"{rows} events lost attribute {attribute!r}, which {source} does not plan; "
                    f"{new!r} is planned ({how}). Renames it to the planned name.",
                )
            )
        elif tied:
            found.open.append(
                OpenReason(reason, rows, f"close to several planned names: {', '.join(tied)}")
            )
        elif planned.label is None:
            found.open.append(
                OpenReason(
                    reason,
                    rows,
                    "no attribute let through has a close name; with a data plan: drop it",
                    needs_plan=True,
                )
            )
        elif attribute in planned.any_attribute:
            found.open.append(
                OpenReason(
                    reason,
                    rows,
                    f"{planned.label} plans it on other events: move it, or plan it on these",
                )
            )
        else:
            found.suggestions.append(
                Suggestion(
                    names("drop", attribute),
                    "drop",
                    reason,
                    rows,
                    "drop it (no data point plans it)",
                    (Step("fixed", "{{ drop_attributes(" + jinja_string(attribute) + ") }}"),),
                    predicate,
                    f"{rows} events lost attribute {attribute!r}, which no data point of "
                    f"{planned.label} plans, nor a close name. Drops it from every event, so "
                    "the replay is not blocked again.",
                )
            )


def _expected_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    return kind if kind in ("string", "integer", "number", "boolean") else None


def _converts(
    to: str, kind: str, integer_text: int, number_text: int, boolean_text: int, rows: int
) -> int:
    """How many of `rows` values of JSON type `kind` cast_attribute turns into type `to`."""
    if to == "string":
        return rows if kind in NUMBER_KINDS or kind == "BOOLEAN" else 0
    if to == "integer":
        return integer_text if kind == "VARCHAR" else 0
    if to == "number":
        return number_text if kind == "VARCHAR" else 0
    return boolean_text if kind == "VARCHAR" or kind in NUMBER_KINDS else 0


def _has_type(to: str, kind: str) -> bool:
    return {
        "string": kind == "VARCHAR",
        "integer": kind in NUMBER_KINDS - {"DOUBLE"},
        "number": kind in NUMBER_KINDS,
        "boolean": kind == "BOOLEAN",
    }[to]


def _cast_suggestions(
    con: duckdb.DuckDBPyConnection,
    planned: Planned,
    targets: dict[tuple[Any, ...], tuple[Any, ...]],
    names: _Names,
    found: Suggestions,
) -> None:
    """Casts for attribute values whose JSON type is not the planned one (with a plan)."""
    casts: dict[tuple[str, str], dict[str, Any]] = {}
    for _, cet, event_name, attribute, kind, ints, numbers, bools, rows in _query(
        con, ATTRIBUTE_TYPES_SQL
    ):
        key = targets.get((cet, event_name), (cet, event_name))
        schema = planned.attributes_of.get(key, {}).get(attribute)
        to = _expected_type(schema) if schema is not None else None
        if to is None or kind in (None, "NULL") or _has_type(to, kind):
            continue
        entry = casts.setdefault(
            (attribute, to), {"rows": 0, "converts": 0, "kinds": set(), "events": set()}
        )
        entry["rows"] += rows
        entry["converts"] += _converts(to, kind, ints, numbers, bools, rows)
        entry["kinds"].add(kind.lower())
        entry["events"].add(key[1])
    planned_types = defaultdict(set)
    for attributes in planned.attributes_of.values():
        for attribute, schema in attributes.items():
            planned_types[attribute].add(_expected_type(schema))
    for (attribute, to), entry in sorted(casts.items()):
        reason = f"attribute {attribute!r} not {to}"
        if not entry["converts"]:
            found.open.append(
                OpenReason(reason, entry["rows"], f"no value converts to {to}: write the fix")
            )
            continue
        where, event_names = "", ""
        if len(planned_types[attribute]) > 1:  # typed otherwise on other events
            event_names = ", ".join(sql_string(n) for n in sorted(entry["events"]))
            where = ", where=" + jinja_string(f"event_name in ({event_names})")
        kinds = ", ".join(sorted(entry["kinds"]))
        pointer = sql_string(json_pointer(attribute))
        kind_list = ", ".join(sql_string(k.upper()) for k in sorted(entry["kinds"]))
        predicate = f"json_type(custom_attributes, {pointer}) in ({kind_list})"
        if where:
            predicate += f" and event_name in ({event_names})"
        # the cast applies wherever the attribute has such a value: count those rows
        (rows,) = _query(con, f"select count(*) from {CHAIN_START} where {predicate}")[0]
        found.suggestions.append(
            Suggestion(
                names("cast", attribute, "to", to),
                "cast",
                reason,
                int(rows),
                f"cast to {to} (optional: mParticle accepts text holding one)",
                (
                    Step(
                        "fixed",
                        "{{ cast_attribute("
                        + jinja_string(attribute)
                        + ", "
                        + jinja_string(to)
                        + where
                        + ") }}",
                    ),
                ),
                predicate,
                f"{planned.label} types attribute {attribute!r} as {to}; {entry['rows']} blocked "
                f"events it plans send it as {kinds} ({entry['converts']} convert). Casts every "
                f"{kinds} value of it that converts; mParticle accepts text holding a number or "
                "a boolean as one, so this is about what the replay's destinations receive.",
            )
        )


def _rows_matching(con: duckdb.DuckDBPyConnection, suggestions: list[Suggestion]) -> int:
    """Rows of the chain's start that some of `suggestions` change."""
    if not suggestions:
        return 0
    predicates = " or ".join(f"coalesce(({s.predicate}), false)" for s in suggestions)
    return int(_query(con, f"select count(*) from {CHAIN_START} where {predicates}")[0][0])


def suggest_fixes(warehouse: Path, plan: PlanVersion | None = None) -> Suggestions:
    """The suggestions for what `warehouse`'s block metadata says was blocked."""
    if not warehouse.exists():
        raise SuggestionError(f"{warehouse.absolute()} not found: ingest and `dbt build` first.")
    con = connect(warehouse, read_only=True)
    with con:
        planned = Planned.from_plan(plan) if plan is not None else Planned.from_metadata(con)
        (total,) = _query(con, f"select count(*) from {CHAIN_START}")[0]
        found = Suggestions(planned.label, total)
        names = _Names()
        targets = _event_suggestions(con, planned, names, found)
        _attribute_suggestions(con, planned, names, found)
        if plan is not None:
            _cast_suggestions(con, planned, targets, names, found)
        found.covered_rows = _rows_matching(con, [s for s in found.suggestions if s.kind != "cast"])
        found.cast_rows = _rows_matching(con, [s for s in found.suggestions if s.kind == "cast"])
    return found
