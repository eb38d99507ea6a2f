"""`loader fix-test NAME [--accept]`: the fix's actual output on its unit test's given rows,
shown as a diff against the test's `expect`, and recorded there with --accept.

dbt compiles the chain (as `loader lint` does, against a warehouse holding only the seeds);
the fix's compiled SQL runs in DuckDB with its chain input replaced by a table of the given
rows, typed like the warehouse's `int_events__classified` (missing columns are null, as in
a dbt unit test). The expected rows hold the given columns plus every column the fix
changed, with values as DuckDB returns them (changed JSON compact, as dbt compares it).
"""

from __future__ import annotations

import difflib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml

from loader.errors import LoaderError
from loader.fixes.chain import CHAIN_START, read_chain
from loader.fixes.fixture_values import yaml_row
from loader.fixes.lint_compile import CompileFailed, compile_fixes
from loader.fixes.scaffold import MODELS_YML, entry_spans, model_name
from loader.warehouse import connect

INPUT = f"ref('{CHAIN_START}')"


class FixTestError(LoaderError):
    """The fix's unit test cannot be run or recorded as asked."""


@dataclass
class FixTestResult:
    model: str
    test: str
    diff: list[str]  # unified diff of the test's expect block; empty when it matches
    written: bool = False
    changed_rows: int = 0
    notes: list[str] = field(default_factory=list)


def unit_test_of(document: dict[str, Any], model: str, test: str | None) -> dict[str, Any]:
    tests = [t for t in document.get("unit_tests") or [] if t.get("model") == model]
    if test is not None:
        tests = [t for t in tests if t.get("name") == test]
    if not tests:
        raise FixTestError(
            f"{MODELS_YML} has no unit test {test or ''} of {model}: create one with "
            f"`loader new-fix NAME --rows PREDICATE`."
        )
    if len(tests) > 1:
        names = ", ".join(str(t.get("name")) for t in tests)
        raise FixTestError(f"{model} has several unit tests ({names}): choose one with --test.")
    found: dict[str, Any] = tests[0]
    return found


def given_rows(test: dict[str, Any]) -> list[dict[str, Any]]:
    for given in test.get("given") or []:
        if str(given.get("input", "")).replace('"', "'") == INPUT:
            rows = given.get("rows") or []
            if given.get("format", "dict") != "dict" or not all(isinstance(r, dict) for r in rows):
                raise FixTestError(f"{test['name']}: give rows as YAML mappings (format dict).")
            if any("replay_key" not in row for row in rows):
                raise FixTestError(f"{test['name']}: every given row needs its replay_key.")
            return rows
    raise FixTestError(f"{test['name']} gives no rows of {INPUT}.")


def run_fix(
    project_dir: Path, warehouse: Path, model: str, rows: list[dict[str, Any]]
) -> tuple[Any, ...]:
    """The input rows (typed) and the fix's output rows, as dicts by replay_key."""
    chain = read_chain(project_dir)
    if model not in chain:
        raise FixTestError(f"{model} is not in var 'fixes' in dbt_project.yml.")
    if not warehouse.exists():
        raise FixTestError(
            f"{warehouse.absolute()} not found: the given rows are typed like its tables."
        )
    with tempfile.TemporaryDirectory(prefix="loader-fix-test-") as work:
        try:
            manifest = compile_fixes(project_dir, chain, Path(work))
        except CompileFailed as failed:
            raise FixTestError(
                "dbt could not compile the fixes: "
                + "; ".join(str(p) for p in failed.problems)
                + " (run `loader lint`)"
            ) from None
        nodes = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
        position = chain.index(model)
        input_model = CHAIN_START if position == 0 else chain[position - 1]
        compiled = nodes[model]["compiled_code"]
        sql = compiled.replace(nodes[input_model]["relation_name"], "given_rows")
        con = connect(Path(work) / "lint.duckdb")
        with con:
            con.execute(f"attach '{warehouse}' as warehouse (read_only)")
            try:
                types = {
                    r[0]: r[1] for r in con.execute(f"describe warehouse.{CHAIN_START}").fetchall()
                }
            except duckdb.CatalogException:
                raise FixTestError(f"{warehouse} has no {CHAIN_START}: run `dbt build`.") from None
            con.execute(
                f"create temp table given_rows as select * from warehouse.{CHAIN_START} limit 0"
            )
            for row in rows:
                unknown = [c for c in row if c not in types]
                if unknown:
                    raise FixTestError(f"given row has {', '.join(unknown)}: not a chain column.")
                values = ", ".join(f'?::{types[c]} as "{c}"' for c in row)
                con.execute(f"insert into given_rows by name select {values}", list(row.values()))
            try:
                before = fetch(con, "select * from given_rows")
                after = fetch(con, f"select * from ({sql})")
            except duckdb.Error as exc:
                raise FixTestError(f"{model} does not run on the given rows: {exc}") from None
    return before, after


def fetch(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return {
        str(r[names.index("replay_key")]): dict(zip(names, r, strict=True))
        for r in cursor.fetchall()
    }


def expected_rows(
    rows: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any]
) -> tuple[list[dict[str, Any]], int, list[str]]:
    """The expect rows: given columns plus changed ones, in the given order."""
    notes = []
    changed = sorted(
        {c for key, out in after.items() if key in before for c in out if out[c] != before[key][c]}
    )
    columns = list(dict.fromkeys([*[c for row in rows for c in row], *changed]))
    expect, changed_rows = [], 0
    for row in rows:
        key = str(row["replay_key"])
        if key not in after:
            notes.append(f"the fix returns no row {key} (a fix keeps every row: set skip_reason)")
            continue
        out = after[key]
        changed_rows += any(out[c] != before[key][c] for c in out)
        expect.append({c: out[c] for c in columns})
    extra = sorted(set(after) - set(before))
    if extra:
        notes.append(f"the fix returns rows it was not given: {', '.join(extra)}")
    return expect, changed_rows, notes


def expect_block(lines: list[str], first: int, stop: int) -> tuple[int, int, str]:
    """Line range of the test item's `expect:` block, and its indentation."""
    for index in range(first, stop):
        if match := re.match(r"(\s*)expect:\s*(#.*)?$", lines[index]):
            indent = len(match.group(1))
            end = index + 1
            while end < stop and (
                not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
            ):
                end += 1
            while end > index + 1 and not lines[end - 1].strip():
                end -= 1
            return index, end, match.group(1)
    raise FixTestError(
        "the unit test's expect is not a block mapping `expect:` on its own line; "
        "write it as one, or copy the rows shown into it by hand."
    )


def fix_test(
    project_dir: Path,
    name: str,
    warehouse: Path,
    *,
    test: str | None = None,
    accept: bool = False,
) -> FixTestResult:
    """Run the fix on its unit test's given rows; diff against `expect`; write it if asked."""
    model = model_name(name)
    path = project_dir / MODELS_YML
    text = path.read_text() if path.exists() else ""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise FixTestError(f"{MODELS_YML} is not valid YAML: {exc}") from None
    unit_test = unit_test_of(document, model, test)
    rows = given_rows(unit_test)
    before, after = run_fix(project_dir, warehouse, model, rows)
    expect, changed_rows, notes = expected_rows(rows, before, after)

    lines = text.splitlines(keepends=True)
    first, stop = entry_spans(text, "unit_tests")[unit_test["name"]]
    start, end, indent = expect_block(lines, first, stop)
    new_block = [f"{indent}expect:\n", f"{indent}  rows:\n"] + [
        f"{indent}    - {yaml_row(row)}\n" for row in expect
    ]
    diff = list(
        difflib.unified_diff(
            lines[start:end], new_block, f"{MODELS_YML} (expect)", "the fix's output", n=1
        )
    )
    result = FixTestResult(model, unit_test["name"], diff, changed_rows=changed_rows, notes=notes)
    if accept and diff:
        updated = "".join(lines[:start] + new_block + lines[end:])
        check = yaml.safe_load(updated) or {}
        recorded = unit_test_of(check, model, unit_test["name"])
        if recorded.get("expect") != {"rows": expect} or recorded.get("given") != unit_test.get(
            "given"
        ):
            raise FixTestError(f"could not write the expected rows into {MODELS_YML} safely.")
        path.write_text(updated)
        result.written = True
    return result
