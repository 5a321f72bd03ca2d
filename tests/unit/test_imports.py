"""Import rules of the package (docs/architecture.md): data flows one way, so no module imports one
that imports it back (directly or around a circle), no room depends on a room that depends on it, and
no room reaches into another room's private (underscore) names."""

from __future__ import annotations

from import_graph import cycles, import_graph, room


def test_no_module_import_cycle() -> None:
    graph = import_graph()
    assert len(graph.files) > 50 and sum(map(len, graph.edges.values())) > 100   # the walk saw the package
    assert cycles(graph.edges) == []


def test_no_room_import_cycle() -> None:
    rooms = import_graph().room_edges()
    assert "engine" in rooms["pipeline"] and "models" in rooms["world"]        # rooms do depend on rooms
    assert cycles(rooms) == []


def test_no_room_imports_a_private_name_of_another() -> None:
    graph = import_graph()
    private = [f"{importer} imports {name} from {module}" for importer, module, name in graph.names
               if name.startswith("_") and room(importer) != room(module)]
    assert private == []


def test_cycle_finder_finds_cycles() -> None:
    # the checker itself: a circle of three and a pair are found, a chain is not
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"g"}}
    assert sorted(cycles(edges)) == [["a", "b", "c"], ["d", "e"]]


def test_public_names_are_a_literal_list_of_the_exports() -> None:
    import ast

    import neurflow_kb

    tree = ast.parse(import_graph().files["neurflow_kb"].read_text())
    literal = [n for n in tree.body if isinstance(n, ast.Assign)
               and any(getattr(t, "id", "") == "__all__" for t in n.targets)]
    assert len(literal) == 1 and isinstance(literal[0].value, ast.List)     # readable without running it
    assert sorted(neurflow_kb.__all__) == sorted(neurflow_kb._EXPORTS)
    for name in neurflow_kb.__all__:
        assert getattr(neurflow_kb, name) is not None
