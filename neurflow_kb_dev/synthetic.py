"""Synthetic `Circuit` artifacts with the shape of real NeurFlow circuits (layer chain, tau core
neurons per node, sub-concepts, groups, group edges, DP influence, exemplars, thumbnails).

They are data for store tests and the store benchmark: the stores only see artifact tables, so a
realistically shaped artifact exercises exactly what a computed one does, at any scale, in milliseconds.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from neurflow_kb.artifact import Circuit

RESNET50_CHAIN = (("layer3.5", 1024), ("layer4.0", 2048), ("layer4.1", 2048), ("layer4.2", 2048),
                  ("fc", 1000))


@functools.lru_cache(maxsize=16)
def _png(shade: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 255 - shade, (3 * shade) % 256)).save(buf, format="PNG")
    return buf.getvalue()


def synthetic_circuit(target_class: int, *, model: str = "resnet50", weights: str = "IMAGENET1K_V1",
                      chain: Sequence[tuple[str, int]] = RESNET50_CHAIN,
                      nodes_per_layer: Sequence[int] = (3, 24, 60, 80), tau: int = 16,
                      class_names: Sequence[str] | None = None, seed: int = 0,
                      config: dict | None = None, exemplars_per_node: int = 3) -> Circuit:
    """A circuit for `target_class` over `chain` (bottom -> top, the last layer being the class
    logits); `nodes_per_layer` gives node counts from the top layer down (one entry per depth >= 1)."""
    rng = np.random.default_rng([seed, target_class])
    T = len(chain) - 1
    assert len(nodes_per_layer) == T, "one node count per depth >= 1"
    num_classes = chain[-1][1]
    layers = pd.DataFrame({"depth": np.arange(T + 1), "name": [n for n, _ in chain],
                           "channels": [c for _, c in chain]})
    node_parts, edge_parts, core_parts = [], [], []
    # upper neurons of depth T: the class unit; of depth d < T: lower neurons chosen at depth d + 1
    uppers = np.array([target_class])
    for i, d in enumerate(range(T, 0, -1)):
        want = int(nodes_per_layer[i])
        name, lower_name = chain[d][0], chain[d - 1][0]
        if d == T:
            n_sub = np.array([max(2, want)])
        elif want <= len(uppers):
            uppers = np.sort(rng.choice(uppers, size=want, replace=False))
            n_sub = np.ones(want, dtype=int)
        else:
            extra = rng.multinomial(want - len(uppers), np.full(len(uppers), 1 / len(uppers)))
            n_sub = np.minimum(5, 1 + extra)
        next_want = nodes_per_layer[i + 1] if i + 1 < T else 100
        pool_size = min(max(tau, int(next_want / 1.3)), chain[d - 1][1])
        pool = rng.choice(chain[d - 1][1], size=pool_size, replace=False)
        U = len(uppers)
        core = pool[np.argsort(rng.random((U, pool_size)), axis=1)[:, :tau]]          # U x tau
        imp = -np.sort(-rng.gamma(2.0, 0.05, size=(U, tau)), axis=1)
        core_parts.append(pd.DataFrame({
            "depth": d, "layer": name, "neuron": np.repeat(uppers, tau), "lower_neuron": core.ravel(),
            "rank": np.tile(np.arange(tau), U), "importance": imp.ravel()}))
        nn = int(n_sub.sum())
        owner = np.repeat(np.arange(U), n_sub)
        sub = np.concatenate([np.arange(k) for k in n_sub])
        k_groups = max(2, nn // 2) if d == T else max(2, int(round(np.sqrt(nn * 1.5))))
        grp = rng.integers(k_groups, size=nn)
        node_parts.append(pd.DataFrame({
            "depth": d, "layer": name, "neuron": uppers[owner], "subconcept": sub,
            "size": rng.integers(5, 60, size=nn), "activation": rng.gamma(2.0, 1.0, size=nn), "group": grp,
            "concept_vector": list(rng.normal(size=(nn, 4)).round(4))}))
        raw = rng.gamma(1.5, 1.0, size=(nn, tau)) * np.where(rng.random((nn, tau)) < 0.15, -1.0, 1.0)
        w = raw / np.abs(raw).sum(axis=1, keepdims=True)
        edge_parts.append(pd.DataFrame({
            "depth": d, "layer": name, "neuron": np.repeat(uppers[owner], tau),
            "subconcept": np.repeat(sub, tau), "lower_layer": lower_name,
            "lower_neuron": core[owner].ravel(), "weight": w.ravel(), "raw": raw.ravel()}))
        uppers = np.unique(pool)
    nodes = pd.concat(node_parts, ignore_index=True)
    nodes["concept_vector"] = [v.tolist() for v in nodes["concept_vector"]]
    edges = pd.concat(edge_parts, ignore_index=True)
    core = pd.concat(core_parts, ignore_index=True)
    # group edges: an edge m -> (n, s) adds its weight, split over m's sub-concept nodes, to group pairs
    nodes_lower = nodes.rename(columns={"depth": "ldepth", "neuron": "lower_neuron", "group": "lower_group",
                                        "layer": "lower_layer_n", "subconcept": "lsub"})
    nodes_lower = nodes_lower.assign(depth=nodes_lower["ldepth"] + 1)
    cnt = nodes_lower.groupby(["depth", "lower_neuron"]).size().rename("nsub").reset_index()
    e = edges.merge(nodes[["depth", "neuron", "subconcept", "group"]], on=["depth", "neuron", "subconcept"])
    e = e.merge(nodes_lower[["depth", "lower_neuron", "lower_group"]], on=["depth", "lower_neuron"])
    e = e.merge(cnt, on=["depth", "lower_neuron"])
    per_group = nodes.groupby(["depth", "group"]).size().rename("gnodes").reset_index()
    e = e.merge(per_group, on=["depth", "group"])
    e["w"] = e["weight"] / e["nsub"] / e["gnodes"]
    e["aw"] = e["w"].abs()
    ge = e.groupby(["depth", "layer", "group", "lower_layer", "lower_group"], as_index=False).agg(
        weight=("w", "sum"), abs_weight=("aw", "sum"))
    # influence by dynamic programming from the top: top groups get their share of the class
    infl: dict[tuple[int, int], tuple[float, float]] = {}
    top = nodes[nodes["depth"] == T]
    share = top.groupby("group")["size"].sum() / top["size"].sum()
    for g, v in share.items():
        infl[(T, int(g))] = (float(v), float(v))
    for d in range(T, 1, -1):
        sub = ge[ge["depth"] == d]
        acc: dict[int, list[float]] = {}
        for lg, g, w, aw in zip(sub["lower_group"], sub["group"], sub["weight"], sub["abs_weight"],
                                strict=True):
            up, aup = infl.get((d, int(g)), (0.0, 0.0))
            a = acc.setdefault(int(lg), [0.0, 0.0])
            a[0] += w * up
            a[1] += aw * aup
        for lg, (v, av) in acc.items():
            infl[(d - 1, lg)] = (v, av)
    groups_rows = []
    for (d, g), part in nodes.groupby(["depth", "group"]):
        v, av = infl.get((int(d), int(g)), (0.0, 0.0))
        groups_rows.append((int(d), chain[int(d)][0], int(g), len(part),     # size = member nodes
                            int(part["neuron"].nunique()), float(rng.uniform(-0.1, 0.6)), v, av))
    groups = pd.DataFrame(groups_rows, columns=["depth", "layer", "group", "size", "n_neurons", "silhouette",
                                                "influence", "abs_influence"])
    k = exemplars_per_node
    nrep = np.repeat(np.arange(len(nodes)), k)
    crops = np.arange(len(nodes) * k)
    rank = np.tile(np.arange(k), len(nodes))
    exemplars = pd.DataFrame({
        "depth": nodes["depth"].to_numpy()[nrep], "layer": nodes["layer"].to_numpy()[nrep],
        "neuron": nodes["neuron"].to_numpy()[nrep], "subconcept": nodes["subconcept"].to_numpy()[nrep],
        "rank": rank, "crop": crops, "image": crops % 50, "granularity": 1.0, "top": 0, "left": 0,
        "size": 224, "activation": 10.0 - rank, "representative": rank == 0})
    rep_crops = crops[rank == 0]
    thumbs = pd.DataFrame({"crop": rep_crops, "png": [_png(int(c) % 16) for c in rep_crops]})
    images = pd.DataFrame({"image": np.arange(50), "source": [f"img_{i}.jpg" for i in range(50)],
                           "label": target_class, "predicted": target_class})
    names = list(class_names) if class_names else None
    manifest = {
        "model": model, "weights": weights, "arch": model, "num_classes": num_classes,
        "target_class": int(target_class),
        "class_name": names[target_class] if names else f"class_{target_class}",
        "layers": [n for n, _ in chain], "channels": {n: c for n, c in chain},
        "config": config or {"tau": tau, "top_k": 50, "synthetic": True},
        "preprocess": {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
                       "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"},
        "n_images": 50,
        "data_fingerprint": f"synthetic-{seed}", "versions": {"neurflow_kb": "0.1.0"}, "seed": seed,
        "timings": {"total_s": 0.0},
    }
    if names:
        manifest["class_names"] = names
    return Circuit(manifest=manifest, tables={
        "layers": layers, "nodes": nodes, "core": core, "edges": edges, "groups": groups,
        "group_edges": ge[["depth", "layer", "group", "lower_layer", "lower_group", "weight", "abs_weight"]],
        "exemplars": exemplars, "images": images, "thumbnails": thumbs})


SYNTHETIC_CONCEPTS = ("stripes", "fur", "eye", "wheel", "sky")


def synthetic_concept(depth: int, group: int) -> str:
    """The concept `synthetic_labels` gives group `group` of depth `depth` (its rank-1 label)."""
    return SYNTHETIC_CONCEPTS[(int(depth) * 3 + int(group)) % len(SYNTHETIC_CONCEPTS)]


def synthetic_labels(circuits: Sequence[Circuit], encoder: str = "test-clip", dim: int = 16,
                     noise: float = 0.4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels and embeddings for every group of `circuits`, shaped like what `neurflow-kb label` writes
    (`GraphStore.write_labels` rows): two labels per group, the first `synthetic_concept`, and an
    embedding near that concept's prototype (seeded by the group and its run's class and depth)."""
    proto = np.random.default_rng(0).normal(size=(len(SYNTHETIC_CONCEPTS), dim))
    lab, emb = [], []
    for c in circuits:
        for g in c.groups.itertuples(index=False):
            key = f"{c.key}/{g.layer}/{g.group}"
            k = SYNTHETIC_CONCEPTS.index(synthetic_concept(g.depth, g.group))
            rng = np.random.default_rng([int(g.depth), int(g.group), c.target_class, len(c.layers)])
            emb.append({"group_key": key, "embedding": (proto[k] + noise * rng.normal(size=dim)).tolist(),
                        "encoder": encoder})
            for rank, j in enumerate((k, (k + 1) % len(SYNTHETIC_CONCEPTS)), start=1):
                text = SYNTHETIC_CONCEPTS[j]
                lab.append({"group_key": key, "concept_key": f"test/{text}", "concept": text,
                            "vocabulary": "test", "score": 0.6 / rank, "rank": rank, "method": "clip",
                            "encoder": encoder})
    return pd.DataFrame(lab), pd.DataFrame(emb)
