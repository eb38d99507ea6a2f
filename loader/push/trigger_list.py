"""The trigger list for a replay set that has no `replay_trigger_events`.

A Parquet replay set (`loader push --replay-set`) or a warehouse built by an older
version has no `replay_trigger_events`, but its rows carry event type and event JSON:
they are checked here against the list a build would use. That is the warehouse's seed
table `trigger_events` when it has one, else the dbt project's seed file
`seeds/trigger_events.csv` (the project: DBT_PROJECT_DIR, the current folder, or the
folder this package was installed from). A project that cannot be found, or one without
the seed file, leaves the events unchecked (`TriggersUnchecked`): `loader push` then
refuses unless --allow-triggers is given.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

from loader.errors import LoaderError
from loader.push.build_freshness import project_dir

SEED = "trigger_events"
COLUMNS = ("integration", "event_type", "event_name")


class TriggersUnchecked(LoaderError):
    """No trigger list to check the replay rows against; the message says why."""


class BadTriggerList(LoaderError):
    """The seed file has a row that cannot be read; the message names file, line, field."""


@dataclass(frozen=True)
class TriggerList:
    """Rows (integration, event type, event name or None for every name) and their file."""

    source: Path
    rows: list[tuple[str, str, str | None]]


def seed_file(project: Path | None) -> Path:
    """The project's `trigger_events.csv` (in the first of its seed-paths holding one).

    Raises `TriggersUnchecked` when there is no project or no such file in it."""
    if project is None:
        raise TriggersUnchecked(
            "no dbt project was found (DBT_PROJECT_DIR, the current folder) to read "
            "seeds/trigger_events.csv from: run `loader push` in the project's folder or "
            "set DBT_PROJECT_DIR"
        )
    try:
        settings = yaml.safe_load((project / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        settings = {}
    folders = settings.get("seed-paths") or ["seeds"]
    for folder in folders:
        path = project / str(folder) / f"{SEED}.csv"
        if path.is_file():
            return path
    raise TriggersUnchecked(
        f"the dbt project {project} has no {folders[0]}/{SEED}.csv: restore it (one row per "
        "integration, event type and event name; README: privacy and side effects)"
    )


def read_seed(path: Path) -> TriggerList:
    """The rows of a `trigger_events.csv`, as dbt seeds it (an empty name is null).

    Raises `BadTriggerList` naming the file, line and field of a row that cannot be used."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadTriggerList(f"{path}: cannot read it ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise BadTriggerList(
            f"{path}, line 1: no column {', '.join(missing)}. The header must be "
            f"{','.join(COLUMNS)}."
        )
    at = {name: header.index(name) for name in COLUMNS}
    rows: list[tuple[str, str, str | None]] = []
    for line, values in enumerate(reader, start=2):
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            raise BadTriggerList(
                f"{path}, line {line}: {len(values)} fields, the header has {len(header)}."
            )
        integration, event_type, name = (values[at[column]] for column in COLUMNS)
        for field, value in (("integration", integration), ("event_type", event_type)):
            if not value:
                raise BadTriggerList(
                    f"{path}, line {line}: {field} is empty. Give the integration (its name "
                    "in seeds/integration_limits.csv) and the event type of every row."
                )
        rows.append((integration, event_type, name or None))
    return TriggerList(path, rows)


def project_trigger_list() -> TriggerList:
    """The project's seed file, read. Raises `TriggersUnchecked` or `BadTriggerList`."""
    return read_seed(seed_file(project_dir()))
