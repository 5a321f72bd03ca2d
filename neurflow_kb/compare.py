"""Comparing circuits: class similarity within a model and concepts across models (docs/decisions.md).

Circuit similarity of two runs of one model: every group spreads its share of the class (`abs_share`)
evenly over its member nodes (neuron, sub-concept), which gives each neuron of a layer a mass; the masses
of a layer sum to 1. A layer's overlap is the share both classes route through the same neurons,
`sum_n min(p_a(n), p_b(n))` (1 = the same neurons carry the same shares, 0 = no neuron in common); the
similarity is the mean overlap over the layers below the class layer (the class layer holds only the
class's own unit). Pure pandas on rows that the stores and artifacts both give, so the numbers are the
same wherever they come from.

Concept similarity (`query similar --by concepts`) is the same overlap with concepts in place of neurons:
each group's share is split among its CLIP labels in proportion to their scores (as `query compare`
does), which gives each concept a mass per layer (the share no label carries belongs to no concept); the
overlap of a layer is `sum_c min(p_a(c), p_b(c))`, averaged over the same layers. It says whether two
classes rest on the same concepts, whichever neurons carry them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from .artifact import Circuit
from .errors import UserError

#: Columns of membership rows: one row per (neuron, sub-concept) node of a group of a run.
MEMBER_COLUMNS = ["run", "layer", "depth", "neuron", "subconcept", "group_key", "abs_share", "size"]


def circuit_members(circuit: Circuit) -> pd.DataFrame:
    """Membership rows of an artifact, as `similar_members.cypher` returns them from a store."""
    nodes = circuit.nodes[circuit.nodes["group"] >= 0]
    g = circuit.groups[["depth", "group", "abs_share", "size"]].rename(columns={"size": "group_size"})
    m = nodes.drop(columns=["size"]).merge(g, on=["depth", "group"], how="inner")
    return pd.DataFrame({
        "run": circuit.key, "layer": m["layer"].astype(str), "depth": m["depth"].astype("int64"),
        "neuron": m["neuron"].astype("int64"), "subconcept": m["subconcept"].astype("int64"),
        "group_key": circuit.key + "/" + m["layer"].astype(str) + "/" + m["group"].astype(str),
        "abs_share": m["abs_share"].astype(float), "size": m["group_size"].astype("int64")})


def neuron_masses(members: pd.DataFrame) -> pd.DataFrame:
    """Per (run, layer, neuron): the share of the class routed through the neuron (a group's abs_share
    spread evenly over its member nodes). Rows are sorted first, so equal inputs give equal sums."""
    m = members[MEMBER_COLUMNS].sort_values(MEMBER_COLUMNS, kind="stable").reset_index(drop=True)
    m = m.assign(mass=m["abs_share"].astype(float) / m["size"].astype(float))
    return m.groupby(["run", "layer", "depth", "neuron"], as_index=False, sort=True)["mass"].sum()


def layer_overlaps(masses: pd.DataFrame, run_a: str, run_b: str, unit: str = "neuron") -> pd.DataFrame:
    """Per layer of `run_a` below its class layer: overlap with `run_b` and unit counts. `unit` names the
    column of `masses` that says what carries the share (`neuron` from `neuron_masses`, `concept` from
    `concept_masses`); a row without a unit (share no concept carries) is in no overlap."""
    cols = ["layer", "depth", "overlap", f"{unit}s_a", f"{unit}s_b", "shared"]
    a = masses[masses["run"] == run_a]
    b = masses[(masses["run"] == run_b) & masses[unit].notna()]
    if a.empty:
        return pd.DataFrame(columns=cols)
    top = int(a["depth"].max())
    rows = []
    for (depth, layer), pa in a[a["depth"] < top].groupby(["depth", "layer"], sort=True):
        pa = pa[pa[unit].notna()]
        pb = b[b["layer"] == layer]
        both = pa.merge(pb, on=unit, suffixes=("_a", "_b"))
        overlap = float(np.minimum(both["mass_a"], both["mass_b"]).sum()) if len(both) else 0.0
        rows.append(dict(zip(cols, (str(layer), int(depth), overlap, len(pa), len(pb), len(both)),
                             strict=True)))
    return pd.DataFrame(rows, columns=cols)


def similarity_score(parts: pd.DataFrame) -> float:
    """The mean of the per-layer overlaps (NaN when there is no layer below the class)."""
    return float(parts["overlap"].mean()) if len(parts) else float("nan")


def circuit_similarity(a: Circuit, b: Circuit) -> tuple[float, pd.DataFrame]:
    """Similarity of two circuits of one model and its per-layer parts (see the module docstring)."""
    masses = neuron_masses(pd.concat([circuit_members(a), circuit_members(b)], ignore_index=True))
    parts = layer_overlaps(masses, a.key, b.key)
    return similarity_score(parts), parts


def concept_similarity(a: Circuit, b: Circuit, encoder: str | None = None,
                       ranks: int = 5) -> tuple[float, pd.DataFrame]:
    """Concept similarity of two labelled circuits of one model and its per-layer parts (labels of rank
    <= `ranks` of one CLIP `encoder`; see the module docstring)."""
    rows = pd.concat([circuit_labels(c, encoder, ranks) for c in (a, b)], ignore_index=True)
    parts = layer_overlaps(concept_masses(rows), a.key, b.key, unit="concept")
    return similarity_score(parts), parts


def similarity_matrix(circuits: Sequence[Circuit]) -> np.ndarray:
    """Pairwise similarities of circuits of one model (symmetric when they share their layers)."""
    masses = neuron_masses(pd.concat([circuit_members(c) for c in circuits], ignore_index=True))
    n = len(circuits)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = similarity_score(layer_overlaps(masses, circuits[i].key, circuits[j].key))
    return out


def group_links(members_a: pd.DataFrame, members_b: pd.DataFrame) -> pd.DataFrame:
    """Pairs of groups (one per run, same layer) that share neurons, with `score` = the share of the
    class both route through those shared neurons (each neuron counted at the smaller of its two masses
    within the groups) and `shared` = how many neurons; strongest first."""
    cols = ["group_a", "group_b", "layer", "depth", "score", "shared"]

    def per_group(m: pd.DataFrame) -> pd.DataFrame:
        m = m[MEMBER_COLUMNS].sort_values(MEMBER_COLUMNS, kind="stable")
        m = m.assign(mass=m["abs_share"].astype(float) / m["size"].astype(float))
        sums = m.groupby(["group_key", "layer", "depth", "neuron"], as_index=False, sort=True)["mass"].sum()
        return cast(pd.DataFrame, sums)            # one row per neuron of a group (as_index=False)

    a, b = per_group(members_a), per_group(members_b)
    both = a.merge(b, on=["layer", "depth", "neuron"], suffixes=("_a", "_b"))
    if both.empty:
        return pd.DataFrame(columns=cols)
    both = both.assign(m=np.minimum(both["mass_a"], both["mass_b"]))
    out = both.groupby(["group_key_a", "group_key_b", "layer", "depth"], as_index=False, sort=True).agg(
        score=("m", "sum"), shared=("neuron", "size"))
    out = out.rename(columns={"group_key_a": "group_a", "group_key_b": "group_b"})
    return out.sort_values(["score", "group_a", "group_b"], ascending=[False, True, True]).reset_index(
        drop=True)[cols]


def ranked_similar(masses: pd.DataFrame, run: str, others: pd.DataFrame,
                   unit: str = "neuron") -> pd.DataFrame:
    """Rows of `others` (run, model, class, class_name) with similarity to `run` and one overlap column
    per layer, most similar first (`masses` of `neuron_masses`, or of `concept_masses` with
    `unit='concept'`)."""
    rows = []
    layers: list[str] = []
    for o in others.to_dict("records"):
        parts = layer_overlaps(masses, run, o["run"], unit=unit)
        layers = layers or parts["layer"].tolist()
        row: dict[str, Any] = {"model": o["model"], "class": int(o["class"]), "class_name": o["class_name"],
                               "run": o["run"], "similarity": similarity_score(parts)}
        row.update({_layer_column(lay): float(v) for lay, v in zip(parts["layer"], parts["overlap"],
                                                                    strict=True)})
        rows.append(row)
    cols = ["model", "class", "class_name", "run", "similarity", *(_layer_column(x) for x in layers)]
    df = pd.DataFrame(rows, columns=cols)
    df = df.sort_values(["similarity", "class", "run"], ascending=[False, True, True])
    return df.reset_index(drop=True)


def _layer_column(layer: str) -> str:
    taken = ("of_run", "model", "class", "class_name", "run", "similarity")
    return f"layer {layer}" if layer in taken else str(layer)


# -- concepts (labels) -------------------------------------------------------------------------------

#: Columns of label rows: one row per (group, label) of a run, one row without a concept for a group that
#: has no labels (what `compare_groups.cypher` returns from a store).
LABEL_COLUMNS = ["run", "top_depth", "group_key", "layer", "depth", "abs_share", "concept", "rank", "score"]


def circuit_labels(circuit: Circuit, encoder: str | None = None, ranks: int = 5) -> pd.DataFrame:
    """Label rows of an artifact (`LABEL_COLUMNS`; labels of rank <= `ranks` of one CLIP encoder:
    `encoder`, or the only one that labelled it), a concept once per group (`best_labels`)."""
    lab = circuit.tables["labels"]
    encoders = sorted(set(lab["encoder"]))
    if encoder is None:
        if len(encoders) != 1:
            raise UserError(f"circuit {circuit.key} is labelled by {len(encoders)} CLIP encoders "
                            f"({', '.join(encoders) or 'none'}); label it (`neurflow-kb label`) or pick one")
        encoder = encoders[0]
    elif encoder not in encoders:
        raise UserError(f"circuit {circuit.key} is not labelled by {encoder!r} (its encoders: "
                        f"{', '.join(encoders) or 'none'})")
    lab = lab[(lab["encoder"] == encoder) & (lab["rank"] <= int(ranks))]
    g = circuit.groups[["depth", "layer", "group", "abs_share"]]
    m = g.merge(lab[["depth", "layer", "group", "concept", "rank", "score"]], on=["depth", "layer", "group"],
                how="left")
    return best_labels(pd.DataFrame({
        "run": circuit.key, "top_depth": len(circuit.layers) - 1,
        "group_key": circuit.key + "/" + m["layer"].astype(str) + "/" + m["group"].astype(str),
        "layer": m["layer"].astype(str), "depth": m["depth"].astype("int64"),
        "abs_share": m["abs_share"].astype(float), "concept": m["concept"], "rank": m["rank"],
        "score": m["score"].astype(float)}, columns=LABEL_COLUMNS))


def best_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """A concept once per group (several vocabularies may give it): its row with the best score; a group
    without labels keeps its one row."""
    out = labels.sort_values(["group_key", "score", "rank"], ascending=[True, False, True],
                             na_position="last")
    return out.drop_duplicates(["group_key", "concept"]).reset_index(drop=True)


def label_weights(labels: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows of `labels` with `w`: the group's `abs_share` split among its labels in proportion
    to their scores (negative scores count 0)."""
    lab = labels[labels["concept"].notna()].copy()
    lab["score"] = lab["score"].astype(float).clip(lower=0.0)
    total = lab.groupby("group_key")["score"].transform("sum")
    lab["w"] = np.where(total > 0, lab["abs_share"] * lab["score"] / total.where(total > 0, 1.0), 0.0)
    return lab


def concept_masses(labels: pd.DataFrame) -> pd.DataFrame:
    """Per (run, layer, concept): the share of the class the concept carries at that layer (`label_weights`
    summed over the layer's groups); one row per layer without a concept holds the share no label carries,
    so every layer with groups appears. Rows are sorted first, so equal inputs give equal sums."""
    cols = ["run", "layer", "depth", "group_key", "concept", "abs_share", "score"]
    rows = labels[cols].sort_values(["run", "depth", "group_key", "concept"], kind="stable",
                                    na_position="last").reset_index(drop=True)
    lab = label_weights(rows)
    known = lab.groupby(["run", "layer", "depth", "concept"], as_index=False, sort=True)["w"].sum()
    known = known[known["w"] > 0]                  # a label with no positive score carries nothing
    carried = lab.groupby("group_key", sort=True)["w"].sum()
    groups = rows.drop_duplicates("group_key")
    rest = groups.assign(w=(groups["abs_share"] - groups["group_key"].map(carried).fillna(0.0)).clip(0.0))
    rest = rest.groupby(["run", "layer", "depth"], as_index=False, sort=True)["w"].sum()
    rest = rest.assign(concept=None)[["run", "layer", "depth", "concept", "w"]]
    out = pd.concat([known, rest], ignore_index=True).rename(columns={"w": "mass"})
    return out.sort_values(["run", "depth", "concept"], na_position="last").reset_index(drop=True)


# -- across models -----------------------------------------------------------------------------------

CONCEPT_COLUMNS = ["concept", "used_by", "share_a", "share_b", "depth_a", "depth_b", "groups_a", "groups_b"]
PAIR_COLUMNS = ["used_by", "group_a", "layer_a", "depth_a", "share_a", "label_a", "group_b", "layer_b",
                "depth_b", "share_b", "label_b", "cosine"]


def concept_use(labels: pd.DataFrame) -> pd.DataFrame:
    """Per concept of one run: its share, the share-weighted relative depth of the groups it labels
    (0 = input side, 1 = the class) and how many groups it labels. A group's `abs_share` is split among its
    labels in proportion to their scores (negative scores count 0), and summed per concept over the run,
    divided by the run's number of layers with groups: a run's concepts sum to 1 when every group is
    labelled. `labels` has one row per (group, label): group_key, depth, rel_depth, abs_share, concept
    (None for an unlabelled group), score."""
    cols = ["concept", "share", "depth", "groups"]
    layers = float(labels["depth"].nunique()) or 1.0
    lab = label_weights(labels)
    if lab.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for concept, part in lab.sort_values(["concept", "group_key"]).groupby("concept", sort=True):
        w = part["w"].to_numpy(float)
        rel = part["rel_depth"].to_numpy(float)
        depth = float((w * rel).sum() / w.sum()) if w.sum() > 0 else float(rel.mean())
        out.append({"concept": str(concept), "share": float(w.sum()) / layers, "depth": depth,
                    "groups": int(part["group_key"].nunique())})
    return pd.DataFrame(out, columns=cols)


def compare_concepts(labels_a: pd.DataFrame, labels_b: pd.DataFrame, name_a: str, name_b: str,
                     min_share: float = 0.0) -> pd.DataFrame:
    """Concepts used by both runs, by A only and by B only (used = share above `min_share`; rows of
    `concept_use`)."""
    a = concept_use(labels_a)
    b = concept_use(labels_b)
    a = a[a["share"] > min_share]
    b = b[b["share"] > min_share]
    m = a.merge(b, on="concept", how="outer", suffixes=("_a", "_b"))
    used = np.where(m["share_a"].notna() & m["share_b"].notna(), "both",
                    np.where(m["share_a"].notna(), f"{name_a} only", f"{name_b} only"))
    out = pd.DataFrame({"concept": m["concept"], "used_by": used, "share_a": m["share_a"].fillna(0.0),
                        "share_b": m["share_b"].fillna(0.0), "depth_a": m["depth_a"], "depth_b": m["depth_b"],
                        "groups_a": m["groups_a"].fillna(0).astype("int64"),
                        "groups_b": m["groups_b"].fillna(0).astype("int64")})
    order = {"both": 0, f"{name_a} only": 1, f"{name_b} only": 2}
    out["_o"] = out["used_by"].map(order)
    out["_s"] = out["share_a"] + out["share_b"]
    out = out.sort_values(["_o", "_s", "concept"], ascending=[True, False, True])
    return out.drop(columns=["_o", "_s"]).reset_index(drop=True)[CONCEPT_COLUMNS]


def compare_groups(groups_a: pd.DataFrame, groups_b: pd.DataFrame, links: pd.DataFrame, name_a: str,
                   name_b: str) -> pd.DataFrame:
    """Groups of both runs linked by RESEMBLES (either direction), each with its closest partner (A's
    groups first, then B's groups that no A group has as its closest), then the groups of A and of B
    that resemble none of the other run's groups."""
    a = groups_a.set_index("group_key")
    b = groups_b.set_index("group_key")
    best: dict[tuple[str, str], float] = {}
    for s, t, cos in zip(links["source"], links["target"], links["cosine"], strict=True):
        pair = (s, t) if s in a.index else (t, s)
        if pair[0] in a.index and pair[1] in b.index:
            best[pair] = max(best.get(pair, -2.0), float(cos))
    # each group once with its closest partner: A's groups first, then B's groups no A group chose
    rows = []
    chosen: set[tuple[str, str]] = set()
    for side in (0, 1):
        mine: dict[str, tuple[float, str]] = {}
        for pair, cos in sorted(best.items()):
            own, other = pair[side], pair[1 - side]
            if own not in mine or cos > mine[own][0]:
                mine[own] = (cos, other)
        for own, (cos, other) in sorted(mine.items()):
            pair = (own, other) if side == 0 else (other, own)
            if side == 1 and any(p[1] == own for p in chosen):
                continue
            chosen.add(pair)
            rows.append(_pair_row("both", a, pair[0], b, pair[1], cos))
    linked_a = {ka for ka, _ in best}
    linked_b = {kb for _, kb in best}
    rows += [_pair_row(f"{name_a} only", a, k, b, None, None) for k in a.index if k not in linked_a]
    rows += [_pair_row(f"{name_b} only", a, None, b, k, None) for k in b.index if k not in linked_b]
    df = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    order = {"both": 0, f"{name_a} only": 1, f"{name_b} only": 2}
    df["_o"] = df["used_by"].map(order)
    df["_s"] = df["share_a"].fillna(0.0) + df["share_b"].fillna(0.0)
    df["_k"] = df["group_a"].fillna("") + "|" + df["group_b"].fillna("")
    df = df.sort_values(["_o", "_s", "_k"], ascending=[True, False, True])
    return df.drop(columns=["_o", "_s", "_k"]).reset_index(drop=True)


def _pair_row(used: str, a: pd.DataFrame, ka: str | None, b: pd.DataFrame, kb: str | None,
              cos: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"used_by": used, "cosine": cos}
    for side, frame, key in (("a", a, ka), ("b", b, kb)):
        if key is None:
            row.update({f"group_{side}": None, f"layer_{side}": None, f"depth_{side}": None,
                        f"share_{side}": None, f"label_{side}": None})
            continue
        r = frame.loc[key]
        row.update({f"group_{side}": key, f"layer_{side}": r["layer"], f"depth_{side}": float(r["rel_depth"]),
                    f"share_{side}": float(r["abs_share"]),
                    f"label_{side}": r["concept"] if isinstance(r["concept"], str) else None})
    return row


__all__ = ["LABEL_COLUMNS", "MEMBER_COLUMNS", "best_labels", "circuit_labels", "circuit_members",
           "circuit_similarity", "compare_concepts", "compare_groups", "concept_masses", "concept_similarity",
           "concept_use", "group_links", "label_weights", "layer_overlaps", "neuron_masses", "ranked_similar",
           "similarity_matrix", "similarity_score"]
