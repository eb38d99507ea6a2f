"""A reviewed plan: a fingerprint of exactly what a push would send, and its check.

`loader push --dry-run --out DIR` writes the fingerprint into DIR/plan.json (section
`reviewed_plan`); `loader push --plan DIR/plan.json` plans again and sends only when the
fingerprint is the same, so that what one person reviewed is what another sends.

The fingerprint of a destination's plan is the SHA-256 of two parts:
- `batches_hash`: every batch the run would send (or refuse locally), in send order: its
  replay keys, its exact body (no secret is in a batch body: a direct destination's key is added
  to the request only), and its local refusal, if any;
- `ledger_hash`: the ledger's state the plan was made against: each replay event's class
  (new, resume, acknowledged, changed, in doubt, refused before) and the open batches of
  this replay set (id, unchanged or not, sent or not).

Beside the hash, plan.json keeps what explains a difference: events per event name, the
ledger's classes, the options that choose what is sent, and the build (its vars and, per
fix, what it changed: `fix_summary` and a digest of the rows it changed as it left them).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from loader.errors import LoaderError
from loader.push.packing import PackedBatch
from loader.push.replay_reader import ALIAS

SECTION = "reviewed_plan"
FORMAT = 1
# settings of the machine rather than of what is built: not compared
MACHINE_SETTINGS = ("built_at", "memory_limit", "temp_directory")
LEDGER_CLASSES = (
    "new",
    "resumed",
    "resumed_batches",
    "acknowledged_before",
    "changed",
    "in_doubt",
    "rejected_before",
    "superseded_batches",
)


class PlanChanged(LoaderError):
    """What would be sent now is not the reviewed plan: nothing is sent."""


class BatchDigest:
    """The running SHA-256 of the batches of a plan, in the order they come."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.batches = 0
        self.events = 0

    def add(self, batch: PackedBatch) -> None:
        for part in (batch.keys, batch.body, (batch.error or "").encode()):
            self._hash.update(len(part).to_bytes(8, "big"))
            self._hash.update(part)
        self.batches += 1
        self.events += batch.event_count

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass
class PlanFingerprint:
    """What plan.json's `reviewed_plan` holds (see the module docstring)."""

    destination: str
    hash: str
    batches_hash: str
    ledger_hash: str
    batches: int
    events: int
    events_by_name: dict[str, int] = field(default_factory=dict)
    ledger: dict[str, int] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] | None = None
    format: int = FORMAT

    @classmethod
    def of(
        cls,
        destination: str,
        digest: BatchDigest,
        ledger_hash: str,
        **details: Any,
    ) -> PlanFingerprint:
        batches_hash = digest.hexdigest()
        whole = hashlib.sha256(f"{destination}\n{batches_hash}\n{ledger_hash}".encode())
        return cls(
            destination,
            "sha256:" + whole.hexdigest(),
            batches_hash,
            ledger_hash,
            digest.batches,
            digest.events,
            **details,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_plan(path: Path) -> PlanFingerprint:
    """The fingerprint in a dry run's plan.json; a clear error naming the file otherwise."""
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise LoaderError(f"--plan {path}: cannot read it ({exc.strerror})") from None
    except orjson.JSONDecodeError as exc:
        raise LoaderError(f"--plan {path}: not JSON ({exc}); give a dry run's plan.json") from None
    section = document.get(SECTION) if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise LoaderError(
            f"--plan {path}: no {SECTION} section; give the plan.json of a dry run "
            "(`loader push --dry-run --out DIR`) made by this version"
        )
    if section.get("format") != FORMAT:
        raise LoaderError(
            f"--plan {path}: {SECTION} format {section.get('format')!r} is not {FORMAT}; "
            "make the plan again with this version (`loader push --dry-run --out DIR`)"
        )
    try:
        return PlanFingerprint(**section)
    except TypeError as exc:
        raise LoaderError(f"--plan {path}: {SECTION} is malformed ({exc})") from None


def check_plan(path: Path, planned: PlanFingerprint, now: PlanFingerprint) -> None:
    """Raise `PlanChanged`, saying what changed, unless `now` gives the reviewed hash."""
    if planned.hash == now.hash and planned.destination == now.destination:
        return
    lines = differences(planned, now)
    raise PlanChanged(
        f"not pushing: what would be sent is not the plan {path} ({planned.hash} then, "
        f"{now.hash} now); nothing was sent. What changed:\n"
        + "\n".join(f"  {line}" for line in lines)
        + "\nReview a new dry run (`loader push --dry-run --out DIR`), then push with its "
        "plan.json."
    )


def differences(planned: PlanFingerprint, now: PlanFingerprint) -> list[str]:
    """What differs between two plans, in words: destination, options, fixes, vars, events
    per event name, the ledger; the hashes when nothing listed explains it."""
    lines: list[str] = []
    if planned.destination != now.destination:
        lines.append(
            f"destination: the plan is for --destination {planned.destination}, this push "
            f"is for {now.destination}"
        )
    for name in sorted(set(planned.options) | set(now.options)):
        before, after = planned.options.get(name), now.options.get(name)
        if before != after:
            lines.append(f"option {name}: {_show(before)} in the plan, {_show(after)} now")
    lines += _build_differences(planned.build, now.build)
    names = _count_changes(planned.events_by_name, now.events_by_name)
    if names:
        lines.append("events by name (planned -> now): " + names)
    ledger = _count_changes(planned.ledger, now.ledger)
    if ledger:
        lines.append("ledger (replay events by class, planned -> now): " + ledger)
    if planned.events != now.events or planned.batches != now.batches:
        lines.append(
            f"in all: {planned.events:,} events in {planned.batches:,} batches planned, "
            f"{now.events:,} in {now.batches:,} now"
        )
    if planned.ledger_hash != now.ledger_hash and not ledger:
        lines.append("ledger: its batches for this replay set changed since the plan")
    if planned.batches_hash != now.batches_hash and len(lines) == 0:
        lines.append(
            "batch bodies: the same counts, other content (a field's value, the order, how "
            "events are cut into batches)"
        )
    return lines


def _build_differences(planned: dict[str, Any] | None, now: dict[str, Any] | None) -> list[str]:
    if planned is None and now is None:
        return []
    if planned is None or now is None:
        which = "the plan" if planned is None else "this push"
        return [f"build: {which} reads a replay set without build settings (Parquet)"]
    lines = []
    before = {fix["name"]: fix for fix in planned.get("fixes", [])}
    after = {fix["name"]: fix for fix in now.get("fixes", [])}
    for name in [*before, *(n for n in after if n not in before)]:
        if name not in after:
            lines.append(f"fix {name}: in the plan's chain, not in this build's (var fixes)")
        elif name not in before:
            lines.append(f"fix {name}: in this build's chain, not in the plan's (var fixes)")
        elif before[name] != after[name]:
            lines.append(f"fix {name}: changed ({_fix_change(before[name], after[name])})")
    if [*before] != [*after] and set(before) == set(after):
        lines.append(f"fixes: chain order {' > '.join(before)} then, {' > '.join(after)} now")
    old_vars, new_vars = planned.get("vars", {}), now.get("vars", {})
    for name in sorted(set(old_vars) | set(new_vars)):
        if name != "fixes" and old_vars.get(name) != new_vars.get(name):
            lines.append(
                f"var {name}: {_show(old_vars.get(name))} in the plan's build, "
                f"{_show(new_vars.get(name))} now"
            )
    return lines


def _fix_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    for key, label in (("rows_changed", "rows changed"), ("rows_skipped", "rows skipped")):
        if before.get(key) != after.get(key):
            parts.append(f"{label} {before.get(key)} -> {after.get(key)}")
    if before.get("columns_changed") != after.get("columns_changed"):
        parts.append(
            f"columns {', '.join(before.get('columns_changed') or []) or 'none'} -> "
            f"{', '.join(after.get('columns_changed') or []) or 'none'}"
        )
    if not parts:
        parts.append("the rows it changed have other values")
    return "; ".join(parts)


def _count_changes(before: dict[str, int], after: dict[str, int]) -> str:
    changed = [
        f"{name} {before.get(name, 0):,} -> {after.get(name, 0):,}"
        for name in sorted(set(before) | set(after))
        if before.get(name, 0) != after.get(name, 0)
    ]
    return ", ".join(changed)


def _show(value: object) -> str:
    return "none" if value is None else orjson.dumps(value).decode()


def build_identity(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The attached warehouse's build: its vars (`replay_build_settings`, without the
    machine's settings) and its fixes (`fix_summary` with a digest per fix); None for a
    replay set without them (Parquet)."""
    tables = _tables(con)
    if "replay_build_settings" not in tables:
        return None
    cursor = con.execute(f"select * from {ALIAS}.main.replay_build_settings limit 1")
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone() or [None] * len(names)
    variables = {
        name: _plain(value)
        for name, value in zip(names, row, strict=True)
        if name not in MACHINE_SETTINGS
    }
    fixes = []
    if "fix_summary" in tables:
        changes = "int_events__fix_changes" in tables
        for position, name, changed, skipped, columns in con.execute(
            "select fix_position, fix_name, rows_changed, rows_skipped, columns_changed "
            f"from {ALIAS}.main.fix_summary order by fix_position"
        ).fetchall():
            fix = {
                "name": name,
                "position": position,
                "rows_changed": changed,
                "rows_skipped": skipped,
                "columns_changed": sorted(columns or []),
                "digest": _fix_digest(con, name) if changes and name in tables else None,
            }
            fixes.append(fix)
    return {"vars": variables, "fixes": fixes}


def _fix_digest(con: duckdb.DuckDBPyConnection, fix: str) -> str:
    """MD5 of the rows `fix` changed (or skipped), as it left them, in replay_key order."""
    [(digest,)] = con.execute(
        f"""select md5(coalesce(string_agg(md5(f::varchar), '' order by f.replay_key), ''))
        from {ALIAS}.main."{fix}" f
        semi join (
            select replay_key from {ALIAS}.main.int_events__fix_changes where fix_name = $fix
        ) c using (replay_key)""",
        {"fix": fix},
    ).fetchall()
    return str(digest)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        name
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where database_name = ? "
            "and schema_name = 'main'",
            [ALIAS],
        ).fetchall()
    }


def _plain(value: object) -> object:
    """A settings value as JSON keeps it (lists, numbers, text, booleans)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
