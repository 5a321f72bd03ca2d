"""A circuit prints as one short line (model, class, layers, node and group counts), not its tables."""

from __future__ import annotations

from artifact_helpers import CHAIN, world_circuit


def test_repr_is_one_short_line_with_model_class_layers_and_counts() -> None:
    circuit = world_circuit()
    text = repr(circuit)
    assert "\n" not in text and len(text) < 300, text
    name = circuit.manifest["class_name"]
    assert text.startswith(f"Circuit(model=world@{circuit.manifest['weights']}, class=0 {name!r}, layers=3 ")
    assert " > ".join(CHAIN) in text
    assert f"nodes={len(circuit.nodes)}," in text and f"groups={len(circuit.groups)})" in text
    assert len(circuit.nodes) > 0 and len(circuit.groups) > 0
    assert str(circuit) == text


def test_long_chains_are_shortened_in_the_middle() -> None:
    import dataclasses

    circuit = world_circuit()
    layers = [f"block{i}" for i in range(12)]
    text = repr(dataclasses.replace(circuit, manifest=dict(circuit.manifest, layers=layers)))
    assert "layers=12 [block0 > block1 > ... > block9 > block10 > block11]" in text
