"""The fast suite (`pytest -m "not slow"`) reaches every room: each room of the package is imported by a
test module that has fast tests, at module level or inside one of its fast tests (read with `ast`); and
every command has its real-subprocess smoke test (in the full suite)."""

from __future__ import annotations

import ast
from pathlib import Path

from import_graph import PACKAGE, import_graph, room

TESTS = Path(__file__).resolve().parents[1]


def _is_slow(decorators: list[ast.expr]) -> bool:
    return any(isinstance(d, ast.Attribute) and d.attr == "slow" for d in decorators)


def _rooms_imported(nodes: list[ast.AST]) -> set[str]:
    found = set()
    for top in nodes:
        for node in ast.walk(top):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom)
                     and node.module else [])
            found |= {room(n) for n in names if n.split(".")[0] == PACKAGE and n.count(".") >= 1}
    return found


def fast_rooms() -> dict[str, set[str]]:
    """test module -> rooms its fast tests import (modules marked slow as a whole count for nothing)."""
    out = {}
    for f in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(f.read_text())
        marks = [n.value for n in tree.body if isinstance(n, ast.Assign)
                 and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)]
        module_slow = any("slow" in ast.unparse(m) for m in marks)
        tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        fast = [t for t in tests if not _is_slow(t.decorator_list)]
        if module_slow or not fast:
            continue
        top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        out[str(f.relative_to(TESTS))] = _rooms_imported([*top_level, *fast])
    return out


def test_every_room_has_fast_tests() -> None:
    rooms = {room(m) for m in import_graph().files if "." in m}
    covered = set().union(*fast_rooms().values())
    assert rooms - covered == set()


#: Commands whose console-script smoke test is not `test_COMMAND` of integration/test_cli_smoke.py.
SMOKE_ELSEWHERE = {"circuit": ("unit/test_cli_circuit.py", "test_circuit_command_on_efficientnet_lite0")}


def _test_names(path: Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}


def test_every_command_has_a_smoke_test() -> None:
    from neurflow_kb.cli import main

    for command in main.commands:
        where, name = SMOKE_ELSEWHERE.get(command, ("integration/test_cli_smoke.py", f"test_{command}"))
        assert name in _test_names(TESTS / where), \
            f"`neurflow-kb {command}` has no smoke test: add {name} to tests/{where}"
