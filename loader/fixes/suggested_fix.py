"""A finished fix written in one step (`loader suggest-fixes --accept NAME`): its SQL and
description as given, a unit test of real rows matching a predicate (`new-fix --rows`),
and that test's expect recorded from the fix's output (`fix-test --accept`).

If any step fails, what was written is removed again (`remove-fix`): the project is left
as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loader.errors import LoaderError
from loader.fixes.fix_test import FixTestResult, fix_test
from loader.fixes.real_rows import read_real_rows, test_entry
from loader.fixes.scaffold import NewFix, model_name, new_fix, remove_fix


@dataclass(frozen=True)
class WrittenFix:
    created: NewFix
    given_rows: int  # real rows the fix changes, in its unit test
    test: FixTestResult


def write_fix(
    project_dir: Path,
    warehouse: Path,
    name: str,
    *,
    sql: str,
    description: str,
    predicate: str,
) -> WrittenFix:
    """Write fix `name` with `sql` and `description`, unit-tested on real rows matching
    `predicate` (and one it does not match), its expect being the fix's output."""
    model = model_name(name)
    rows = read_real_rows(warehouse, predicate)
    created = new_fix(
        project_dir, name, test=test_entry(model, rows), sql=sql, description=description
    )
    try:
        result = fix_test(project_dir, name, warehouse, accept=True)
    except (LoaderError, OSError):
        remove_fix(project_dir, name)
        raise
    return WrittenFix(created, len(rows.matching), result)
