"""Influence as a share of the class: a hand-built circuit gives the shares worked out by hand, every
layer of computed circuits sums to 1, and artifacts written without shares get them on load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neurflow_kb import Circuit
from neurflow_kb.shares import compute_shares, percent
from neurflow_kb_dev.synthetic import synthetic_circuit


def hand_built() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top layer L3 (groups A=0, B=1), L2 (C=0, D=1, E=2), L1 (F=0, G=1); E has no edge down."""
    groups = pd.DataFrame({
        "depth": [3, 3, 2, 2, 2, 1, 1], "layer": ["L3", "L3", "L2", "L2", "L2", "L1", "L1"],
        "group": [0, 1, 0, 1, 2, 0, 1], "size": [3, 1, 2, 2, 2, 1, 1], "n_neurons": 1, "silhouette": 0.0,
        "influence": [0.75, 0.25, 0, 0, 0, 0, 0], "abs_influence": [0.75, 0.25, 0, 0, 0, 0, 0]})
    edges = pd.DataFrame([
        # depth, layer, group, lower_layer, lower_group, weight, abs_weight
        (3, "L3", 0, "L2", 0, 0.6, 0.6),     # A -> C
        (3, "L3", 0, "L2", 1, -0.2, 0.4),    # A -> D (signed sum -0.2 of |w| 0.4)
        (3, "L3", 1, "L2", 1, 0.5, 0.5),     # B -> D
        (3, "L3", 1, "L2", 2, 0.5, 0.5),     # B -> E
        (2, "L2", 0, "L1", 0, 2.0, 2.0),     # C -> F
        (2, "L2", 0, "L1", 1, 1.0, 3.0),     # C -> G
        (2, "L2", 1, "L1", 1, -1.0, 1.0),    # D -> G
    ], columns=["depth", "layer", "group", "lower_layer", "lower_group", "weight", "abs_weight"])
    return groups, edges


def test_hand_built_circuit_gives_the_shares_computed_by_hand() -> None:
    groups, edges = hand_built()
    g, e = compute_shares(groups, edges)
    got = dict(zip(zip(g["layer"], g["group"], strict=True), zip(g["share"], g["abs_share"], strict=True),
                   strict=True))
    # top: the class's exemplar shares
    assert got[("L3", 0)] == pytest.approx((0.75, 0.75)) and got[("L3", 1)] == pytest.approx((0.25, 0.25))
    # L2: A (0.75) splits 0.6 : 0.4 of |w|, B (0.25) splits 0.5 : 0.5; signed shares carry the signed sums
    assert got[("L2", 0)] == pytest.approx((0.75 * 0.6, 0.75 * 0.6))
    assert got[("L2", 1)] == pytest.approx((0.75 * -0.2 + 0.25 * 0.5, 0.75 * 0.4 + 0.25 * 0.5))
    assert got[("L2", 2)] == pytest.approx((0.25 * 0.5, 0.25 * 0.5))
    # L1: E (0.125) has no edge down, so the 0.875 that moves on is rescaled to 1
    c, d = 0.45, 0.425
    assert got[("L1", 0)] == pytest.approx((c * 2 / 5 / 0.875, c * 2 / 5 / 0.875))
    assert got[("L1", 1)] == pytest.approx(((c * 1 / 5 + -0.025 * -1 / 1) / 0.875, (c * 3 / 5 + d) / 0.875))
    # edges carry what they pass on; a lower group's share is the sum of its incoming edge shares
    for depth in (3, 2):
        assert e.loc[e["depth"] == depth, "abs_share"].sum() == pytest.approx(1.0, abs=1e-12)
    into_g = e[(e["lower_layer"] == "L1") & (e["lower_group"] == 1)]
    assert into_g["abs_share"].sum() == pytest.approx(got[("L1", 1)][1])
    assert into_g["share"].sum() == pytest.approx(got[("L1", 1)][0])
    assert (g["share"].abs() <= g["abs_share"] + 1e-12).all()


def test_abs_share_sums_to_one_per_layer_of_synthetic_runs() -> None:
    for cls in range(6):
        c = synthetic_circuit(cls, nodes_per_layer=(2, 12, 30, 40), tau=6, seed=cls)
        sums = c.groups.groupby("depth")["abs_share"].sum()
        np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-9)
        assert (c.groups["abs_share"] >= 0).all()


def test_degenerate_layer_without_weight_falls_back_to_sizes() -> None:
    groups, edges = hand_built()
    edges = edges[edges["depth"] == 3]                   # nothing reaches L1
    g, _ = compute_shares(groups, edges)
    l1 = g[g["layer"] == "L1"]
    assert l1["abs_share"].tolist() == [0.5, 0.5]


def test_artifacts_without_share_columns_get_them_on_load(tmp_path) -> None:
    c = synthetic_circuit(3, nodes_per_layer=(2, 8, 16, 20), tau=4)
    path = c.save(tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    for f in path.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    for table in ("groups", "group_edges"):
        df = pd.read_parquet(old / f"{table}.parquet").drop(columns=["share", "abs_share"])
        df.to_parquet(old / f"{table}.parquet", index=False)
    assert "share" not in pd.read_parquet(old / "groups.parquet").columns
    loaded = Circuit.load(old)
    assert loaded.equals(c)
    assert json.loads((old / "manifest.json").read_text())["key"] == loaded.key


def test_percent_formatting() -> None:
    assert percent(0.1234) == "+12.3%" and percent(-0.5) == "-50.0%" and percent(0.0) == "0.0%"
    assert percent(0.25, signed=False) == "25.0%" and percent(None) == "-" and percent(float("nan")) == "-"


def test_altered_shares_are_refused_on_load(tmp_path) -> None:
    from neurflow_kb.errors import UserError

    c = synthetic_circuit(2, nodes_per_layer=(2, 8, 16, 20), tau=4)
    path = c.save(tmp_path / "c")
    df = pd.read_parquet(path / "groups.parquet")
    df.loc[0, "abs_share"] += 0.01
    df.to_parquet(path / "groups.parquet", index=False)
    with pytest.raises(UserError, match="groups.parquet: column 'abs_share' does not follow from the group"):
        Circuit.load(path)
