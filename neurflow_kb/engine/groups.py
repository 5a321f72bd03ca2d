"""Neuron groups per layer, group-to-group weights and each group's influence on the class.

Groups: Ward + silhouette over the concept vectors of a layer's nodes (NEURFLOW.md 5.1), full membership
kept. Weights: W(g, g') = sum over nodes (n, s) in g and core neurons m of w_{n,s}(m) * f(m, g'), where
f(m, g') is the share of m's sub-concepts that lie in g', so each lower neuron counts once (bug B19
fixed). Influence: top groups get their share of the class's exemplars; lower groups get
sum_g W(g, g') * influence(g), layer by layer (dynamic programming, no path enumeration). Shares
(`neurflow_kb.shares`): the same flow normalised so that every layer's `abs_share` sums to 1.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..shares import compute_shares
from .clustering import ward_silhouette

if TYPE_CHECKING:
    from .types import LayerResult


def build_groups(
    results: dict[int, LayerResult], k: int, *, max_groups: int = 100
) -> tuple[pd.DataFrame, pd.DataFrame, dict[tuple[int, int, int], int]]:
    """Groups table, group-edges table and the group of every node (depth, neuron, subconcept)."""
    node_groups: dict[tuple[int, int, int], int] = {}
    group_rows: dict[int, list[dict]] = {}
    for depth in sorted(results, reverse=True):
        res = results[depth]
        keys = [(depth, row["neuron"], row["subconcept"]) for row in res.nodes]
        points = np.array([row["concept_vector"] for row in res.nodes], dtype=np.float64)
        clusters = ward_silhouette(points, max_groups)
        for key, label in zip(keys, clusters.labels, strict=True):
            node_groups[key] = int(label)
        rows = []
        for g in range(clusters.k):
            members = np.flatnonzero(clusters.labels == g)
            sil = clusters.samples[members]
            rows.append({
                "depth": depth, "layer": res.upper, "group": g, "size": len(members),
                "n_neurons": len({keys[i][1] for i in members}),
                "silhouette": float(sil.mean()) if not np.isnan(sil).any() else float("nan"),
                "influence": 0.0, "abs_influence": 0.0,
            })
        group_rows[depth] = rows

    edge_rows = []
    weights: dict[int, dict[tuple[int, int], list[float]]] = {}
    for depth in sorted(results, reverse=True):
        if depth - 1 not in results:
            continue
        share = _subconcept_shares(results[depth - 1], node_groups)
        acc: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for e in results[depth].edges:
            g = node_groups[(depth, e["neuron"], e["subconcept"])]
            for g_low, f in share.get(e["lower_neuron"], {}).items():
                acc[(g, g_low)][0] += e["weight"] * f
                acc[(g, g_low)][1] += abs(e["weight"]) * f
        weights[depth] = acc
        for (g, g_low), (w, a) in sorted(acc.items()):
            edge_rows.append({"depth": depth, "layer": results[depth].upper, "group": g,
                              "lower_layer": results[depth - 1].upper, "lower_group": g_low,
                              "weight": w, "abs_weight": a})

    _influence(results, group_rows, node_groups, weights, k)
    groups = pd.DataFrame([row for d in sorted(group_rows, reverse=True) for row in group_rows[d]])
    edges = pd.DataFrame(edge_rows, columns=["depth", "layer", "group", "lower_layer", "lower_group",
                                             "weight", "abs_weight"])
    groups, edges = compute_shares(groups, edges)
    return groups, edges, node_groups


def _subconcept_shares(lower: LayerResult, node_groups: dict[tuple[int, int, int], int]
                       ) -> dict[int, dict[int, float]]:
    """For each lower-layer node neuron m: {group: share of m's sub-concepts in that group}."""
    counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in lower.nodes:
        counts[row["neuron"]][node_groups[(lower.depth, row["neuron"], row["subconcept"])]] += 1
    return {m: {g: c / sum(per.values()) for g, c in per.items()} for m, per in counts.items()}


def _influence(results: dict[int, LayerResult], group_rows: dict[int, list[dict]],
               node_groups: dict[tuple[int, int, int], int],
               weights: dict[int, dict[tuple[int, int], list[float]]], k: int) -> None:
    """Summed path weight (signed, and with absolute weights) from every group to the class."""
    top = max(results)
    for row in results[top].nodes:
        g = node_groups[(top, row["neuron"], row["subconcept"])]
        group_rows[top][g]["influence"] += row["size"] / k
        group_rows[top][g]["abs_influence"] += row["size"] / k
    for depth in sorted(weights, reverse=True):
        upper = group_rows[depth]
        lower = group_rows[depth - 1]
        for (g, g_low), (w, a) in weights[depth].items():
            lower[g_low]["influence"] += w * upper[g]["influence"]
            lower[g_low]["abs_influence"] += a * upper[g]["abs_influence"]
