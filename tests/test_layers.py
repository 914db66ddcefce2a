"""The package's layers only look down: a test of the import edges, so the layout cannot drift back.

Layers, bottom to top (CONTRIBUTING.md): core (sans-IO) -> transports -> shared (config, metrics,
runfolder, ...) -> apps (prober, load, report, mock) -> ops (stack, demo) -> cli. An app imports no other
app: what two apps share (the run folder's layout between load and report) is a module of its own below
them. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tokenpulse"

#: unit -> the units it may import (besides itself). A unit is a subpackage, or a top-level module.
CORE = {"core"}
TRANSPORTS = CORE | {"transports"}
SHARED = TRANSPORTS | {"config", "yamlfile", "metrics", "gctune", "runfolder", "version"}
ALLOWED: dict[str, set[str]] = {
    "version": set(),
    "core": set(),
    "transports": CORE,
    "yamlfile": set(),
    "gctune": set(),
    "config": CORE | {"yamlfile"},
    "metrics": CORE | {"version"},
    "runfolder": CORE,
    "prober": SHARED,
    "load": SHARED,
    "report": SHARED,
    "mock": SHARED,
    "ops": SHARED | {"prober", "load", "report", "mock"},
    "cli": SHARED | {"prober", "load", "report", "mock", "ops"},
    "__main__": {"cli"},
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "version"  # `tokenpulse` itself only holds __version__


def _imports() -> dict[str, set[tuple[str, str]]]:
    """unit -> {(imported unit, file:line)} for every `tokenpulse` import in the package."""
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        own = _unit(".".join(parts)) if len(parts) > 1 else "version"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
                if node.module == "tokenpulse":
                    names = [f"tokenpulse.{alias.name}" if alias.name != "__version__" else "tokenpulse"
                             for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level:
                pytest.fail(f"{rel}:{node.lineno}: relative import; use absolute imports")
            for name in names:
                if name == "tokenpulse" or name.startswith("tokenpulse."):
                    other = _unit(name)
                    if other != own:
                        edges[own].add((other, f"{rel}.py:{node.lineno}"))
    return edges


def test_every_unit_is_known() -> None:
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert units - set(ALLOWED) == set(), "a new top-level unit needs its place in ALLOWED (and CONTRIBUTING.md)"


def test_layers_only_look_down() -> None:
    wrong = sorted(f"{where}: {unit} imports {other}"
                   for unit, found in _imports().items() for other, where in found
                   if other not in ALLOWED.get(unit, set()))
    assert wrong == []


def test_no_cycles_between_units() -> None:
    graph = {unit: {other for other, _ in found} for unit, found in _imports().items()}
    seen: dict[str, int] = {}

    def visit(unit: str, path: list[str]) -> None:
        seen[unit] = 1
        for other in sorted(graph.get(unit, ())):
            if seen.get(other) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path, unit, other]))
            if other not in seen:
                visit(other, [*path, unit])
        seen[unit] = 2

    for unit in sorted(graph):
        if unit not in seen:
            visit(unit, [])


def test_core_does_no_io() -> None:
    """The sans-IO core reads no clock and opens no socket, file or process: time and bytes are inputs."""
    banned = {"socket", "asyncio", "gevent", "subprocess", "selectors", "ssl", "httpx", "urllib.request"}
    found = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [f"{path.name}: {a.name}" for a in node.names if a.name in banned]
            elif isinstance(node, ast.ImportFrom) and node.module in banned:
                found.append(f"{path.name}: {node.module}")
    assert found == []
