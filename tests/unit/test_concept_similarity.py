"""Class similarity by concepts (`neurflow_kb.compare`): hand-built label rows give the overlaps worked out
by hand, and labelled circuits give the score their labels imply."""

from __future__ import annotations

import pandas as pd
import pytest

from neurflow_kb import Circuit
from neurflow_kb.compare import (
    LABEL_COLUMNS,
    best_labels,
    circuit_labels,
    concept_masses,
    concept_similarity,
    layer_overlaps,
    similarity_score,
)
from neurflow_kb.errors import UserError
from neurflow_kb_dev.synthetic import synthetic_circuit


def rows(run: str, spec: list[tuple[str, int, int, float, str | None, float | None]]) -> pd.DataFrame:
    """Label rows of run `run` from (layer, depth, group, abs_share, concept, score); class layer L3."""
    out = [{"run": run, "top_depth": 3, "group_key": f"{run}/{layer}/{g}", "layer": layer, "depth": depth,
            "abs_share": share, "concept": concept, "rank": 1, "score": score}
           for layer, depth, g, share, concept, score in spec]
    return pd.DataFrame(out, columns=LABEL_COLUMNS)


def hand_built() -> pd.DataFrame:
    a = rows("A", [
        ("L1", 1, 0, 0.6, "red", 0.3), ("L1", 1, 0, 0.6, "circle", 0.1),     # red 0.45, circle 0.15
        ("L1", 1, 0, 0.6, "red", 0.05),                                        # again, from a 2nd vocabulary
        ("L1", 1, 1, 0.4, "red", 0.2), ("L1", 1, 1, 0.4, "striped", 0.2),     # red 0.2, striped 0.2
        ("L2", 2, 0, 1.0, "legs", 0.5), ("L2", 2, 0, 1.0, "red", -0.1),       # legs 1.0 (red scores < 0)
        ("L3", 3, 0, 1.0, "red", 0.9)])                                       # the class layer: not compared
    b = rows("B", [
        ("L1", 1, 0, 0.5, "red", 0.4), ("L1", 1, 0, 0.5, "circle", 0.4),      # red 0.25, circle 0.25
        ("L1", 1, 1, 0.5, None, None),                                         # unlabelled: no concept
        ("L2", 2, 0, 0.7, "legs", 0.7), ("L2", 2, 1, 0.3, "antenna", 0.3),
        ("L3", 3, 0, 1.0, "legs", 0.9)])
    return best_labels(pd.concat([a, b], ignore_index=True))


def test_hand_built_labels_give_the_overlaps_computed_by_hand() -> None:
    masses = concept_masses(hand_built())
    l1 = masses[masses["layer"] == "L1"]
    a = l1[(l1["run"] == "A") & l1["concept"].notna()].set_index("concept")["mass"]
    assert a.to_dict() == pytest.approx({"red": 0.65, "circle": 0.15, "striped": 0.2})
    nothing = l1[l1["concept"].isna()].set_index("run")["mass"]              # the share no label carries
    assert nothing.to_dict() == pytest.approx({"A": 0.0, "B": 0.5})          # B's unlabelled group
    parts = layer_overlaps(masses, "A", "B", unit="concept")
    assert parts["layer"].tolist() == ["L1", "L2"]
    # L1: min(0.65, 0.25) red + min(0.15, 0.25) circle; L2: min(1.0, 0.7) legs
    assert parts["overlap"].tolist() == pytest.approx([0.25 + 0.15, 0.7])
    assert parts[["concepts_a", "concepts_b", "shared"]].values.tolist() == [[3, 2, 2], [1, 2, 1]]
    assert similarity_score(parts) == pytest.approx(0.55)
    back = layer_overlaps(masses, "B", "A", unit="concept")
    assert back["overlap"].tolist() == pytest.approx(parts["overlap"].tolist())
    assert similarity_score(layer_overlaps(masses, "A", "A", unit="concept")) == pytest.approx(1.0)


def labelled(c: Circuit, concept_of_depth: dict[int, str], encoder: str = "clip-x") -> Circuit:
    """`c` with one label per group: the concept given for its depth, score 1."""
    g = c.groups
    lab = pd.DataFrame({"depth": g["depth"], "layer": g["layer"], "group": g["group"],
                        "concept": g["depth"].map(concept_of_depth), "vocabulary": "v", "score": 1.0,
                        "rank": 1, "method": "m", "encoder": encoder})
    return Circuit(manifest=c.manifest, tables={**c.tables, "labels": lab})


def test_labelled_circuits_give_the_score_their_labels_imply() -> None:
    chain = (("conv", 16), ("b1", 24), ("b2", 24), ("logits", 5))
    a = synthetic_circuit(1, chain=chain, nodes_per_layer=(2, 8, 12), tau=4, model="toy")
    b = synthetic_circuit(2, chain=chain, nodes_per_layer=(2, 8, 12), tau=4, model="toy")
    la = labelled(a, {1: "red", 2: "round", 3: "red"})
    lb = labelled(b, {1: "red", 2: "legs", 3: "red"})
    score, parts = concept_similarity(la, lb)
    # every group's whole share goes to its one label: b1 all "red" in both, b2 "round" against "legs"
    assert parts["layer"].tolist() == ["b1", "b2"] and parts["overlap"].tolist() == pytest.approx([1.0, 0.0])
    assert score == pytest.approx(0.5)
    assert concept_similarity(la, la)[0] == pytest.approx(1.0)
    with pytest.raises(UserError, match="labelled by 0 CLIP encoders"):
        concept_similarity(a, lb)
    two = Circuit(manifest=la.manifest, tables={**la.tables, "labels": pd.concat(
        [la.tables["labels"], labelled(a, {1: "x", 2: "x", 3: "x"}, encoder="clip-y").tables["labels"]])})
    with pytest.raises(UserError, match="labelled by 2 CLIP encoders"):
        circuit_labels(two)
    assert concept_similarity(two, lb, encoder="clip-x")[0] == pytest.approx(0.5)
    assert concept_similarity(two, labelled(b, {1: "x", 2: "y", 3: "x"}, encoder="clip-y"),
                              encoder="clip-y")[0] == pytest.approx(0.5)
    with pytest.raises(UserError, match="is not labelled by 'clip-y'"):
        concept_similarity(two, la, encoder="clip-y")
