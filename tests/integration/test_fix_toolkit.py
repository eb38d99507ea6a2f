"""The fix toolkit's own unit tests (the macros of macros/fix_macros.sql and
macros/context_fix_macros.sql on small test-only models, tests/dbt_toolkit/), run by dbt
in a copy of the project: they live outside the project's models, so that a user's
build, `loader new-fix`, `loader lint` and the docs never see them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from loader.ingest.importer import ingest
from tests.conftest import ROOT, run_dbt
from tests.integration.test_new_fix import PROJECT_PARTS
from tests.quarantine import example_batch, write_file

TOOLKIT = ROOT / "tests/dbt_toolkit"


def unit_test_names() -> list[str]:
    names = []
    for path in sorted(TOOLKIT.rglob("*.yml")):
        names += [test["name"] for test in yaml.safe_load(path.read_text())["unit_tests"]]
    return names


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project (without the demo's fixes) with the toolkit's test models in
    models/toolkit_tests/."""
    project = tmp_path_factory.mktemp("toolkit") / "project"
    project.mkdir()
    for part in PROJECT_PARTS:
        source, target = ROOT / part, project / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    shutil.rmtree(project / "models/demo")
    shutil.copytree(TOOLKIT, project / "models/toolkit_tests")
    return project


def test_the_toolkit_unit_tests_pass(project, tmp_path):
    warehouse = tmp_path / "backfill.duckdb"
    write_file(tmp_path / "q.txt", [example_batch()])
    with duckdb.connect(str(warehouse)) as con:
        ingest(con, [str(tmp_path / "q.txt")])
    # the test models' parents, empty: unit tests read their column types
    run_dbt(warehouse, "run", "--empty", "-s", "+path:models/toolkit_tests", project_dir=project)

    result = run_dbt(
        warehouse, "test", "-s", "path:models/toolkit_tests,test_type:unit", project_dir=project
    )

    names = unit_test_names()
    assert len(names) == 8, names
    stdout = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # dbt colours its results
    passed = set(re.findall(r" PASS \w+::(\w+) ", stdout))
    assert passed == set(names), stdout


def test_the_project_holds_no_toolkit_test(project):
    """Nothing of tests/dbt_toolkit/ is in the project's own models."""
    toolkit_models = {path.stem for path in TOOLKIT.rglob("*.sql")}
    project_models = {path.stem for path in (ROOT / "models").rglob("*.sql")}
    assert toolkit_models and not toolkit_models & project_models
    assert not list((ROOT / "models/fixes").rglob("*.sql"))
    assert not list((ROOT / "models/context_fixes").rglob("*.sql"))
