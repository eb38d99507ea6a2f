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


def loader_modules() -> dict[str, Path]:
    """Every module of loader/ by dotted name (a package by its own name)."""
    modules = {}
    for path in LOADER.rglob("*.py"):
        parts = path.relative_to(LOADER.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def module_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The loader modules that module `name` imports (lazy ones, and those under
    TYPE_CHECKING, too): `from a.b import c` imports module `a.b.c` when there is one,
    else `a.b`."""

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        found |= {m for t in targets if t.split(".")[0] == "loader" and (m := known(t))}
    return found - {name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_module_imports_itself_through_others():
    """No import cycle among loader's modules: each module can be read (and imported) after
    the ones it uses."""
    modules = loader_modules()
    graph = {name: module_imports(name, path, modules) for name, path in modules.items()}
    assert import_cycles(graph) == []


def test_the_cycle_check_sees_a_cycle_through_lazy_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    modules = loader_modules()
    name = "loader.push.send_plan"
    assert "loader.push.ledger" in module_imports(name, modules[name], modules)
