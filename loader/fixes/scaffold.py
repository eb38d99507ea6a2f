"""`loader new-fix`: a new fix model, its YAML with a unit-test skeleton, wired into the chain.

The chain order is var `fixes` in dbt_project.yml. The new fix is appended to it, and its
description and unit test to models/fixes/_fixes__models.yml, by text edits that add
lines and change nothing else, so comments and layout stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from loader.errors import LoaderError
from loader.fixes.chain import chain_from_text, read_chain

FIXES_DIR = Path("models/fixes")
MODELS_YML = FIXES_DIR / "_fixes__models.yml"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")

SQL_TEMPLATE = """\
-- {model}: TODO say what was wrong with the blocked data and why this fix is right.
{{#
    Replace the no-op `event_name as event_name` with one or more fix macros
    (docs/fixes.md), for example:
        rename_event('Old Name', 'New Name')
        set_custom_event_type('search', where="event_name = 'Search'")
        rename_attribute('old_name', 'new_name') / drop_attributes(['email'])
        skip_events("event_name = 'debug_ping'", 'why it is not replayed')
    or plain SQL that returns the same columns. Two changes to one column go in two CTEs.
#}}

with events as (
    select * from {{{{ fix_input() }}}}
),

fixed as (
    select
        * replace (
            event_name as event_name
        ),
    from events
)

select * from fixed
"""

MODEL_ENTRY = """\
  - name: {model}
    description: >
      TODO: the symptom in the blocked data (the query that shows it), and what this fix
      changes.
"""

TEST_ENTRY = """\
  - name: test_{model}
    model: {model}
    description: TODO what the fix must do to this row.
    given:
      - input: ref('int_events__classified')
        rows:
          # TODO: a row as the fix receives it. Only the columns the fix reads matter.
          - replay_key: "b1:1"
            event_type: custom_event
            event_name: "TODO"
            custom_event_type: other
            custom_attributes: '{{"TODO": "value"}}'
            skip_reason: null
    expect:
      rows:
        # TODO: the same row as the fix must return it (changed JSON is written compactly).
        - replay_key: "b1:1"
          event_type: custom_event
          event_name: "TODO"
          custom_event_type: other
          custom_attributes: '{{"TODO": "value"}}'
          skip_reason: null
"""


class ScaffoldError(LoaderError):
    """The fix cannot be created as asked (bad name, already exists, unreadable project)."""


@dataclass(frozen=True)
class NewFix:
    model: str
    sql_path: Path
    yml_path: Path
    position: int
    after: str | None


def model_name(name: str) -> str:
    """`search_type` or `fix_search_type` -> `fix_search_type`; rejects anything else."""
    model = name if name.startswith("fix_") else f"fix_{name}"
    if not NAME_PATTERN.fullmatch(model) or model == "fix_":
        raise ScaffoldError(
            f"'{name}' is not a fix name: use lower-case letters, digits and underscores, "
            "starting with a letter (e.g. rename_checkout_event)."
        )
    return model


def append_to_chain(text: str, model: str) -> str:
    """dbt_project.yml's text with `model` appended to var `fixes`, the rest untouched."""
    lines = text.splitlines(keepends=True)
    in_vars, fixes_at = False, None
    for index, line in enumerate(lines):
        if re.match(r"vars:\s*(#.*)?$", line):
            in_vars = True
        elif in_vars and re.match(r"[^\s#]", line):
            in_vars = False
        elif in_vars and (match := re.match(r"(\s+)fixes:(.*)$", line.rstrip("\r\n"))):
            fixes_at, key_indent, rest = index, match.group(1), match.group(2)
            break
    if fixes_at is None:
        raise ScaffoldError("dbt_project.yml has no var 'fixes': add `fixes: []` under vars.")
    newline = "\r\n" if lines[fixes_at].endswith("\r\n") else "\n"
    shape = re.fullmatch(r"\s*([^#]*?)\s*(#.*)?", rest)
    assert shape is not None  # the pattern matches any text
    value, comment = shape.groups()
    if value.startswith("["):  # flow style: fixes: [a, b]
        inner = value.strip("[] ")
        items = f"{inner}, {model}" if inner else model
        padding = f"  {comment}" if comment else ""
        lines[fixes_at] = f"{key_indent}fixes: [{items}]{padding}{newline}"
        return "".join(lines)
    if value not in ("", "null", "~"):
        raise ScaffoldError(f"var 'fixes' in dbt_project.yml is not a list: {value}")
    last_item, item_indent = None, key_indent + "  "
    for index in range(fixes_at + 1, len(lines)):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = line[: len(line) - len(line.lstrip())]
        if line.lstrip().startswith("- ") and len(indent) >= len(key_indent):
            last_item, item_indent = index, indent
            continue
        break
    if value in ("null", "~"):
        lines[fixes_at] = f"{key_indent}fixes:{'  ' + comment if comment else ''}{newline}"
    insert_at = (last_item if last_item is not None else fixes_at) + 1
    if not lines[insert_at - 1].endswith(("\n", "\r")):
        lines[insert_at - 1] += newline
    lines.insert(insert_at, f"{item_indent}- {model}{newline}")
    return "".join(lines)


def append_to_section(text: str, key: str, entry: str) -> str:
    """YAML text with `entry` (block-list item lines) appended to top-level list `key`."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if re.match(rf"{key}:\s*(#.*)?$", line)), None)
    if start is None:
        return "".join(lines) + f"\n{key}:\n{entry}"
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"[^\s#]", lines[i])), len(lines)
    )
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    separator = "\n" if end > start + 1 else ""
    lines.insert(end, separator + entry)
    return "".join(lines)


def add_to_models_yml(text: str, model: str) -> str:
    """The fixes' YAML with `model`'s description and unit-test skeleton appended."""
    text = text or "version: 2\n"
    text = append_to_section(text, "models", MODEL_ENTRY.format(model=model))
    return append_to_section(text, "unit_tests", TEST_ENTRY.format(model=model))


def described(yml_text: str) -> tuple[list[str], list[str]]:
    """Model names and unit-test names in a models YAML text."""
    document = yaml.safe_load(yml_text) or {}
    models = [m.get("name") for m in document.get("models") or []]
    return models, [t.get("name") for t in document.get("unit_tests") or []]


def new_fix(project_dir: Path, name: str) -> NewFix:
    """Create models/fixes/<model>.sql, describe and unit-test it in the fixes' YAML, and
    append it to var `fixes`. Nothing is written unless every edit checks out."""
    model = model_name(name)
    fixes = read_chain(project_dir)
    if model in fixes:
        raise ScaffoldError(f"{model} is already in var 'fixes' in dbt_project.yml.")
    sql_path, yml_path = project_dir / FIXES_DIR / f"{model}.sql", project_dir / MODELS_YML
    if sql_path.exists():
        raise ScaffoldError(f"{sql_path.relative_to(project_dir)} already exists.")

    project_file = project_dir / "dbt_project.yml"
    updated_project = append_to_chain(project_file.read_text(), model)
    if chain_from_text(updated_project) != [*fixes, model]:
        raise ScaffoldError(
            f"could not append {model} to var 'fixes' in dbt_project.yml automatically; "
            "add it to the list by hand."
        )
    yml_text = yml_path.read_text() if yml_path.exists() else ""
    try:
        models, tests = described(yml_text)
        updated_yml = add_to_models_yml(yml_text, model)
        expected = ([*models, model], [*tests, f"test_{model}"])
        ok = model not in models and described(updated_yml) == expected
    except (yaml.YAMLError, AttributeError, TypeError):
        ok = False
    if not ok:
        raise ScaffoldError(
            f"could not add {model} to {MODELS_YML} automatically (is it valid YAML with "
            "block lists `models:` and `unit_tests:`, and without this fix?)."
        )
    sql_path.parent.mkdir(parents=True, exist_ok=True)
    sql_path.write_text(SQL_TEMPLATE.format(model=model))
    yml_path.write_text(updated_yml)
    project_file.write_text(updated_project)
    return NewFix(
        model=model,
        sql_path=sql_path.relative_to(project_dir),
        yml_path=yml_path.relative_to(project_dir),
        position=len(fixes) + 1,
        after=fixes[-1] if fixes else None,
    )
