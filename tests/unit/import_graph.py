"""The package's import graph read from its source with `ast` (every import: module level, inside
functions and under TYPE_CHECKING), shared by the import-rule test and the architecture-doc test."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "neurflow_kb"
SOURCE = Path(__file__).resolve().parents[2] / PACKAGE


@dataclass
class ImportGraph:
    """`edges[module]`: the package modules it imports; `names`: (importer, module, name) of every
    `from module import name`; `files[module]`: its source file."""

    files: dict[str, Path]
    edges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    names: list[tuple[str, str, str]] = field(default_factory=list)

    def room_edges(self) -> dict[str, set[str]]:
        """Imports between rooms (a top-level module or subpackage of the package is a room)."""
        out: dict[str, set[str]] = defaultdict(set)
        for a, targets in self.edges.items():
            for b in targets:
                if room(a) != room(b):
                    out[room(a)].add(room(b))
        return out


def room(module: str) -> str:
    """`neurflow_kb.store.base` -> `store`; `neurflow_kb.errors` -> `errors`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(SOURCE.rglob("*.py")):
        parts = list(f.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _target(module: str, f: Path, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".") if f.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> ImportGraph:
    """Walk every module of the package and record what it imports from the package."""
    graph = ImportGraph(_modules())
    for module, f in graph.files.items():
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        graph.edges[module].add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                target = _target(module, f, node)
                if not target or target.split(".")[0] != PACKAGE:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in graph.files:              # `from . import queries`: the module itself
                        graph.edges[module].add(sub)
                    else:
                        graph.edges[module].add(target)
                        graph.names.append((module, target, alias.name))
    return graph


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found
