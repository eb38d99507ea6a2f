"""The fix chains as the project declares them: var `fixes` (and `context_fixes`) in
dbt_project.yml, in order, and what each chain must pass through unchanged.

dbt reads the var in one macro (`fix_chain()`, macros/fix_chain.sql); Python reads it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from loader.errors import LoaderError

PROJECT_FILE = "dbt_project.yml"
CHAIN_START = "int_events__classified"
KEPT_AS_IS = ("replay_key", "user_key", "timestamp_unixtime_ms")
FIXES_DIR = "models/fixes"
# the user key's inputs (int_batches__replay_context): a context fix keeps them unless its
# model says meta changes_identity: true
IDENTITY_INPUTS = ("mpid", "invalid_mpid", "user_identities", "device_info", "mp_deviceid")


@dataclass(frozen=True)
class ChainSpec:
    """One fix chain: the var listing it, where it starts, its folder, what passes through."""

    var: str
    start: str
    fixes_dir: str
    kept: tuple[str, ...]
    kept_why: str


EVENT_CHAIN = ChainSpec(
    "fixes",
    CHAIN_START,
    FIXES_DIR,
    KEPT_AS_IS,
    "a fix never changes the replay key, the user key or the original timestamp",
)
CONTEXT_CHAIN = ChainSpec(
    "context_fixes",
    "stg_quarantine__batches",
    "models/context_fixes",
    ("batch_key", *IDENTITY_INPUTS),
    "a context fix never changes the batch key, nor the user key's inputs unless its model "
    "says meta changes_identity: true",
)
CHAINS = (EVENT_CHAIN, CONTEXT_CHAIN)


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
