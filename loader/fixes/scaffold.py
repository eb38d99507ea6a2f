"""`loader new-fix`: a new fix model, its YAML with a unit-test skeleton, wired into the chain;
`loader remove-fix`: the undo.

The chain order is var `fixes` in dbt_project.yml. The new fix is appended to it, and its
description and unit test to models/fixes/_fixes__models.yml, by text edits that add
lines and change nothing else, so comments and layout stay as they are. Removing deletes
the fix's lines the same way, so new-fix then remove-fix gives back the same bytes.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


CONTEXT_FIXES_DIR = Path("models/context_fixes")
CONTEXT_MODELS_YML = CONTEXT_FIXES_DIR / "_context_fixes__models.yml"

CONTEXT_SQL_TEMPLATE = """\
-- {model}: TODO say what was wrong with the batch context and why this fix is right.
{{#
    One row per source batch (the columns of stg_quarantine__batches). Replace the no-op
    `environment as environment` with context fix macros (docs/fixes.md), for example:
        set_environment('development', where="environment = 'Development'")
        rename_identity('customerId', 'customer_id') / drop_identity('other')
        set_identity('customer_id', identity_from_user_attribute('account_id'))
        set_mpid('8934702931040193024', where="batch_key = '...'")
        drop_device_id('ios_advertising_id') / set_data_plan('my_plan', 3)
    Changing identities, the MPID or device ids changes who the batch belongs to: say so
    with {{{{ config(meta={{'changes_identity': true}}) }}}} at the top.
#}}

with batches as (
    select * from {{{{ context_fix_input() }}}}
),

fixed as (
    select
        * replace (
            environment as environment
        ),
    from batches
)

select * from fixed
"""

CONTEXT_MODEL_ENTRY = """\
  - name: {model}
    description: >
      TODO: the symptom in the batch context (the query that shows it), and what this fix
      changes.
"""

CONTEXT_TEST_ENTRY = """\
  - name: test_{model}
    model: {model}
    description: TODO what the fix must do to this batch.
    given:
      - input: ref('stg_quarantine__batches')
        rows:
          # TODO: a batch as the fix receives it. Only the columns the fix reads matter.
          - batch_key: "b1"
            environment: "TODO"
            user_identities: '{{"customer_id": "TODO"}}'
    expect:
      rows:
        # TODO: the same batch as the fix must return it (changed JSON is written compactly).
        - batch_key: "b1"
          environment: "TODO"
          user_identities: '{{"customer_id": "TODO"}}'
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
    var: str = "fixes"
    layout_kept: bool = True  # False: the YAML was written again, without its comments


def model_name(name: str, prefix: str = "fix_") -> str:
    """`search_type` or `fix_search_type` -> `fix_search_type` (context fixes:
    `context_fix_...`); rejects anything else."""
    model = name if name.startswith(prefix) else f"{prefix}{name}"
    if not NAME_PATTERN.fullmatch(model) or model == prefix:
        raise ScaffoldError(
            f"'{name}' is not a fix name: use lower-case letters, digits and underscores, "
            "starting with a letter (e.g. rename_checkout_event)."
        )
    return model


def append_to_chain(text: str, model: str, var: str = "fixes") -> str:
    """dbt_project.yml's text with `model` appended to var `var`, the rest untouched."""
    lines = text.splitlines(keepends=True)
    in_vars, fixes_at = False, None
    for index, line in enumerate(lines):
        if re.match(r"vars:\s*(#.*)?$", line):
            in_vars = True
        elif in_vars and re.match(r"[^\s#]", line):
            in_vars = False
        elif in_vars and (match := re.match(rf"(\s+){var}:(.*)$", line.rstrip("\r\n"))):
            fixes_at, key_indent, rest = index, match.group(1), match.group(2)
            break
    if fixes_at is None:
        raise ScaffoldError(f"dbt_project.yml has no var '{var}': add `{var}: []` under vars.")
    newline = "\r\n" if lines[fixes_at].endswith("\r\n") else "\n"
    shape = re.fullmatch(r"\s*([^#]*?)\s*(#.*)?", rest)
    assert shape is not None  # the pattern matches any text
    value, comment = shape.groups()
    if value.startswith("["):  # flow style: fixes: [a, b]
        inner = value.strip("[] ")
        items = f"{inner}, {model}" if inner else model
        padding = f"  {comment}" if comment else ""
        lines[fixes_at] = f"{key_indent}{var}: [{items}]{padding}{newline}"
        return "".join(lines)
    if value not in ("", "null", "~"):
        raise ScaffoldError(f"var '{var}' in dbt_project.yml is not a list: {value}")
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
        lines[fixes_at] = f"{key_indent}{var}:{'  ' + comment if comment else ''}{newline}"
    insert_at = (last_item if last_item is not None else fixes_at) + 1
    if not lines[insert_at - 1].endswith(("\n", "\r")):
        lines[insert_at - 1] += newline
    lines.insert(insert_at, f"{item_indent}- {model}{newline}")
    return "".join(lines)


SECTION_LINE = re.compile(r"\s|#|-\s|-$")  # indented, a comment, or an unindented list item


def section_bounds(lines: list[str], key: str) -> tuple[int, int] | None:
    """Line range [start, end) of top-level block list `key`: its `key:` line and every line
    after it that is indented, blank, a comment, or an item written at column 0 (as PyYAML
    and formatters write lists); None when there is no such key."""
    start = next((i for i, line in enumerate(lines) if re.match(rf"{key}:\s*(#.*)?$", line)), None)
    if start is None:
        return None
    end = next(
        (i for i in range(start + 1, len(lines)) if not SECTION_LINE.match(lines[i])), len(lines)
    )
    return start, end


def item_indent(lines: list[str], start: int, end: int) -> str:
    """The indentation of the list's items (two spaces when it has none yet)."""
    for line in lines[start + 1 : end]:
        if match := re.match(r"(\s*)-(\s|$)", line):
            return match.group(1)
    return "  "


def append_to_section(text: str, key: str, entry: str) -> str:
    """YAML text with `entry` (block-list item lines, items indented by two spaces) appended
    to top-level list `key`, indented as that list's items are."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    bounds = section_bounds(lines, key)
    if bounds is None:
        return "".join(lines) + f"\n{key}:\n{entry}"
    start, end = bounds
    indent = item_indent(lines, start, end)
    entry = "".join(
        indent + line[2:] if line.startswith("  ") else line
        for line in entry.splitlines(keepends=True)
    )
    followed = end < len(lines)  # comments at column 0 just before the next key belong to it
    while end > start + 1 and (
        not lines[end - 1].strip() or (followed and lines[end - 1].startswith("#"))
    ):
        end -= 1
    separator = "\n" if end > start + 1 else ""
    lines.insert(end, separator + entry)
    return "".join(lines)


def described_entry(model: str, description: str) -> str:
    """A model entry with a finished description (folded, wrapped at 88 columns)."""
    lines = textwrap.wrap(description, 82) or [""]
    return f"  - name: {model}\n    description: >\n" + "".join(f"      {line}\n" for line in lines)


def entries(
    model: str, *, context: bool = False, test: str | None = None, description: str | None = None
) -> tuple[str, str]:
    """The model entry and unit-test item added for `model` (`test`: one written already;
    `description`: the model's, instead of a TODO)."""
    entry, skeleton = (
        (CONTEXT_MODEL_ENTRY, CONTEXT_TEST_ENTRY) if context else (MODEL_ENTRY, TEST_ENTRY)
    )
    model_entry = (
        described_entry(model, description)
        if description is not None
        else entry.format(model=model)
    )
    return model_entry, test if test is not None else skeleton.format(model=model)


def add_to_models_yml(
    text: str,
    model: str,
    *,
    context: bool = False,
    test: str | None = None,
    description: str | None = None,
) -> str:
    """The fixes' YAML with `model`'s description and unit test (a skeleton unless given)
    appended."""
    text = text or "version: 2\n"
    entry, test = entries(model, context=context, test=test, description=description)
    text = re.sub(r"(?m)^(models|unit_tests): \[\]\s*$", r"\1:", text)  # an empty flow list
    text = append_to_section(text, "models", entry)
    return append_to_section(text, "unit_tests", test)


def described(yml_text: str) -> tuple[list[str], list[str]]:
    """Model names and unit-test names in a models YAML text."""
    document = yaml.safe_load(yml_text) or {}
    models = [m.get("name") for m in document.get("models") or []]
    return models, [t.get("name") for t in document.get("unit_tests") or []]


def new_fix(
    project_dir: Path,
    name: str,
    *,
    context: bool = False,
    test: str | None = None,
    sql: str | None = None,
    description: str | None = None,
) -> NewFix:
    """Create models/fixes/<model>.sql (context fixes: models/context_fixes/), describe and
    unit-test it in the chain's YAML, and append it to var `fixes` (`context_fixes`).
    `test`: the unit-test item to add instead of the skeleton (real_rows.test_entry); `sql`
    and `description`: the fix's, instead of the no-op template and a TODO.
    Nothing is written unless every edit checks out."""
    var = "context_fixes" if context else "fixes"
    model = model_name(name, "context_fix_" if context else "fix_")
    fixes = read_chain(project_dir, var)
    if model in fixes:
        raise ScaffoldError(f"{model} is already in var '{var}' in dbt_project.yml.")
    folder, models_yml = (
        (CONTEXT_FIXES_DIR, CONTEXT_MODELS_YML) if context else (FIXES_DIR, MODELS_YML)
    )
    sql_path, yml_path = project_dir / folder / f"{model}.sql", project_dir / models_yml
    if sql_path.exists():
        raise ScaffoldError(f"{sql_path.relative_to(project_dir)} already exists.")

    project_file = project_dir / "dbt_project.yml"
    updated_project = append_to_chain(project_file.read_text(), model, var)
    if chain_from_text(updated_project, var) != [*fixes, model]:
        raise ScaffoldError(
            f"could not append {model} to var '{var}' in dbt_project.yml automatically; "
            "add it to the list by hand."
        )
    yml_text = yml_path.read_text() if yml_path.exists() else ""
    updated_yml, layout_kept = models_yml_with(
        yml_text, model, models_yml, context=context, test=test, description=description
    )
    template = CONTEXT_SQL_TEMPLATE if context else SQL_TEMPLATE
    sql_path.parent.mkdir(parents=True, exist_ok=True)
    sql_path.write_text(sql if sql is not None else template.format(model=model))
    yml_path.write_text(updated_yml)
    project_file.write_text(updated_project)
    return NewFix(
        model=model,
        sql_path=sql_path.relative_to(project_dir),
        yml_path=yml_path.relative_to(project_dir),
        position=len(fixes) + 1,
        after=fixes[-1] if fixes else None,
        var=var,
        layout_kept=layout_kept,
    )


def models_yml_with(
    yml_text: str,
    model: str,
    models_yml: Path,
    *,
    context: bool = False,
    test: str | None = None,
    description: str | None = None,
) -> tuple[str, bool]:
    """The fixes' YAML with `model`'s entries appended, and whether its text (comments,
    layout) was kept: lines are added when the lists are block lists, indented or not;
    any other valid layout (flow lists, anchors) is written again from the parsed document,
    without its comments. The result is checked to be the document with the two entries."""
    try:
        document = yaml.safe_load(yml_text) or {}
        if not isinstance(document, dict):
            raise TypeError("not a mapping")
        models, tests = described(yml_text)
    except (yaml.YAMLError, AttributeError, TypeError):
        raise ScaffoldError(
            f"{models_yml} is not a valid dbt properties file (a YAML mapping with lists "
            "`models:` and `unit_tests:`); fix it, then run this again."
        ) from None
    if model in models or f"test_{model}" in tests:
        raise ScaffoldError(f"{models_yml} already describes {model}; remove its entries first.")
    entry, test_item = entries(model, context=context, test=test, description=description)
    expected = {
        **(document or {"version": 2}),
        "models": [*(document.get("models") or []), *yaml.safe_load(entry)],
        "unit_tests": [*(document.get("unit_tests") or []), *yaml.safe_load(test_item)],
    }
    try:
        edited = add_to_models_yml(
            yml_text, model, context=context, test=test, description=description
        )
        if yaml.safe_load(edited) == expected:
            return edited, True
    except yaml.YAMLError:
        pass
    rewritten = yaml.safe_dump(expected, sort_keys=False, allow_unicode=True, width=100)
    return rewritten, False


# -- removing a fix: the undo of new_fix -------------------------------------------------


@dataclass(frozen=True)
class RemovedFix:
    model: str
    sql_path: Path | None  # the model file removed, if there was one
    yml_path: Path
    described: bool  # its model entry was in the YAML
    unit_tests: list[str]
    position: int | None  # its place in var `fixes` (1-based), if it was there
    chain_length: int
    var: str = "fixes"


def remove_from_chain(text: str, model: str, var: str = "fixes") -> str:
    """dbt_project.yml's text without `model` in var `var`, the rest (comments) untouched."""
    lines = text.splitlines(keepends=True)
    in_vars, in_fixes, key_indent = False, False, ""
    for index, line in enumerate(lines):
        stripped = line.rstrip("\r\n")
        if re.match(r"vars:\s*(#.*)?$", line):
            in_vars = True
            continue
        if in_vars and re.match(r"[^\s#]", line):
            break
        if not in_vars:
            continue
        if match := re.match(rf"(\s+){var}:(.*)$", stripped):
            key_indent, rest = match.group(1), match.group(2)
            shape = re.fullmatch(r"\s*([^#]*?)\s*(#.*)?", rest)
            assert shape is not None  # the pattern matches any text
            value, comment = shape.groups()
            if value.startswith("["):  # flow style: fixes: [a, b]
                items = [item.strip() for item in value.strip("[] ").split(",") if item.strip()]
                kept = ", ".join(item for item in items if item != model)
                padding = f"  {comment}" if comment else ""
                newline = line[len(stripped) :]
                lines[index] = f"{key_indent}{var}: [{kept}]{padding}{newline}"
                return "".join(lines)
            in_fixes = True
            continue
        if in_fixes:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            indent = len(line) - len(line.lstrip())
            if not line.lstrip().startswith("- ") or indent < len(key_indent):
                break
            entry = re.match(r"\s*-\s*([^#]*?)\s*(#.*)?$", stripped)
            item = entry.group(1) if entry else ""
            if item.strip("'\"") == model:
                del lines[index]
                return "".join(lines)
    return text


def entry_spans(text: str, section: str) -> dict[str, tuple[int, int]]:
    """Line ranges [start, end) of each `- name: X` item of top-level block list `section`,
    without the blank lines that follow an item (they separate it from the next)."""
    lines = text.splitlines(keepends=True)
    bounds = section_bounds(lines, section)
    if bounds is None:
        raise KeyError(section)
    start, end = bounds
    items: list[tuple[str, int, int]] = []
    for index in range(start + 1, end):
        if match := re.match(r"(\s*)- name:\s*['\"]?([^'\"#\s]+)", lines[index]):
            items.append((match.group(2), index, len(match.group(1))))
    spans = {}
    for number, (name, first, indent) in enumerate(items):
        last = items[number + 1][1] if number + 1 < len(items) else end
        stop = first + 1
        for index in range(first + 1, last):  # the item's own lines: deeper than its dash
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            stop = index + 1
        while stop > first + 1 and not lines[stop - 1].strip():
            stop -= 1
        spans[name] = (first, stop)
    return spans


def remove_entries(text: str, section: str, names: list[str]) -> str:
    """YAML text without the named items of block list `section`, and the blank line that
    separated each from its neighbour (as append_to_section added it)."""
    for name in names:
        lines = text.splitlines(keepends=True)
        first, stop = entry_spans(text, section)[name]
        if first > 0 and not lines[first - 1].strip():
            first -= 1  # the separator before it
        elif stop < len(lines) and not lines[stop].strip():
            stop += 1  # the first item: the separator after it
        text = "".join(lines[:first] + lines[stop:])
    return text


def empty_sections_as_flow(text: str) -> str:
    """`models:` / `unit_tests:` left without items written back as `[]` (as shipped)."""
    for section in ("models", "unit_tests"):
        found = re.search(rf"(?m)^{section}:[ \t]*$", text)
        if found is not None and not entry_spans(text, section):
            text = text[: found.end()] + " []" + text[found.end() :]
    return text


def remove_fix(project_dir: Path, name: str, *, context: bool = False) -> RemovedFix:
    """Delete models/fixes/<model>.sql (context fixes: models/context_fixes/), its model
    entry and unit tests in the chain's YAML, and its name in var `fixes` (`context_fixes`).
    Nothing is written unless every edit checks out."""
    var = "context_fixes" if context else "fixes"
    model = model_name(name, "context_fix_" if context else "fix_")
    fixes = read_chain(project_dir, var)
    folder, models_yml = (
        (CONTEXT_FIXES_DIR, CONTEXT_MODELS_YML) if context else (FIXES_DIR, MODELS_YML)
    )
    sql_path, yml_path = project_dir / folder / f"{model}.sql", project_dir / models_yml
    yml_text = yml_path.read_text() if yml_path.exists() else ""
    try:
        document = yaml.safe_load(yml_text) or {}
        models = [m.get("name") for m in document.get("models") or []]
        own_tests = [
            t.get("name") for t in document.get("unit_tests") or [] if t.get("model") == model
        ]
    except (yaml.YAMLError, AttributeError, TypeError):
        raise ScaffoldError(
            f"{models_yml} is not valid YAML with block lists `models:` and `unit_tests:`; "
            "remove the fix's entries by hand."
        ) from None
    if model not in fixes and not sql_path.exists() and model not in models and not own_tests:
        known = ", ".join(fixes) if fixes else "none"
        raise ScaffoldError(
            f"there is no fix {model}: not in var '{var}' in dbt_project.yml, no "
            f"{sql_path.relative_to(project_dir)}, no entry in {models_yml}. "
            f"The fixes are {known}."
        )

    project_file = project_dir / "dbt_project.yml"
    project_text = project_file.read_text()
    updated_project = remove_from_chain(project_text, model, var)
    if chain_from_text(updated_project, var) != [f for f in fixes if f != model]:
        raise ScaffoldError(
            f"could not remove {model} from var '{var}' in dbt_project.yml automatically; "
            "remove it from the list by hand."
        )
    updated_yml = _yml_without(yml_text, document, model, own_tests, models_yml)
    had_sql = sql_path.exists()
    if had_sql:
        sql_path.unlink()
    if updated_yml != yml_text:
        yml_path.write_text(updated_yml)
    if updated_project != project_text:
        project_file.write_text(updated_project)
    return RemovedFix(
        model=model,
        sql_path=sql_path.relative_to(project_dir) if had_sql else None,
        yml_path=yml_path.relative_to(project_dir),
        described=model in models,
        unit_tests=own_tests,
        position=fixes.index(model) + 1 if model in fixes else None,
        chain_length=len(fixes),
        var=var,
    )


def _yml_without(
    yml_text: str, document: dict[str, Any], model: str, own_tests: list[str], models_yml: Path
) -> str:
    """`yml_text` without `model`'s entry and its unit tests `own_tests`, edited as text
    (comments kept) and checked against the parsed `document` with them removed."""
    models = [m.get("name") for m in document.get("models") or []]
    tests = [t.get("name") for t in document.get("unit_tests") or []]
    try:
        updated_yml = yml_text
        if model in models:
            updated_yml = remove_entries(updated_yml, "models", [model])
        if own_tests:
            updated_yml = remove_entries(updated_yml, "unit_tests", own_tests)
        updated_yml = empty_sections_as_flow(updated_yml)
        expected = {
            **document,
            "models": [m for m in document.get("models") or [] if m.get("name") != model],
            "unit_tests": [
                t for t in document.get("unit_tests") or [] if t.get("name") not in own_tests
            ],
        }
        for key in ("models", "unit_tests"):
            if key not in document:
                del expected[key]
        ok = (yaml.safe_load(updated_yml) or {}) == expected and described(updated_yml) == (
            [m for m in models if m != model],
            [t for t in tests if t not in own_tests],
        )
    except (yaml.YAMLError, StopIteration, KeyError, AttributeError, TypeError):
        ok = False
    if not ok:
        raise ScaffoldError(
            f"could not remove {model}'s entries from {models_yml} automatically (are they "
            "block-style `- name:` items?); remove its model entry and unit tests by hand."
        )
    return updated_yml
