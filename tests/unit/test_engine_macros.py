"""Every engine-specific macro: a DuckDB and a Spark implementation, a default that stops
the compile, and dispatch in this project's namespace (macros/engines.sql)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT

PROJECT = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["name"]
MACROS = {path.name: path.read_text() for path in sorted((ROOT / "macros").glob("*.sql"))}
DISPATCHES = [
    (file, match)
    for file, text in MACROS.items()
    for match in re.finditer(r"adapter\.dispatch\(([^)]*)\)", text)
]
ALL = "\n".join(MACROS.values())


def defined(name: str) -> str | None:
    """The body of macro `name`, if defined."""
    found = re.search(r"\{% macro " + name + r"\(.*?\)\s*-?%\}(.*?)\{%-? endmacro", ALL, flags=re.S)
    return found.group(1) if found else None


def test_every_dispatch_names_the_project_namespace():
    assert DISPATCHES
    for file, match in DISPATCHES:
        name, *namespace = [part.strip().strip("'\"") for part in match.group(1).split(",")]
        assert namespace == [PROJECT], f"{file}: adapter.dispatch({match.group(1)})"


def test_every_dispatched_macro_has_duckdb_spark_and_a_failing_default():
    names = {match.group(1).split(",")[0].strip().strip("'\"") for _, match in DISPATCHES}
    for name in sorted(names):
        assert defined(f"duckdb__{name}") is not None, f"no duckdb__{name}"
        assert defined(f"spark__{name}") is not None, f"no spark__{name}"
        default = defined(f"default__{name}")
        assert default is not None and f"unsupported_engine('{name}')" in default, name
