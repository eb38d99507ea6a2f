"""The fix chain as the project declares it: var `fixes` in dbt_project.yml, in order.

dbt reads the var in one macro (`fix_chain()`, macros/fix_chain.sql); Python reads it here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from loader.errors import LoaderError

PROJECT_FILE = "dbt_project.yml"


class ChainError(LoaderError):
    """dbt_project.yml is missing, not YAML, or its var `fixes` is not a list."""


def chain_from_text(text: str, var: str = "fixes") -> list[str]:
    """The fix model names that dbt_project.yml's text lists in var `var` (`fixes`, or
    `context_fixes` for the context fix chain)."""
    try:
        project = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ChainError(f"{PROJECT_FILE} is not valid YAML: {exc}") from None
    fixes = (project.get("vars") or {}).get(var) or []
    if not isinstance(fixes, list):
        raise ChainError(f"var '{var}' in {PROJECT_FILE} must be a list of fix model names.")
    return [str(name) for name in fixes]


def read_chain(project_dir: Path, var: str = "fixes") -> list[str]:
    """The fix chain (var `var`) of the dbt project in `project_dir`."""
    path = project_dir / PROJECT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ChainError(f"{path} not found: run this in the dbt project's folder.") from None
    return chain_from_text(text, var)
