"""dbt's saved parse (partial_parse.msgpack), shared by the dbt runs of one test run.

A full parse of the project costs a dbt run more than many of the builds the tests make.
`run_dbt` starts each fresh target folder from the parse an earlier run saved for the same
project, warehouse name, vars and settings; dbt compares that parse with every project
file, var and profile setting itself and parses again what differs, so a stale entry
costs time, never correctness. Only the project itself (ROOT) is cached: tests' edited
copies of it are parsed as before. The cache lives in the test run's temporary folder,
shared by pytest-xdist's workers (each entry written once, atomically).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

PARSE_FILE = "partial_parse.msgpack"
SETTINGS = ("BACKFILL_MEMORY_LIMIT", "BACKFILL_TEMP_DIRECTORY")  # read by profiles.yml

_folder: Path | None = None


def use_folder(folder: Path | None) -> None:
    """Where this test run keeps saved parses (None: no cache)."""
    global _folder
    _folder = folder
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)


def _entry(key: tuple[str, ...]) -> Path | None:
    from tests.conftest import ROOT

    if _folder is None or key[0] != str(ROOT.resolve()):
        return None
    settings = tuple(os.environ.get(name, "") for name in SETTINGS)
    digest = hashlib.sha256(repr((key, settings)).encode()).hexdigest()[:32]
    return _folder / f"{digest}.msgpack"


def reuse_parse(key: tuple[str, ...], target: Path) -> None:
    """Start a target folder that has no parse yet from the saved one for `key`."""
    entry = _entry(key)
    if entry is None or not entry.exists() or (target / PARSE_FILE).exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry, target / PARSE_FILE)


def save_parse(key: tuple[str, ...], target: Path) -> None:
    """Keep the parse a run left in `target` for `key`, unless one is kept already."""
    entry = _entry(key)
    parsed = target / PARSE_FILE
    if entry is None or entry.exists() or not parsed.exists():
        return
    partial = entry.with_name(f"{entry.name}.{os.getpid()}")
    shutil.copyfile(parsed, partial)
    os.replace(partial, entry)
