"""The import directions docs/architecture.md draws: a package may import only what it is
allowed to (checked on every `import` and `from ... import` in loader/, lazy ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LOADER = Path(__file__).resolve().parents[2] / "loader"
SHARED = {"errors", "settings", "warehouse", "build_settings", "object_storage", "refusals"}
ALLOWED = {
    "events_api": set(),
    "amplitude_api": set(),
    "emulator": {"events_api", "amplitude_api"},
    "ingest": set(),
    "push": {"events_api", "amplitude_api"},
    "fixes": set(),
    "audit": {"push"},
    "cli": {"events_api", "amplitude_api", "emulator", "ingest", "push", "fixes", "audit"},
}


def loader_imports(path: Path) -> set[str]:
    """The first component after `loader.` of every loader module `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "loader" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_it_may(package):
    allowed = ALLOWED[package] | SHARED | {package}
    wrong = {
        f"{path.relative_to(LOADER)} imports loader.{name}"
        for path in (LOADER / package).rglob("*.py")
        for name in loader_imports(path) - allowed
    }
    assert wrong == set()


def test_the_shared_modules_import_no_package():
    packages = set(ALLOWED)
    wrong = {
        f"{name}.py imports loader.{imported}"
        for name in SHARED
        for imported in loader_imports(LOADER / f"{name}.py") & packages
    }
    assert wrong == set()


def test_every_package_is_listed():
    on_disk = {p.name for p in LOADER.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert on_disk == set(ALLOWED)
