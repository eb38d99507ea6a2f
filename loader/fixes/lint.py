"""`loader lint`: check the fix chains before anything runs.

The project's files first (a fix outside its chain, a chain name without a model, TODOs
left from `loader new-fix`), then dbt compiles the chains (lint_compile) and every
compiled fix is held to the rules (lint_rules).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loader.fixes.chain import CHAINS, EVENT_CHAIN, ChainSpec, read_chain
from loader.fixes.lint_compile import CompileFailed, compile_fixes, compiled_fixes
from loader.fixes.lint_rules import Problem, lint_fix


@dataclass
class LintResult:
    fixes: list[str]
    problems: list[Problem]


def stray_fix_files(
    project_dir: Path, fixes: Iterable[str], spec: ChainSpec = EVENT_CHAIN
) -> list[Problem]:
    """SQL files directly in the chain's folder that are not in the chain (they do not apply)."""
    return [
        Problem(f"{spec.fixes_dir}/{path.name}", 1, 1, f"not in var '{spec.var}' in "
                "dbt_project.yml: it is not applied; add it to the chain or move it out of "
                f"{spec.fixes_dir}")
        for path in sorted((project_dir / spec.fixes_dir).glob("*.sql"))
        if path.stem not in set(fixes)
    ]  # fmt: skip


def missing_fix_models(
    project_dir: Path, fixes: list[str], spec: ChainSpec = EVENT_CHAIN
) -> list[Problem]:
    """Names in the chain's var without a model file, on their line of dbt_project.yml."""
    models = {path.stem for path in (project_dir / "models").rglob("*.sql")}
    lines = (project_dir / "dbt_project.yml").read_text().splitlines()
    problems = []
    for name in fixes:
        if name in models:
            continue
        line = next((i for i, text in enumerate(lines, 1) if re.search(rf"\b{name}\b", text)), 1)
        col = lines[line - 1].find(name) + 1 if lines else 1
        problems.append(
            Problem("dbt_project.yml", line, max(col, 1), f"var '{spec.var}' lists {name}, "
                    f"but there is no model {name} (expected {spec.fixes_dir}/{name}.sql)")
        )  # fmt: skip
    return problems


NO_OP = "event_name as event_name"  # what `loader new-fix` puts in `* replace (...)`
CONTEXT_NO_OP = "environment as environment"  # and `loader new-fix --context`


def todo_in_fix_sql(
    project_dir: Path, fixes: list[str], spec: ChainSpec = EVENT_CHAIN
) -> list[Problem]:
    """The first TODO left in each fix's SQL (the skeleton's comment says what to write)."""
    problems = []
    for fix in fixes:
        path = project_dir / spec.fixes_dir / f"{fix}.sql"
        if not path.exists():
            continue
        source = path.read_text()
        for number, line in enumerate(source.splitlines(), 1):
            if "TODO" not in line:
                continue
            col = line.index("TODO") + 1
            hint = line[col + 3 :].strip(" :-#*}{").rstrip(".")
            message = f"TODO left in the fix: {hint}" if hint else "TODO left in the fix"
            no_op = next((text for text in (NO_OP, CONTEXT_NO_OP) if text in source), None)
            if no_op is not None:
                message += (
                    f". Its `* replace (...)` is still the no-op `{no_op}`: put fix macros or "
                    "SQL there (docs/fixes.md)"
                )
            problems.append(Problem(f"{spec.fixes_dir}/{path.name}", number, col, message))
            break
    return problems


def todo_in_fix_yaml(project_dir: Path, spec: ChainSpec = EVENT_CHAIN) -> list[Problem]:
    """TODOs left in the fixes' YAML, one problem per model entry or unit test."""
    problems = []
    for path in sorted((project_dir / spec.fixes_dir).glob("*.yml")):
        section, entry = None, None
        found: dict[tuple[str | None, str | None], list[tuple[int, int]]] = {}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if match := re.match(r"([A-Za-z_]+):", line):
                section, entry = match.group(1), None
            elif match := re.match(r"\s*- name:\s*['\"]?([^'\"#\s]+)", line):
                entry = match.group(1)
            if "TODO" in line:
                found.setdefault((section, entry), []).append((number, line.index("TODO") + 1))
        relative = f"{spec.fixes_dir}/{path.name}"
        for (section, entry), places in found.items():
            (first_line, col), numbers = places[0], ", ".join(str(n) for n, _ in places)
            if section == "models" and entry:
                message = (
                    f"the description of {entry} is still the TODO of `loader new-fix`: write "
                    "the symptom in the blocked data (the query that shows it) and what the fix "
                    "changes"
                )
            elif section == "unit_tests" and entry:
                message = (
                    f"unit test {entry} still holds the TODOs of `loader new-fix` (lines "
                    f"{numbers}): say what the fix must do, give rows as the fix receives them "
                    "(one it changes, one it must leave alone) and the rows it must return"
                )
            else:
                message = f"TODO left (lines {numbers}): finish or remove it"
            problems.append(Problem(relative, first_line, col, message))
    return problems


def lint_project(project_dir: Path) -> LintResult:
    """Compile the project's fix chains (event and context fixes) with dbt; lint every fix."""
    project_dir = project_dir.resolve()
    chains = [(spec, read_chain(project_dir, spec.var)) for spec in CHAINS]
    every = [fix for _, fixes in chains for fix in fixes]
    problems: list[Problem] = []
    missing: list[Problem] = []
    for spec, fixes in chains:
        problems += stray_fix_files(project_dir, fixes, spec)
        problems += todo_in_fix_yaml(project_dir, spec) + todo_in_fix_sql(project_dir, fixes, spec)
        missing += missing_fix_models(project_dir, fixes, spec)
    if missing or not every:
        return LintResult(every, unique(problems + missing))
    with tempfile.TemporaryDirectory(prefix="loader-lint-") as work:
        try:
            manifest = compile_fixes(project_dir, every, Path(work))
        except CompileFailed as failed:
            return LintResult(every, sorted(set(problems + failed.problems)))
    for spec, fixes in chains:
        if not fixes:
            continue
        compiled, schemas, chain_columns = compiled_fixes(project_dir, manifest, fixes, spec)
        for fix in compiled:
            problems += lint_fix(fix, schemas, chain_columns)
    return LintResult(every, unique(problems))


def unique(problems: list[Problem]) -> list[Problem]:
    """Each problem once, in the order first found."""
    return list(dict.fromkeys(problems))
