"""Compiling the fix chains for `loader lint`: dbt compiles the fixes in a subprocess (its
own target folder, a warehouse holding only the seeds); the manifest gives each fix's
compiled SQL, its chain input, its refs and the columns of every relation it may read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlglot import exp

from loader.errors import LoaderError
from loader.fixes.chain import (
    CHAIN_START,
    CONTEXT_CHAIN,
    EVENT_CHAIN,
    IDENTITY_INPUTS,
    ChainSpec,
)
from loader.fixes.lint_rules import CompiledFix, Problem


class LintError(LoaderError):
    """The fixes could not be linted (dbt could not run)."""


def dbt_executable() -> str:
    beside = Path(sys.executable).parent / "dbt"
    found = str(beside) if beside.exists() else shutil.which("dbt")
    if not found:
        raise LintError("dbt not found: install the project (make setup) or put dbt on PATH.")
    return found


def compile_problems(output: str) -> list[Problem]:
    """dbt's errors, as problems on the files they name (dbt_project.yml when none)."""
    output = re.sub(r"(?m)^\d\d:\d\d:\d\d[ \t]+", "", output)  # dbt's time stamps
    headers = list(re.finditer(r"([A-Z][a-z]+ Error) in \w+ \S+ \(([^)]+)\)", output))
    problems = []
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(output)
        body = output[header.end() : end]
        line = re.search(r"(?m)^\s*line (\d+)\s*$", body)
        text = " ".join(part.strip() for part in body.splitlines() if part.strip())
        problems.append(
            Problem(header.group(2), int(line.group(1)) if line else 1, 1,
                    f"dbt could not compile ({header.group(1)}): {text}")
        )  # fmt: skip
    if not problems:
        text = " ".join(part.strip() for part in output.splitlines() if part.strip())
        problems.append(Problem("dbt_project.yml", 1, 1, f"dbt could not compile: {text[-2000:]}"))
    return problems


CREDENTIAL_PREFIXES = ("MPARTICLE_",)
# the direct destinations' keys, secrets and tokens (<NAME>_API_KEY, say)
CREDENTIAL_SUFFIXES = ("_API_KEY", "_API_SECRET", "_SECRET", "_TOKEN")


def child_environment() -> dict[str, str]:
    """This process's environment without the destinations' credentials: dbt needs none."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(CREDENTIAL_PREFIXES) and not k.upper().endswith(CREDENTIAL_SUFFIXES)
    }


def compile_fixes(project_dir: Path, fixes: list[str], work_dir: Path) -> dict[str, Any]:
    """Load the seeds (fix macros check values against them), then `dbt compile` the fixes;
    the manifest, or CompileFailed with the problems."""
    common = [
        "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
        "--target-path", str(work_dir / "target"), "--log-path", str(work_dir / "logs"),
        "--no-use-colors", "--quiet",
    ]  # fmt: skip
    env = {**child_environment(), "BACKFILL_DUCKDB": str(work_dir / "lint.duckdb")}
    for command in (
        [dbt_executable(), "seed", *common],
        [dbt_executable(), "compile", "--select", *fixes, "--indirect-selection", "empty", *common],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=project_dir)
        if result.returncode != 0:
            raise CompileFailed(compile_problems(f"{result.stdout}\n{result.stderr}"))
    manifest: dict[str, Any] = json.loads((work_dir / "target" / "manifest.json").read_text())
    return manifest


class CompileFailed(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} compilation problems")
        self.problems = problems


def relation_key(relation_name: str) -> str:
    table = exp.to_table(relation_name, dialect="duckdb")
    return ".".join(p.lower() for p in (table.catalog, table.db, table.name) if p)


def chain_inputs(fixes: list[str], start: str = CHAIN_START) -> dict[str, str]:
    return {fix: (start if i == 0 else fixes[i - 1]) for i, fix in enumerate(fixes)}


def kept_columns(node: dict[str, Any], spec: ChainSpec) -> tuple[str, ...]:
    """What a fix must pass through: a context fix that declares changes_identity may
    change the user key's inputs."""
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    if spec is CONTEXT_CHAIN and meta.get("changes_identity") is True:
        return tuple(c for c in spec.kept if c not in IDENTITY_INPUTS)
    return spec.kept


def compiled_fixes(
    project_dir: Path, manifest: dict[str, Any], fixes: list[str], spec: ChainSpec = EVENT_CHAIN
) -> tuple[list[CompiledFix], dict[str, list[str]], list[str]]:
    """The compiled fixes, the columns of every relation they may read, the chain columns."""
    readable = [
        n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed", "snapshot")
    ]
    nodes = {n["name"]: n for n in readable if n["resource_type"] == "model"}
    relations = {relation_key(n["relation_name"]): n for n in readable if n.get("relation_name")}
    sources = {relation_key(s["relation_name"]) for s in manifest["sources"].values()}
    chain_columns = list(nodes[spec.start]["columns"])
    chain_names = {spec.start, *fixes}
    schemas = {
        key: chain_columns if node["name"] in chain_names else list(node["columns"])
        for key, node in relations.items()
    }
    result: list[CompiledFix] = []
    for fix, input_name in chain_inputs(fixes, spec.start).items():
        node = nodes[fix]
        depends_on = [manifest["nodes"].get(dep) or {} for dep in node["depends_on"]["nodes"]]
        refs = {
            relation_key(dep["relation_name"]): dep["name"]
            for dep in depends_on
            if dep.get("relation_name")
        }
        result.append(
            CompiledFix(
                name=fix,
                path=node["original_file_path"],
                source=(project_dir / node["original_file_path"]).read_text(),
                compiled=node["compiled_code"],
                input_relation=relation_key(nodes[input_name]["relation_name"]),
                refs=refs,
                sources=sources,
                kept=kept_columns(node, spec),
                kept_why=spec.kept_why,
                chain_start=spec.start,
            )
        )
    return result, schemas, chain_columns
