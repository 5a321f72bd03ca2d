"""Influence as a share of the class: how much of a class's attribution flows through each group.

The paper's group influence (summed path weight) grows with the sizes of the groups above it, so its
numbers cannot be read on their own. The share rule (docs/decisions.md, "Influence as a share"):

- top groups (the class's sub-concepts) get their share of the class's exemplars;
- each upper group passes its share down to the lower groups it is connected to, in proportion to the
  absolute group-edge weights (`abs_weight`, the sum of |w| over the neuron edges of the group pair);
  the signed share passes the signed weight (`weight`) over the same denominator, so |share| <= abs_share;
- the shares arriving at a layer are divided by the share that had somewhere to go (an upper group
  without an edge down keeps its share out of the lower layers), so every layer's `abs_share` sums to 1.

Edges carry what they pass on (their own `share` / `abs_share`): a lower group's share is the sum over
its incoming edges, and the edges of one transition sum to 1. Pure pandas, no torch: the engine computes
shares when it builds groups, and artifacts written before shares existed get them on load.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SHARE_COLUMNS = ("share", "abs_share")


def compute_shares(groups: pd.DataFrame, group_edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`groups` and `group_edges` with `share` and `abs_share` columns (see the module docstring).

    `groups` needs depth, layer, group, size, abs_influence (the top layer's exemplar shares);
    `group_edges` needs depth, group, lower_layer, lower_group, weight, abs_weight.
    """
    g = groups.copy()
    e = group_edges.copy()
    g["share"] = 0.0
    g["abs_share"] = 0.0
    e["share"] = 0.0
    e["abs_share"] = 0.0
    if g.empty:
        return g, e
    depth_of = dict(zip(g["layer"].astype(str), g["depth"].astype(int), strict=False))
    pos = {(int(d), int(k)): i for i, (d, k) in enumerate(zip(g["depth"], g["group"], strict=True))}
    share = np.zeros(len(g))
    abs_share = np.zeros(len(g))
    top = int(g["depth"].max())
    at_top = (g["depth"] == top).to_numpy()
    seed = g.loc[at_top, "abs_influence"].to_numpy(np.float64).clip(min=0.0)
    if seed.sum() <= 0:
        seed = g.loc[at_top, "size"].to_numpy(np.float64)
    abs_share[at_top] = seed / seed.sum()
    share[at_top] = abs_share[at_top]
    e_share = np.zeros(len(e))
    e_abs = np.zeros(len(e))
    if len(e):
        upper = np.array([pos.get((int(d), int(k)), -1) for d, k in zip(e["depth"], e["group"], strict=True)])
        lower = np.array([pos.get((depth_of.get(str(lay), int(d) - 1), int(k)), -1)
                          for d, lay, k in zip(e["depth"], e["lower_layer"], e["lower_group"], strict=True)])
        w = e["weight"].to_numpy(np.float64)
        aw = e["abs_weight"].to_numpy(np.float64)
    depths = sorted(set(int(d) for d in g["depth"]), reverse=True)
    for d in depths[1:]:
        here = (g["depth"] == d).to_numpy()
        into: Any = np.flatnonzero((lower >= 0) & here[np.maximum(lower, 0)] & (upper >= 0)) if len(e) else []
        out_mass = np.zeros(len(g))
        if len(into):
            np.add.at(out_mass, upper[into], aw[into])
        sent = np.zeros(len(into))
        sent_signed = np.zeros(len(into))
        if len(into):
            u = upper[into]
            ok = out_mass[u] > 0
            denom = np.where(ok, out_mass[u], 1.0)
            sent = np.where(ok, abs_share[u] * aw[into] / denom, 0.0)
            sent_signed = np.where(ok, share[u] * w[into] / denom, 0.0)
        total = float(sent.sum())
        if total > 0:
            e_abs[into] = sent / total
            e_share[into] = sent_signed / total
            np.add.at(abs_share, lower[into], e_abs[into])
            np.add.at(share, lower[into], e_share[into])
        else:   # no attribution reaches this layer (every weight into it is zero): share by size
            sizes = g.loc[here, "size"].to_numpy(np.float64)
            abs_share[here] = sizes / sizes.sum() if sizes.sum() > 0 else 1.0 / here.sum()
            share[here] = abs_share[here]
    g["share"] = share
    g["abs_share"] = abs_share
    e["share"] = e_share
    e["abs_share"] = e_abs
    return g, e


def has_shares(df: pd.DataFrame) -> bool:
    """Whether a groups or group-edges table already carries the share columns."""
    return all(c in df.columns for c in SHARE_COLUMNS)


def percent(value: float | None, signed: bool = True) -> str:
    """A share as people read it: '+12.3%' (or '12.3%' unsigned); '-' when missing."""
    if value is None or value != value:
        return "-"
    v = 100.0 * float(value)
    text = f"{v:+.1f}%" if signed else f"{v:.1f}%"
    return text.replace("+0.0%", "0.0%").replace("-0.0%", "0.0%")


__all__ = ["SHARE_COLUMNS", "compute_shares", "has_shares", "percent"]
