"""Fidelity metrics of NeurFlow circuits, with ground truth where the world provides it.

NEURFLOW.md 7.1 (mask / retain the core neurons of a layer vs as many random ones: class accuracy),
7.3 (masking a node's core set vs random sets of the same size, random sets never overlapping the core:
bug B23 fixed), 7.4 (IG importance vs masking effect, Pearson and Spearman, NaN kept visible: bug B22
fixed), all seeded (B12). Plus checks only a planted-concept world allows: concept recovery (do
groups' exemplars share a planted concept?) and the label evaluation (does a group's top label name
the concept its own exemplars show most, and do a class's groups name its different concepts?).
Masking sets whole channels of a layer's output to zero through the adapter's hooks
(`ModelAdapter.run_from`), never by editing the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import pearsonr, spearmanr

from neurflow_kb.errors import UserError


def _broadcast_keep(keep: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    """keep [M, C] -> shape that multiplies x[None] ([1, N, ...]) along the channel dim."""
    shape = [keep.shape[0]] + [1] * x.dim()
    shape[dim + 1] = keep.shape[1]
    return keep.view(shape).to(x.dtype)


def core_sets(circuit: Any) -> dict[str, np.ndarray]:
    """V_l of every non-logit layer of a circuit: the neurons the circuit keeps at that layer.

    Its nodes where the layer has nodes (the union of the core sets selected from the layer above,
    after the per-layer cap), and the union of the core sets selected from the bottom layer.
    """
    layers = circuit.tables["layers"].set_index("depth")["name"].to_dict()
    core, nodes = circuit.tables["core"], circuit.tables["nodes"]
    top = max(layers)
    out: dict[str, np.ndarray] = {}
    for depth in sorted(core["depth"].unique()):
        lower = int(depth) - 1
        at = nodes.loc[nodes["depth"] == lower, "neuron"] if 0 < lower < top else None
        chosen = at if at is not None and len(at) else core.loc[core["depth"] == depth, "lower_neuron"]
        out[layers[lower]] = np.unique(chosen.to_numpy(np.int64))
    return out


def keep_vectors(n_channels: int, sets: Sequence[Sequence[int]] | np.ndarray, mode: str) -> torch.Tensor:
    """[M, C] multipliers: 'mask' zeroes the channels of each set, 'retain' zeroes every other channel."""
    if mode not in ("mask", "retain"):
        raise UserError(f"mode must be 'mask' or 'retain' (got {mode!r})")
    keep = torch.ones(len(sets), n_channels) if mode == "mask" else torch.zeros(len(sets), n_channels)
    for i, s in enumerate(sets):
        idx = torch.as_tensor(np.array(s, dtype=np.int64))
        keep[i, idx] = 0.0 if mode == "mask" else 1.0
    return keep


def random_sets(n_channels: int, size: int, draws: int, rng: np.random.Generator,
                exclude: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """`draws` random channel sets of `size` (without replacement), avoiding `exclude` when given."""
    skip = np.asarray(exclude if exclude is not None else [], dtype=np.int64)
    pool = np.setdiff1d(np.arange(n_channels), skip)
    if size > len(pool):
        raise UserError(f"cannot draw {size} random channels from {len(pool)} available ones")
    return np.stack([rng.choice(pool, size=size, replace=False) for _ in range(draws)]) if draws else \
        np.zeros((0, size), dtype=np.int64)


@torch.no_grad()
def logits_with_keep(adapter: Any, images: torch.Tensor, layer: str, keep: torch.Tensor,
                     batch_size: int = 512) -> torch.Tensor:
    """Logits [M, N, classes] when `layer`'s output is multiplied channel-wise by each row of `keep`.

    The layer's activation is computed once; the rest of the model runs from it (`run_from`).
    """
    top = adapter.layers[-1]
    act = torch.cat([adapter.activations(images[i:i + batch_size], [layer])[layer]
                     for i in range(0, len(images), batch_size)])
    dim = adapter.channel_dim(act)
    n = act.shape[0]
    per = max(1, batch_size // max(1, n))
    out = []
    for start in range(0, keep.shape[0], per):
        k = keep[start:start + per]
        x = (act.unsqueeze(0) * _broadcast_keep(k, act, dim)).reshape(-1, *act.shape[1:])
        logits = adapter.run_from(layer, x, top)
        out.append(logits.reshape(k.shape[0], n, -1).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, n, adapter.num_classes)


def predictions_with_keep(adapter: Any, images: torch.Tensor, layer: str, keep: torch.Tensor,
                          batch_size: int = 512) -> np.ndarray:
    """Predicted classes [M, N] when `layer`'s output is multiplied channel-wise by each row of `keep`."""
    return logits_with_keep(adapter, images, layer, keep, batch_size).argmax(-1).numpy()


@contextlib.contextmanager
def channel_masks(adapter: Any, keep: dict[str, torch.Tensor]) -> Iterator[None]:
    """Forward hooks multiplying several layers' outputs by per-channel vectors [C] (removed on exit)."""
    modules = dict(adapter.model.named_modules())
    handles = []

    def make(k: torch.Tensor) -> Callable[..., torch.Tensor]:
        def hook(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            dim = adapter.channel_dim(output)
            shape = [1] * output.dim()
            shape[dim] = k.numel()
            return output * k.view(shape).to(output.dtype).to(output.device)
        return hook

    try:
        for name, k in keep.items():
            if name not in modules:
                raise UserError(f"unknown layer {name!r} for masking")
            handles.append(modules[name].register_forward_hook(make(k)))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def scores_with_masks(adapter: Any, images: torch.Tensor, target: int, keep: dict[str, torch.Tensor],
                      batch_size: int = 256) -> tuple[float, float]:
    """(accuracy, mean probability) of class `target` with several layers masked at once (one forward)."""
    with channel_masks(adapter, keep):
        logits = torch.cat([adapter.logits(images[i:i + batch_size]).float()
                            for i in range(0, len(images), batch_size)])
    return (float((logits.argmax(-1) == target).float().mean()),
            float(logits.softmax(-1)[:, target].mean()))


def accuracy_with_masks(adapter: Any, images: torch.Tensor, target: int, keep: dict[str, torch.Tensor],
                        batch_size: int = 256) -> float:
    """Share of `images` predicted as `target` with several layers masked at once (one forward pass)."""
    return scores_with_masks(adapter, images, target, keep, batch_size)[0]


def layer_fidelity(adapter: Any, images: torch.Tensor, target: int, core: dict[str, np.ndarray],
                   draws: int = 20, seed: int = 0, batch_size: int = 512, multi_draws: int | None = None
                   ) -> pd.DataFrame:
    """NEURFLOW.md 7.1, single-layer and multi-layer (cumulative from the top), core vs random.

    For each layer with a core set V: class accuracy of `images` (all of class `target`) when V is
    masked / retained, and the mean and std over `draws` random sets of |V| channels of that layer;
    ``*_prob`` columns give the mean probability of the class (a finer view than the argmax). The
    ``multi_*`` columns mask (or retain) V at that layer and at every layer above it at once.
    """
    rng = np.random.default_rng(seed)
    multi_draws = draws if multi_draws is None else multi_draws
    chain = [name for name in adapter.layers[:-1] if name in core]
    rows = []
    with torch.no_grad():
        clean = adapter.logits(images).float()
    row0 = {"accuracy": float((clean.argmax(-1) == target).float().mean()),
            "prob": float(clean.softmax(-1)[:, target].mean())}
    for layer in chain:
        v = np.asarray(core[layer], dtype=np.int64)
        c = adapter.channels(layer)
        rand = random_sets(c, len(v), draws, rng)
        row: dict[str, Any] = {"layer": layer, "channels": c, "core": len(v), "core_fraction": len(v) / c,
                               **row0}
        for mode in ("mask", "retain"):
            keep = keep_vectors(c, [v, *rand], mode)
            logits = logits_with_keep(adapter, images, layer, keep, batch_size)
            hit = (logits.argmax(-1) == target).float().mean(1).numpy()
            prob = logits.softmax(-1)[..., target].mean(1).numpy()
            row[f"{mode}_core"] = float(hit[0])
            row[f"{mode}_random"] = float(hit[1:].mean()) if draws else float("nan")
            row[f"{mode}_random_std"] = float(hit[1:].std()) if draws else float("nan")
            row[f"{mode}_core_prob"] = float(prob[0])
            row[f"{mode}_random_prob"] = float(prob[1:].mean()) if draws else float("nan")
        rows.append(row)
    # multi-layer: this layer and all layers above it in the chain, at once
    for i in range(len(chain)):
        above = chain[i:]
        for mode in ("mask", "retain"):
            core_keep = {name: keep_vectors(adapter.channels(name), [core[name]], mode)[0] for name in above}
            scores = []
            for _ in range(multi_draws):
                keep = {}
                for name in above:
                    ch = adapter.channels(name)
                    keep[name] = keep_vectors(ch, random_sets(ch, len(core[name]), 1, rng), mode)[0]
                scores.append(scores_with_masks(adapter, images, target, keep))
            acc, prob = scores_with_masks(adapter, images, target, core_keep)
            rows[i][f"multi_{mode}_core"] = acc
            rows[i][f"multi_{mode}_core_prob"] = prob
            mean = np.mean(scores, axis=0) if scores else (float("nan"), float("nan"))
            rows[i][f"multi_{mode}_random"] = float(mean[0])
            rows[i][f"multi_{mode}_random_prob"] = float(mean[1])
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# node-level masking (7.3, 7.4)


@torch.no_grad()
def upper_under_masks(adapter: Any, lower: str, upper: str, neuron: int, lower_maps: torch.Tensor,
                      keep: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Pooled activation [M, D] of `neuron` of `upper` over D crops when `lower` is multiplied by keep[m]."""
    dim = adapter.channel_dim(lower_maps)
    d = lower_maps.shape[0]
    out = np.empty((keep.shape[0], d), dtype=np.float64)
    chunk = max(1, batch_size)
    for m in range(keep.shape[0]):
        k = _broadcast_keep(keep[m:m + 1], lower_maps, dim)[0]
        for s in range(0, d, chunk):
            x = lower_maps[s:s + chunk] * k
            pooled = adapter.pool(upper, adapter.run_from(lower, x, upper))
            out[m, s:s + chunk] = pooled[:, neuron].double().numpy()
    return out


def exemplar_overlap(scores: np.ndarray, exemplars: np.ndarray) -> np.ndarray:
    """|E ∩ E'| / |E| per row of `scores` [M, D], E' = the top-|E| crops of that row (ties: lower index)."""
    k = len(exemplars)
    ref = set(int(e) for e in exemplars)
    tops = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.array([len(ref & set(t.tolist())) / k for t in tops])


def activation_drop(scores: np.ndarray, clean: np.ndarray, exemplars: np.ndarray) -> np.ndarray:
    """Relative drop of the mean activation over the exemplars: 1 - mean(masked) / mean(clean)."""
    base = float(clean[exemplars].mean())
    if base == 0:
        return np.full(scores.shape[0], np.nan)
    return 1.0 - scores[:, exemplars].mean(1) / base


def optimality(adapter: Any, lower: str, upper: str, neuron: int, lower_maps: torch.Tensor,
               exemplars: np.ndarray, core: np.ndarray, draws: int = 30, seed: int = 0) -> dict[str, float]:
    """NEURFLOW.md 7.3: mask a node's core set vs `draws` random sets of the same size (disjoint from it).

    `gap` = mean(overlap_random) - overlap_core (> 0: the core set disrupts the exemplars more);
    `random_at_least_as_destructive` = share of random sets with overlap <= overlap_core.
    """
    rng = np.random.default_rng(seed)
    c = adapter.channels(lower)
    rand = random_sets(c, len(core), draws, rng, exclude=core) if len(core) < c else np.zeros((0, len(core)))
    keep = keep_vectors(c, [core, *rand], "mask")
    scores = upper_under_masks(adapter, lower, upper, neuron, lower_maps, keep)
    overlap = exemplar_overlap(scores, exemplars)
    clean = upper_under_masks(adapter, lower, upper, neuron, lower_maps, torch.ones(1, c))[0]
    drop = activation_drop(scores, clean, exemplars)
    r = overlap[1:]
    return {"core_size": len(core), "overlap_core": float(overlap[0]),
            "overlap_random": float(r.mean()) if len(r) else float("nan"),
            "gap": float(r.mean() - overlap[0]) if len(r) else float("nan"),
            "random_at_least_as_destructive": float((r <= overlap[0]).mean()) if len(r) else float("nan"),
            "drop_core": float(drop[0]), "drop_random": float(drop[1:].mean()) if len(r) else float("nan")}


def ig_importance(adapter: Any, lower: str, upper: str, neuron: int, exemplar_maps: torch.Tensor,
                  steps: int = 16, batch_size: int = 256) -> np.ndarray:
    """I(m) = mean over exemplars of |IG_m| for every lower channel m (the engine's batched IG)."""
    from neurflow_kb.engine.ig import integrated_gradients

    rows = torch.arange(exemplar_maps.shape[0])
    targets = torch.full((exemplar_maps.shape[0],), int(neuron), dtype=torch.long)
    res = integrated_gradients(adapter, lower, upper, exemplar_maps, rows, targets, steps=steps,
                               batch_size=batch_size)
    return res.attributions.abs().mean(0).double().numpy()


def _corr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")          # undefined: reported as NaN, never as 0 (B22)
    return float(pearsonr(a, b)[0]), float(spearmanr(a, b)[0])


def weight_effect_correlation(adapter: Any, lower: str, upper: str, neuron: int, lower_maps: torch.Tensor,
                              exemplars: np.ndarray, importance: np.ndarray, sizes: Sequence[int] = (1, 4, 8),
                              draws: int = 50, seed: int = 0) -> list[dict[str, Any]]:
    """NEURFLOW.md 7.4: subset importance (sum of I(m)) vs masking effect, per subset size.

    Size 1 masks every lower channel alone; larger sizes use `draws` random subsets. Effects: exemplar
    overlap over all crops (the paper's; good importance gives a strongly negative correlation) and
    the relative activation drop on the exemplars (positive correlation expected).
    """
    rng = np.random.default_rng(seed)
    c = adapter.channels(lower)
    clean = upper_under_masks(adapter, lower, upper, neuron, lower_maps, torch.ones(1, c))[0]
    rows = []
    for size in sizes:
        if size > c:
            continue
        sets = np.arange(c).reshape(-1, 1) if size == 1 else random_sets(c, size, draws, rng)
        keep = keep_vectors(c, sets, "mask")
        scores = upper_under_masks(adapter, lower, upper, neuron, lower_maps, keep)
        subset_importance = importance[sets].sum(1)
        overlap = exemplar_overlap(scores, exemplars)
        drop = activation_drop(scores, clean, exemplars)
        p_o, s_o = _corr(subset_importance, overlap)
        p_d, s_d = _corr(subset_importance, drop)
        rows.append({"size": size, "subsets": len(sets), "pearson_overlap": p_o, "spearman_overlap": s_o,
                     "pearson_drop": p_d, "spearman_drop": s_d})
    return rows


# --------------------------------------------------------------------------------------------------
# ground truth: concept recovery and label accuracy


def group_exemplars(circuit: Any) -> dict[tuple[int, int], np.ndarray]:
    """Distinct exemplar crops of every group, keyed by (depth, group)."""
    nodes = circuit.tables["nodes"][["depth", "neuron", "subconcept", "group"]]
    ex = circuit.tables["exemplars"].merge(nodes, on=["depth", "neuron", "subconcept"])
    return {(int(d), int(g)): np.unique(part["crop"].to_numpy(np.int64))
            for (d, g), part in ex.groupby(["depth", "group"])}


def concept_recovery(groups: dict[tuple[int, int], np.ndarray], crop_concepts: dict[int, set[str]],
                     all_crops: Sequence[int], concepts: Sequence[str], min_exemplars: int = 5
                     ) -> pd.DataFrame:
    """For each concept: the group whose exemplars show it most (purity), against its base rate.

    purity = share of the group's exemplar crops showing the concept; base_rate = share of all crops
    (the concept data) showing it; gain = (purity - base) / (1 - base), 1 = a pure group where the
    concept is rare; iou = |exemplars ∩ crops showing it| / |exemplars ∪ crops showing it|.
    Groups with fewer than `min_exemplars` crops are ignored.
    """
    all_crops = np.asarray(all_crops, dtype=np.int64)
    rows = []
    for concept in concepts:
        having = {int(c) for c in all_crops if concept in crop_concepts.get(int(c), set())}
        base = len(having) / len(all_crops) if len(all_crops) else float("nan")
        best: dict[str, Any] | None = None
        for (depth, group), ex in groups.items():
            if len(ex) < min_exemplars:
                continue
            hit = sum(int(e) in having for e in ex)
            purity = hit / len(ex)
            union = len(having | {int(e) for e in ex})
            cand = {"depth": depth, "group": group, "exemplars": len(ex), "purity": purity,
                    "iou": hit / union if union else 0.0}
            if best is None or (cand["purity"], cand["iou"]) > (best["purity"], best["iou"]):
                best = cand
        row = {"concept": concept, "base_rate": base}
        if best is None:
            row.update({"depth": -1, "group": -1, "exemplars": 0, "purity": float("nan"), "iou": float("nan"),
                        "gain": float("nan")})
        else:
            gain = (best["purity"] - base) / (1 - base) if base < 1 else float("nan")
            row.update(best, gain=gain)
        rows.append(row)
    return pd.DataFrame(rows)


def label_accuracy(labels: dict[tuple[int, int], str], groups: dict[tuple[int, int], np.ndarray],
                   crop_concepts: dict[int, set[str]], vocabulary: Sequence[str], majority: float = 0.5
                   ) -> dict[str, float]:
    """Share of groups whose label names a concept shown by at least `majority` of their exemplars.

    Also: `any` (shown by at least one exemplar) and `chance` (the expected accuracy of a label drawn
    uniformly from `vocabulary`).
    """
    correct, anyhit, chance, n = 0, 0, 0.0, 0
    for key, label in labels.items():
        ex = groups[key]
        if len(ex) == 0:
            continue
        counts = {c: sum(c in crop_concepts.get(int(e), set()) for e in ex) / len(ex) for c in vocabulary}
        shown = {c for c, f in counts.items() if f >= majority}
        correct += label in shown
        anyhit += counts.get(label, 0.0) > 0
        chance += len(shown) / len(vocabulary)
        n += 1
    if n == 0:
        return {"groups": 0, "accuracy": float("nan"), "any": float("nan"), "chance": float("nan")}
    return {"groups": n, "accuracy": correct / n, "any": anyhit / n, "chance": chance / n}


# --------------------------------------------------------------------------------------------------
# label evaluation: labelling measured apart from grouping, against each group's own planted concept


def exemplar_concepts(circuit: Any, batch: Any) -> dict[int, set[str]]:
    """Planted concepts visible in each exemplar crop of a world circuit, from the generator's masks.

    `batch` is the `WorldBatch` the circuit was fitted on (as a tensor: image sources 'tensor:i').
    """
    from neurflow_kb.world.generator import region_concepts

    sources = circuit.tables["images"]["source"].astype(str).tolist()
    origin = []
    for src in sources:
        kind, _, index = src.partition(":")
        if kind != "tensor" or not index.isdigit():
            raise UserError(f"image source {src!r} is not an index into the fitted tensor; fit the circuit "
                            "on `batch.tensor()` to evaluate it against the world's masks")
        origin.append(int(index))
    ex = circuit.tables["exemplars"].drop_duplicates("crop")
    out = {}
    for crop, image, top, left, size in zip(ex["crop"], ex["image"], ex["top"], ex["left"], ex["size"],
                                            strict=True):
        i = origin[int(image)]
        out[int(crop)] = set(region_concepts(batch.concepts[i], batch.object_masks[i], batch.part_masks[i],
                                             int(top), int(left), int(size)))
    return out


def group_truth(groups: dict[tuple[int, int], np.ndarray], crop_concepts: dict[int, set[str]],
                concepts: Sequence[str]) -> pd.DataFrame:
    """Per group: how many exemplar crops, the share of them showing each concept (`shares`), the
    dominant concepts (the highest share, ties all kept) and the group's purity (that share)."""
    rows = []
    for (depth, group), crops in sorted(groups.items()):
        n = len(crops)
        shares = {c: sum(c in crop_concepts.get(int(e), set()) for e in crops) / n if n else 0.0
                  for c in concepts}
        purity = max(shares.values()) if shares else 0.0
        dominant = tuple(c for c in concepts if purity > 0 and shares[c] >= purity - 1e-9)
        rows.append({"depth": depth, "group": group, "exemplars": n, "purity": purity, "dominant": dominant,
                     "shares": shares})
    return pd.DataFrame(rows, columns=["depth", "group", "exemplars", "purity", "dominant", "shares"])


def label_evaluation(truth: pd.DataFrame, labels: dict[tuple[int, int], str], class_concepts: Sequence[str],
                     backgrounds: Sequence[str] = ()) -> pd.DataFrame:
    """Each labelled group's top label against its own exemplars.

    right: the label is one of the group's dominant concepts; majority: shown by at least half of its
    exemplars (the looser rule, true of a class's colour for nearly every group); share: the share of
    exemplars showing it; class_concept / background: the label is one of the class's planted concepts /
    a background; background_right: a background that is also dominant.
    """
    rows = []
    for r in truth.itertuples(index=False):
        key = (int(r.depth), int(r.group))
        if key not in labels or r.exemplars == 0:
            continue
        label = labels[key]
        share = float(r.shares.get(label, 0.0))
        right = label in r.dominant
        rows.append({"depth": key[0], "group": key[1], "label": label, "right": right,
                     "majority": share >= 0.5, "share": share, "purity": float(r.purity),
                     "class_concept": label in class_concepts,
                     "background": label in backgrounds, "background_right": label in backgrounds and right})
    return pd.DataFrame(rows, columns=["depth", "group", "label", "right", "majority", "share", "purity",
                                       "class_concept", "background", "background_right"])


def planted_coverage(labels: Sequence[str], class_concepts: Sequence[str]) -> float:
    """Share of a class's planted concepts named by at least one of its groups' top labels."""
    return len(set(labels) & set(class_concepts)) / len(class_concepts)


def coverage_ceiling(truth: pd.DataFrame, class_concepts: Sequence[str], rule: str = "dominant") -> float:
    """The most planted coverage top-1 labels could reach if every group were named correctly: a maximum
    matching of groups to the class's concepts, a group allowed a concept among its dominant ones
    ('dominant') or shown by at least half of its exemplars ('majority')."""
    from scipy.optimize import linear_sum_assignment

    if rule not in ("dominant", "majority"):
        raise UserError(f"rule must be 'dominant' or 'majority' (got {rule!r})")
    if truth.empty:
        return 0.0
    allowed = np.zeros((len(truth), len(class_concepts)))
    for i, r in enumerate(truth.itertuples(index=False)):
        for j, c in enumerate(class_concepts):
            allowed[i, j] = c in r.dominant if rule == "dominant" else r.shares.get(c, 0.0) >= 0.5
    rows, cols = linear_sum_assignment(-allowed)
    return float(allowed[rows, cols].sum()) / len(class_concepts)
