"""Fidelity benchmark: are NeurFlow circuits faithful, and do their groups and labels find planted concepts?

Runs the paper's evaluations (NEURFLOW.md 7.1, 7.3, 7.4, with the bugs of section 9 fixed: masks are
applied, random sets never overlap the core set, correlations are per class and NaN stays NaN, every
draw is seeded) on two models, plus two ground-truth checks on the planted-concept world:

- ``world``: the shipped world classifier (`neurflow_kb.world`), all 12 classes;
- ``digits``: a small CNN trained here on scikit-learn's digits (seeded, about half a minute).

For each class: the circuit (`NeurFlow.fit`), then per layer the class accuracy with its core neurons
masked / retained against as many random neurons (single layer and all layers from the top down at
once), 7.3 (a node's core set against random sets of its size), 7.4 (IG importance against masking
effects, Pearson and Spearman), concept recovery (the group whose exemplars best show each planted
concept) and labels (the tiny world CLIP's top label of every group, by the mean-embedding and the
contrastive method, against the planted concept the group's exemplars share most). Prints one JSON
line per model; writes ``docs/fidelity.md`` and ``docs/figures/fidelity_*.png``.

    python benchmarks/fidelity.py                      # both models, all classes (about 10-15 min here)
    python benchmarks/fidelity.py --quick --no-docs    # 3 classes each, fewer draws (smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # neurflow_kb_dev (not installed)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Settings:
    """Knobs of one benchmark run (modest tau / k so both models finish in minutes on a CPU)."""

    tau: int = 8
    top_k: int = 30
    ig_steps: int = 16
    max_nodes: int = 8
    circuit_images: int = 20
    eval_images: int = 60
    eval_concept_images: int = 6       # images whose crops form the concept set of 7.3 / 7.4
    draws: int = 20                    # random sets per layer (7.1)
    multi_draws: int = 10              # random draws of the multi-layer panels (7.1)
    optimality_draws: int = 30         # random sets per node (7.3)
    optimality_nodes: int = 2          # nodes per layer (7.3): the most important ones
    correlation_draws: int = 40        # random subsets per size (7.4)
    correlation_sizes: tuple[int, ...] = (1, 4, 8)
    node_classes: int = 4              # classes that run 7.3 and 7.4 (the first ones)
    classes: tuple[int, ...] | None = None
    seed: int = 0
    threads: int = 1

    def neurflow(self) -> Any:
        from neurflow_kb import NeurFlowConfig

        return NeurFlowConfig(tau=self.tau, top_k=self.top_k, ig_steps=self.ig_steps,
                              max_nodes_per_layer=self.max_nodes, seed=self.seed, class_filter="predicted")


# --------------------------------------------------------------------------------------------------
# models


def world_model() -> tuple[Any, list[str]]:
    """The shipped world classifier as an adapter, and its class names."""
    from neurflow_kb.world import CLASS_NAMES, world_adapter

    return world_adapter(), list(CLASS_NAMES)


DIGITS_SIZE = 32


def digits_data(seed: int) -> dict[str, Any]:
    """scikit-learn digits as [N,3,32,32] tensors (bilinear upsampling, mean 0.5 / std 0.5), seeded split."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    x01 = x.clamp(0, 1).repeat(1, 3, 1, 1)
    y = torch.tensor(d.target, dtype=torch.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    train, test = order[:1200], order[1200:]
    norm = (x01 - 0.5) / 0.5
    return {"x": norm, "x01": x01, "y": y, "train": train, "test": test}


def digits_model(data: dict[str, Any], seed: int, epochs: int = 15) -> tuple[Any, float, float]:
    """Train a small ResNet-style CNN on the digits; returns (adapter, test accuracy, seconds).

    Stem (stride 2) -> layer1 (32 ch, 16x16) -> layer2 (48 ch, 8x8) -> layer3 (64 ch, 4x4) -> pool -> fc.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    from neurflow_kb.models import ModelAdapter
    from neurflow_kb.world.classifier import BasicBlock
    from neurflow_kb_dev.world_train import _one_cycle, deterministic

    class DigitsNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
            self.layer1 = BasicBlock(32, 32)
            self.layer2 = BasicBlock(32, 48, stride=2)
            self.layer3 = BasicBlock(48, 64, stride=2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.flatten(self.pool(self.layer3(self.layer2(self.layer1(self.stem(x)))))))

    started = time.perf_counter()
    x, y = data["x"], data["y"]
    tr, te = torch.as_tensor(data["train"]), torch.as_tensor(data["test"])
    with deterministic(seed, torch.get_num_threads()):
        model = DigitsNet()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
        steps = (len(tr) // 64) * epochs
        sched = _one_cycle(opt, steps)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            model.train()
            order = tr[torch.randperm(len(tr), generator=gen)]
            for s in range(len(tr) // 64):
                idx = order[s * 64:(s + 1) * 64]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x[te]).argmax(1) == y[te]).float().mean())
    adapter = ModelAdapter.from_module(model, ["layer1", "layer2", "layer3", "fc"], name="digits-cnn",
                                       mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=DIGITS_SIZE,
                                       class_names=[str(i) for i in range(10)], weights=f"trained-seed{seed}")
    return adapter, acc, time.perf_counter() - started


def world_data(s: Settings) -> dict[str, Any]:
    """Per-class image sources of the world: circuit images (with ground truth), evaluation, concept set."""
    from neurflow_kb.world import generate

    def circuit(cls: int) -> tuple[Any, Any]:
        batch = generate(s.circuit_images, seed=1000 + cls, classes=[cls])
        return batch.tensor(), batch

    return {"circuit": circuit,
            "eval": lambda cls: generate(s.eval_images, seed=2000 + cls, classes=[cls]).tensor(),
            "concept": lambda cls: generate(s.eval_concept_images, seed=3000 + cls, classes=[cls]).tensor()}


def digits_split(dd: dict[str, Any], s: Settings) -> dict[str, Any]:
    """Per-class image sources of the digits: train images for circuits and concept sets, test images."""

    def of_class(split: str, cls: int, start: int, n: int) -> Any:
        idx = [i for i in dd[split] if int(dd["y"][i]) == cls][start:start + n]
        return dd["x"][idx]

    return {"circuit": lambda cls: (of_class("train", cls, 0, s.circuit_images), None),
            "eval": lambda cls: of_class("test", cls, 0, 1000),
            "concept": lambda cls: of_class("train", cls, s.circuit_images, s.eval_concept_images)}


# --------------------------------------------------------------------------------------------------
# per-class evaluation


def _crop_maps(adapter: Any, images: Any, layer: str, granularities: tuple[float, ...],
               stride: float) -> tuple[Any, Any]:
    """Full maps of `layer` for every crop of `images`, and the crop plan."""
    import torch

    from neurflow_kb.data import iter_batches, plan_crops

    plan = plan_crops(len(images), int(images.shape[-1]), granularities, stride)
    with torch.no_grad():
        maps = torch.cat([adapter.activations(b, [layer])[layer] for _, b in iter_batches(images, plan, 256)])
    return maps, plan


def node_evaluations(adapter: Any, circuit: Any, concept_images: Any, s: Settings, rng: np.random.Generator
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """7.3 and 7.4 for every transition of one class circuit, on the crops of `concept_images`."""
    import torch

    from neurflow_kb_dev.fidelity import (
        ig_importance,
        optimality,
        upper_under_masks,
        weight_effect_correlation,
    )

    chain = list(circuit.manifest["layers"])
    core = circuit.tables["core"]
    cfg = s.neurflow()
    opt_rows, corr_rows = [], []
    for depth in range(len(chain) - 1, 0, -1):
        upper, lower = chain[depth], chain[depth - 1]
        nodes = list(dict.fromkeys(core.loc[core["depth"] == depth, "neuron"].tolist()))
        if not nodes:
            continue
        maps, _ = _crop_maps(adapter, concept_images, lower, cfg.granularities, cfg.stride_ratio)
        c = adapter.channels(lower)
        k = min(s.top_k, maps.shape[0] // 4)
        for rank, n in enumerate(nodes[: s.optimality_nodes]):
            clean = upper_under_masks(adapter, lower, upper, n, maps, torch.ones(1, c))[0]
            ex = np.argsort(-clean, kind="stable")[:k]
            cs = core[(core["depth"] == depth) & (core["neuron"] == n)].sort_values("rank")
            res = optimality(adapter, lower, upper, n, maps, ex, cs["lower_neuron"].to_numpy(np.int64),
                             draws=s.optimality_draws, seed=int(rng.integers(2**31)))
            opt_rows.append({"layer": upper, "lower": lower, "neuron": n, "node_rank": rank, **res})
        n = int(nodes[int(rng.integers(len(nodes)))])
        clean = upper_under_masks(adapter, lower, upper, n, maps, torch.ones(1, c))[0]
        ex = np.argsort(-clean, kind="stable")[:k]
        imp = ig_importance(adapter, lower, upper, n, maps[ex], steps=s.ig_steps)
        for row in weight_effect_correlation(adapter, lower, upper, n, maps, ex, imp,
                                             sizes=s.correlation_sizes, draws=s.correlation_draws,
                                             seed=int(rng.integers(2**31))):
            corr_rows.append({"layer": upper, "lower": lower, "neuron": n, **row})
    return opt_rows, corr_rows


# the label methods compared on the world's circuits (docs/labels.md has the full label benchmark)
LABEL_METHODS = ("mean", "contrast")


def ground_truth(circuit: Any, fitted_images: Any, batch: Any, clip: Any | None,
                 cls: int, s: Settings) -> tuple[pd.DataFrame, list[dict[str, Any]], pd.DataFrame]:
    """Concept recovery and the label evaluation of one world-class circuit: each label method's top label
    of every group against the group's own dominant planted concept, and the class's planted coverage."""
    from neurflow_kb.data import plan_crops
    from neurflow_kb.labels import label_circuit
    from neurflow_kb.world import BACKGROUNDS, CONCEPT_KIND, CONCEPTS, WORLD_CLASSES, region_concepts
    from neurflow_kb.world.clip import CONCEPT_TEMPLATES
    from neurflow_kb_dev.fidelity import (
        concept_recovery,
        coverage_ceiling,
        group_exemplars,
        group_truth,
        label_evaluation,
        planted_coverage,
    )

    cfg = s.neurflow()
    origin = [int(src.split(":")[1]) for src in fitted_images.sources]
    plan = plan_crops(len(origin), int(fitted_images.images.shape[-1]), cfg.granularities, cfg.stride_ratio)
    crop_concepts = {}
    for crop in range(len(plan)):
        i = origin[int(plan.image[crop])]
        t, le, sz = int(plan.top[crop]), int(plan.left[crop]), int(plan.size[crop])
        crop_concepts[crop] = set(region_concepts(batch.concepts[i], batch.object_masks[i],
                                                  batch.part_masks[i], t, le, sz))
    groups = group_exemplars(circuit)
    defining = list(WORLD_CLASSES[cls].concepts)
    rec = concept_recovery(groups, crop_concepts, range(len(plan)), defining + list(BACKGROUNDS))
    rec["kind"] = rec["concept"].map(CONCEPT_KIND)
    rec["defining"] = rec["concept"].isin(defining)
    rec["class"] = cls
    class_rows: list[dict[str, Any]] = []
    label_rows = []
    if clip is not None:
        truth = group_truth(groups, crop_concepts, list(CONCEPTS))
        ceiling = coverage_ceiling(truth, defining)
        g = circuit.tables["groups"].set_index(["depth", "group"])
        for method in LABEL_METHODS:
            lab = label_circuit(circuit, clip, list(CONCEPTS), top_n=1, templates=CONCEPT_TEMPLATES,
                                method=method).labels
            top = {(int(r.depth), int(r.group)): str(r.concept) for r in lab.itertuples(index=False)}
            ev = label_evaluation(truth, top, defining, BACKGROUNDS)
            ev["layer"] = [g.loc[(d, gr), "layer"] for d, gr in zip(ev["depth"], ev["group"], strict=True)]
            ev["abs_influence"] = [float(g.loc[(d, gr), "abs_influence"])
                                   for d, gr in zip(ev["depth"], ev["group"], strict=True)]
            ev["class"], ev["method"] = cls, method
            label_rows.append(ev)
            class_rows.append({"class": cls, "method": method, "ceiling": ceiling,
                               "coverage": planted_coverage(ev["label"], defining)})
    return rec, class_rows, pd.concat(label_rows, ignore_index=True) if label_rows else pd.DataFrame()


def run_model(name: str, adapter: Any, class_names: list[str], data: dict[str, Any], s: Settings,
              clip: Any | None, log: Any) -> dict[str, Any]:
    """Every evaluation for one model; returns the summary and the tables for the report."""
    from neurflow_kb import NeurFlow
    from neurflow_kb_dev.fidelity import core_sets, layer_fidelity

    classes = list(s.classes) if s.classes is not None else list(range(len(class_names)))
    rng = np.random.default_rng(s.seed)
    layer_tables, opt_rows, corr_rows, rec_tables, label_tables, label_infos = [], [], [], [], [], []
    fit_seconds, nodes_per_layer = [], []
    for i, cls in enumerate(classes):
        t0 = time.perf_counter()
        images, batch = data["circuit"](cls)
        nf = NeurFlow(s.neurflow())
        circuit = nf.fit(adapter, images, cls, progress=False)
        fit_seconds.append(time.perf_counter() - t0)
        nodes = circuit.tables["nodes"].groupby("layer")["neuron"].nunique().to_dict()
        nodes_per_layer.append(nodes)
        table = layer_fidelity(adapter, data["eval"](cls), cls, core_sets(circuit), draws=s.draws,
                               seed=int(rng.integers(2**31)), multi_draws=s.multi_draws)
        table["class"] = cls
        layer_tables.append(table)
        if i < s.node_classes:
            o, c = node_evaluations(adapter, circuit, data["concept"](cls), s, rng)
            opt_rows += [dict(r, **{"class": cls}) for r in o]
            corr_rows += [dict(r, **{"class": cls}) for r in c]
        if batch is not None:
            rec, info, labels = ground_truth(circuit, nf.images_, batch, clip, cls, s)
            rec_tables.append(rec)
            if info:
                label_infos += info
                label_tables.append(labels)
        log(f"{name} class {cls} ({class_names[cls]}): {time.perf_counter() - t0:.0f} s")
    out: dict[str, Any] = {
        "layers": pd.concat(layer_tables, ignore_index=True),
        "optimality": pd.DataFrame(opt_rows), "correlation": pd.DataFrame(corr_rows),
        "recovery": pd.concat(rec_tables, ignore_index=True) if rec_tables else pd.DataFrame(),
        "labels": pd.concat(label_tables, ignore_index=True) if label_tables else pd.DataFrame(),
        "label_infos": pd.DataFrame(label_infos), "classes": classes,
        "fit_seconds": float(np.mean(fit_seconds)), "nodes_per_layer": nodes_per_layer,
    }
    return out


# --------------------------------------------------------------------------------------------------
# summaries


def layer_means(layers: pd.DataFrame) -> pd.DataFrame:
    """Per-layer means over classes, leaving out classes whose V_l covers every channel of the layer
    (core and random sets are then the same set: nothing to compare); `classes` counts the rest."""
    valid = layers[layers["core"] < layers["channels"]]
    out = valid.groupby("layer", sort=False).mean(numeric_only=True)
    out.insert(0, "classes", valid.groupby("layer", sort=False).size())
    return out.drop(columns=["class"], errors="ignore")


def label_summary(labels: pd.DataFrame, classes: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per label method: accuracy against each group's own dominant concept, the majority rule, planted
    coverage per class and its ceiling, background labels, purity."""
    out = {}
    for method, part in labels.groupby("method", sort=False):
        c = classes[classes["method"] == method]
        out[method] = {"groups": int(len(part)), "accuracy": _r(part["right"].mean()),
                       "majority": _r(part["majority"].mean()), "label_share": _r(part["share"].mean()),
                       "coverage": _r(c["coverage"].mean()), "ceiling": _r(c["ceiling"].mean()),
                       "backgrounds": int(part["background"].sum()),
                       "backgrounds_dominant": int(part["background_right"].sum()),
                       "purity": _r(part["purity"].mean())}
    return out


def _r(v: Any, nd: int = 3) -> Any:
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else round(float(v), nd)


def summarize(name: str, res: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON line of one model."""
    layers = layer_means(res["layers"])
    keys = ("classes", "core_fraction", "accuracy", "mask_core", "mask_random", "retain_core",
            "retain_random", "mask_core_prob", "mask_random_prob", "retain_core_prob", "retain_random_prob",
            "multi_mask_core", "multi_mask_random", "multi_retain_core", "multi_retain_random")
    per_layer = {layer: {k: _r(row[k]) for k in keys} for layer, row in layers.iterrows()}
    out: dict[str, Any] = {"benchmark": "fidelity", "model": name, **extra, "classes": len(res["classes"]),
                           "layers": per_layer}
    opt = res["optimality"]
    if not opt.empty:
        g = opt.groupby("layer", sort=False)
        okeys = ("overlap_core", "overlap_random", "gap", "random_at_least_as_destructive")
        out["optimality"] = {layer: {k: _r(r[k]) for k in okeys}
                             for layer, r in g.mean(numeric_only=True).iterrows()}
    corr = res["correlation"]
    if not corr.empty:
        g = corr.groupby(["layer", "size"], sort=False).mean(numeric_only=True)
        out["correlation"] = {f"{layer}/{size}": {k: _r(r[k]) for k in ("pearson_overlap", "spearman_overlap",
                                                                         "pearson_drop", "spearman_drop")}
                              for (layer, size), r in g.iterrows()}
        out["correlation_mean"] = {k: _r(corr[k].mean()) for k in ("pearson_overlap", "spearman_overlap",
                                                                   "pearson_drop", "spearman_drop")}
    rec = res["recovery"]
    if not rec.empty:
        d = rec[rec["defining"]]
        out["concept_recovery"] = {
            kind: {"purity": _r(p["purity"].mean()), "base_rate": _r(p["base_rate"].mean()),
                   "gain": _r(p["gain"].mean()), "iou": _r(p["iou"].mean())}
            for kind, p in d.groupby("kind", sort=False)}
        bg = rec[~rec["defining"]]
        out["concept_recovery"]["background (nuisance)"] = {
            "purity": _r(bg["purity"].mean()), "base_rate": _r(bg["base_rate"].mean()),
            "gain": _r(bg["gain"].mean()), "iou": _r(bg["iou"].mean())}
    li = res["label_infos"]
    if not li.empty:
        out["labels"] = label_summary(res["labels"], li)
    out["fit_seconds_per_class"] = _r(res["fit_seconds"], 1)
    return out


# --------------------------------------------------------------------------------------------------
# report


def _plot_masking(name: str, res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = layer_means(res["layers"])
    x = np.arange(len(t))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.7), sharey=True)
    for ax, mode in zip(axes, ("mask", "retain"), strict=True):
        ax.plot(x, t[f"{mode}_core"], "o-", color="C3", label="core (single layer)")
        ax.plot(x, t[f"{mode}_random"], "o-", color="C0", label="random (single layer)")
        ax.plot(x, t[f"multi_{mode}_core"], "s--", color="C3", alpha=0.6,
                label="core (this layer and above)")
        ax.plot(x, t[f"multi_{mode}_random"], "s--", color="C0", alpha=0.6,
                label="random (this layer and above)")
        ax.set_xticks(x, list(t.index))
        ax.set_title(f"{name}: {'masking' if mode == 'mask' else 'retaining only'} V_l")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("class accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_correlation(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 3.3), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        corr = res["correlation"]
        if corr.empty:
            continue
        corr = corr.assign(pair=corr["lower"] + "→" + corr["layer"])
        g = corr.groupby(["pair", "size"], sort=False).mean(numeric_only=True).reset_index()
        pairs = list(dict.fromkeys(g["pair"]))
        for j, size in enumerate(sorted(g["size"].unique())):
            part = g[g["size"] == size].set_index("pair").reindex(pairs)
            ax.bar(np.arange(len(pairs)) + 0.25 * j - 0.25, part["spearman_overlap"], width=0.25,
                   label=f"{size} channel{'s' if size > 1 else ''} masked")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(np.arange(len(pairs)), pairs, fontsize=8)
        ax.set_ylim(-1.05, 0.5)
        ax.set_title(f"{name}: Spearman(importance, exemplar overlap)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_concepts(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = res["recovery"].copy()
    rec.loc[~rec["defining"], "kind"] = "background\n(nuisance)"
    g = rec.groupby("kind", sort=False)[["purity", "base_rate"]].mean()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    x = np.arange(len(g))
    axes[0].bar(x - 0.2, g["purity"], 0.4, label="best group's purity", color="C2")
    axes[0].bar(x + 0.2, g["base_rate"], 0.4, label="base rate in the crops", color="C7")
    axes[0].set_xticks(x, list(g.index))
    axes[0].set_ylim(0, 1.3)
    axes[0].set_title("world: concept recovery")
    axes[0].legend(fontsize=7)
    lab = res["labels"]
    if not lab.empty:
        by = lab.pivot_table(index="layer", columns="method", values="right", aggfunc="mean", sort=False)
        x = np.arange(len(by))
        for k, method in enumerate(by.columns):
            axes[1].bar(x + (k - 0.5) * 0.4, by[method].values, width=0.4, color=f"C{k + 1}",
                        label=f"{method}: top label = the group's dominant concept")
        axes[1].set_xticks(x, list(by.index))
        axes[1].set_ylim(0, 1.3)
        axes[1].set_title("world: tiny-CLIP label accuracy per layer")
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_COUNTS = ("classes", "channels", "size", "core_size", "groups", "subsets", "exemplars")


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            number = isinstance(v, (int, float, np.integer, np.floating))
            if c in _COUNTS and number and float(v).is_integer():
                cells.append(str(int(v)))
            elif isinstance(v, (float, np.floating)):
                cells.append(floatfmt.format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results: dict[str, dict[str, Any]], lines: dict[str, dict[str, Any]], s: Settings,
                 seconds: float, out: Path, figures: Path) -> None:
    """docs/fidelity.md with tables, figures and a closing note made from the numbers of this run."""
    figures.mkdir(parents=True, exist_ok=True)
    parts = [
        "# Fidelity of NeurFlow circuits",
        "",
        "Generated by `python benchmarks/fidelity.py` (do not edit by hand; re-run it). The protocols are "
        "NEURFLOW.md sections 7.1, 7.3 and 7.4 with the bugs of section 9 fixed: masks are really applied "
        "(B3, B13), random sets are seeded (B12) and never overlap the core set in 7.3 (B23), correlations "
        "are computed per class and an undefined correlation stays NaN instead of 0 (B4, B22). On the "
        "planted-concept world (`neurflow_kb.world`) two more checks use the ground truth: concept recovery "
        "and label accuracy.",
        "",
        f"Settings: tau {s.tau}, top_k {s.top_k}, {s.ig_steps} Gauss-Legendre IG steps, at most "
        f"{s.max_nodes} nodes per layer, {s.circuit_images} circuit images and {s.eval_images} fresh "
        f"evaluation images per class, {s.draws} random sets per layer (7.1), {s.optimality_draws} per "
        f"node (7.3), {s.correlation_draws} per subset size (7.4), seed {s.seed}. Run time "
        f"{seconds / 60:.1f} min on this machine's shared 2-core CPU (torch threads: {s.threads}).",
        "",
        "Masking sets whole channels of a layer's output to zero through a forward hook "
        "(`ModelAdapter.run_from`), retaining zeroes every other channel. V_l = the circuit's neurons "
        "at layer l: its nodes there (the union of the core sets selected from that layer, after the cap "
        "of nodes per layer), and at the bottom layer the union of the core sets selected from it. A "
        "class whose V_l covers every channel of a layer is left out of that layer's means (core and "
        "random sets would coincide); `classes` counts the others. \"This layer and above\" masks V "
        "at that layer and every layer above it in one forward pass (the paper's multi-layer panels).",
    ]
    if "world" in results:
        parts += world_section()
    for name, res in results.items():
        line = lines[name]
        _plot_masking(name, res, figures / f"fidelity_{name}_masking.png")
        t = layer_means(res["layers"]).reset_index()
        single = t[["layer", "classes", "channels", "core", "accuracy", "mask_core", "mask_random",
                    "retain_core", "retain_random", "mask_core_prob", "mask_random_prob", "retain_core_prob",
                    "retain_random_prob"]].rename(columns={"core": "V_l size"})
        multi = t[["layer", "multi_mask_core", "multi_mask_random", "multi_retain_core",
                   "multi_retain_random", "multi_mask_core_prob", "multi_mask_random_prob",
                   "multi_retain_core_prob", "multi_retain_random_prob"]]
        parts += ["", f"## {name}: masking and retaining core neurons (7.1)", "",
                  f"{line['classes']} classes. {line.get('note', '')} Columns: class accuracy with V_l "
                  "masked or retained (core) against the mean over random sets of |V_l| channels (random); "
                  "`*_prob` = the mean probability of the class, a finer view than the argmax.", "",
                  "Single layer:", "", _md_table(single.round(3)), "",
                  "This layer and every layer above it at once:", "", _md_table(multi.round(3)), "",
                  f"![{name} masking](figures/fidelity_{name}_masking.png)"]
        if not res["optimality"].empty:
            o = res["optimality"].groupby("layer", sort=False).mean(numeric_only=True).reset_index()
            o = o[["layer", "core_size", "overlap_core", "overlap_random", "gap",
                   "random_at_least_as_destructive", "drop_core", "drop_random"]]
            parts += ["", f"### {name}: a node's core set vs random sets of its size (7.3)", "",
                      "Exemplar overlap = |E ∩ E'|/|E| of a node's top crops before and after masking (lower "
                      "= more disruptive); drop = relative fall of its mean activation on E. The most "
                      f"important {s.optimality_nodes} nodes per layer of the first {s.node_classes} "
                      "classes.",
                      "", _md_table(o.round(3))]
        if not res["correlation"].empty:
            c = res["correlation"].groupby(["layer", "size"], sort=False).mean(numeric_only=True)
            c = c.reset_index()
            c = c[["layer", "size", "pearson_overlap", "spearman_overlap", "pearson_drop", "spearman_drop"]]
            parts += ["", f"### {name}: IG importance vs masking effect (7.4)", "",
                      "Importance of a masked subset = sum of mean |IG| of its channels. A faithful "
                      "importance correlates negatively with the exemplar overlap left and positively with "
                      "the activation drop. One random node per layer and class.", "", _md_table(c.round(3))]
    _plot_correlation(results, figures / "fidelity_correlation.png")
    parts += ["", "## Correlation plots", "", "![correlation](figures/fidelity_correlation.png)"]
    world = results.get("world")
    if world is not None and not world["recovery"].empty:
        _plot_concepts(world, figures / "fidelity_world_concepts.png")
        rec = world["recovery"].copy()
        rec.loc[~rec["defining"], "kind"] = "background (nuisance)"
        r = rec.groupby("kind", sort=False)[["purity", "base_rate", "gain", "iou"]].mean().reset_index()
        parts += ["", "## world: concept recovery", "",
                  "For each planted concept of a class (its shape, colour, texture and part; backgrounds "
                  "are nuisances, independent of the class) the group, at any layer, whose exemplar crops "
                  "most often show it. purity = share of that group's exemplars showing the concept; "
                  "base rate = share of all the class's crops showing it; gain = (purity - base) / "
                  "(1 - base); iou = overlap of the group's exemplars with the crops showing it. A concept "
                  "counts as shown in a crop by the generator's masks (`region_concepts`).", "",
                  _md_table(r.round(3)), "", "![concepts](figures/fidelity_world_concepts.png)"]
        lab = world["labels"]
        if not lab.empty:
            summary = label_summary(lab, world["label_infos"])
            table = pd.DataFrame([{"method": m, **v} for m, v in summary.items()])
            by_layer = lab.pivot_table(index="layer", columns="method", values="right", aggfunc="mean",
                                       sort=False)
            by_layer.columns = [f"accuracy_{c}" for c in by_layer.columns]
            parts += ["", "## world: labels", "",
                      "Every group is labelled with the product's `label_circuit` and the tiny world CLIP "
                      "(its own prompts, the world's 19 concept words, top-1) by the mean-embedding method "
                      "and by the contrastive default (docs/labels.md). accuracy = the top label is one of "
                      "the group's dominant concepts (the planted concept its exemplar crops share most, "
                      "from the masks; ties count); majority = shown by at least half of its exemplars; "
                      "coverage = share of the class's 4 planted concepts named by its groups' top labels "
                      "(ceiling: if every group were named by one of its dominant concepts); backgrounds = "
                      "top labels naming a background (dominant: of those, the group's dominant concept); "
                      "purity = mean share of a group's exemplars showing its dominant concept. `python "
                      "benchmarks/labels.py` has more circuits and the ablations.", "", _md_table(table), "",
                      _md_table(by_layer.reset_index().round(3))]
    parts += ["", "## Closing note", ""]
    for name, line in lines.items():
        parts.append(closing_note(name, line))
    kept = _comparison_section(out)
    out.write_text("\n".join(parts) + "\n" + (f"\n{kept}\n" if kept else ""))


def _comparison_section(doc: Path) -> str:
    """The section benchmarks/comparison.py wrote into `doc` (between its markers), kept on rewrites."""
    begin, end = "<!-- comparison:begin", "<!-- comparison:end -->"
    text = doc.read_text() if doc.is_file() else ""
    if begin not in text or end not in text:
        return ""
    return begin + text.split(begin, 1)[1].split(end, 1)[0] + end


def world_section() -> list[str]:
    """Markdown describing the world, its models and how to load them (from the shipped training records)."""
    from neurflow_kb.world import BACKGROUNDS, CONCEPT_KINDS, WORLD_CLASSES
    from neurflow_kb.world.classifier import CLASSIFIER_FILE
    from neurflow_kb.world.clip import CLIP_DIR, CLIP_WEIGHTS

    cls_rec = json.loads(CLASSIFIER_FILE.with_suffix(".json").read_text())
    clip_rec = json.loads((CLIP_DIR / "training.json").read_text())
    rows = pd.DataFrame([{"class": i, "name": c.name, "shape": c.shape, "colour": c.colour,
                          "texture": c.texture, "part": c.part} for i, c in enumerate(WORLD_CLASSES)])
    kinds = "; ".join(f"{k}: {', '.join(v)}" for k, v in CONCEPT_KINDS.items())
    mb_cls = CLASSIFIER_FILE.stat().st_size / 1e6
    mb_clip = (CLIP_DIR / CLIP_WEIGHTS).stat().st_size / 1e6
    return [
        "", "## The planted-concept world", "",
        "`neurflow_kb.world.generate(n, seed, classes)` draws 64x64 images of one object on a "
        f"background. Concepts ({kinds}). A class fixes shape, colour, texture and part; the background "
        f"({', '.join(BACKGROUNDS)}) is drawn independently, as are position, size, rotation, colour "
        "jitter and pixel noise. Each image comes with a caption, its concept record and pixel masks of the "
        "object and the part, so the concepts visible in any crop are known (`region_concepts`).", "",
        _md_table(rows), "",
        "Shipped models (trained by `python -m neurflow_kb_dev.world_train classifier|clip`, seeded, one "
        f"thread): the classifier `WorldNet` (`layer1`..`layer4`, `fc`; {mb_cls:.1f} MB) reached "
        f"{cls_rec['metrics']['test_accuracy']:.3f} test accuracy in {cls_rec['train_seconds']:.0f} s "
        "(this shared CPU); "
        "the tiny CLIP (open_clip ModifiedResNet image tower, 2-layer text transformer; "
        f"{mb_clip:.1f} MB in float16) ranks an image's own caption first among the world's 48 captions "
        f"for {clip_rec['metrics']['caption_top1']:.3f} of test images and names a concept visible in a "
        f"random 16/32 px crop for {clip_rec['metrics']['concept_top1_crops']:.3f} of crops; it trained "
        f"in {clip_rec['train_seconds']:.0f} s. Load them with `neurflow_kb.world.world_adapter()` (or "
        "`get_adapter(\"world\")`) and `neurflow_kb.world.load_world_clip()`.",
    ]


def closing_note(name: str, line: dict[str, Any]) -> str:
    """One paragraph of numbers for the closing note."""
    layers = line["layers"]
    mc = np.mean([v["mask_core"] for v in layers.values()])
    mr = np.mean([v["mask_random"] for v in layers.values()])
    rc = np.mean([v["retain_core"] for v in layers.values()])
    rr = np.mean([v["retain_random"] for v in layers.values()])
    mp = np.mean([v["mask_core_prob"] for v in layers.values()])
    mrp = np.mean([v["mask_random_prob"] for v in layers.values()])
    rcp = np.mean([v["retain_core_prob"] for v in layers.values()])
    rrp = np.mean([v["retain_random_prob"] for v in layers.values()])
    text = (f"- **{name}**: averaged over layers and {line['classes']} classes, masking the core neurons "
            f"leaves {mc:.2f} class accuracy against {mr:.2f} for as many random neurons (class "
            f"probability {mp:.2f} vs {mrp:.2f}); retaining only them keeps {rc:.2f} against {rr:.2f} "
            f"(probability {rcp:.2f} vs {rrp:.2f}).")
    if "optimality" in line:
        gaps = [v["gap"] for v in line["optimality"].values() if v["gap"] is not None]
        frac = [v["random_at_least_as_destructive"] for v in line["optimality"].values()
                if v["random_at_least_as_destructive"] is not None]
        text += (f" A node's core set disrupts its exemplars more than random sets of its size (mean overlap "
                 f"gap {np.mean(gaps):.2f}; {np.mean(frac):.0%} of random sets are at least as disruptive).")
    if "correlation_mean" in line:
        cm = line["correlation_mean"]
        text += (f" Importance vs masking effect: Spearman {cm['spearman_overlap']} with the exemplar "
                 f"overlap (Pearson {cm['pearson_overlap']}), Spearman {cm['spearman_drop']} with the "
                 f"activation drop.")
    if "concept_recovery" in line:
        cr = line["concept_recovery"]
        kinds = ", ".join(f"{k} {v['purity']:.2f} (base {v['base_rate']:.2f})" for k, v in cr.items())
        text += f" Concept recovery, best group's purity by kind: {kinds}."
    if "labels" in line:
        m, c = line["labels"].get("mean"), line["labels"].get("contrast")
        if m and c:
            text += (f" Labels (top-1, {c['groups']} groups): the contrastive default names the group's own "
                     f"dominant planted concept for {c['accuracy']:.2f} of groups (mean embedding "
                     f"{m['accuracy']:.2f}) and {c['coverage']:.2f} of a class's planted concepts "
                     f"(mean embedding {m['coverage']:.2f}; ceiling {c['ceiling']:.2f}), with "
                     f"{c['backgrounds']} background labels ({m['backgrounds']}).")
    return text


# --------------------------------------------------------------------------------------------------

_TABLES = ("layers", "optimality", "correlation", "recovery", "labels", "label_infos")


def save_results(directory: Path, results: dict[str, dict[str, Any]], lines: dict[str, dict[str, Any]],
                 s: Settings, seconds: float) -> None:
    """Raw tables (CSV) and summaries (JSON) of a run, so the report can be re-rendered (--report-from)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, res in results.items():
        for table in _TABLES:
            res[table].to_csv(directory / f"{name}_{table}.csv", index=False)
    meta = {"lines": lines, "settings": asdict(s), "seconds": seconds,
            "classes": {n: r["classes"] for n, r in results.items()}}
    (directory / "run.json").write_text(json.dumps(meta, indent=1))


def load_results(directory: Path) -> tuple[dict[str, Any], dict[str, Any], Settings, float]:
    """Read what `save_results` wrote."""
    meta = json.loads((directory / "run.json").read_text())
    results = {}
    for name in meta["lines"]:
        res: dict[str, Any] = {"classes": meta["classes"][name]}
        for table in _TABLES:
            path = directory / f"{name}_{table}.csv"
            try:
                res[table] = pd.read_csv(path)
            except (FileNotFoundError, pd.errors.EmptyDataError):
                res[table] = pd.DataFrame()
        results[name] = res
    settings = meta["settings"]
    settings["correlation_sizes"] = tuple(settings["correlation_sizes"])
    if settings.get("classes") is not None:
        settings["classes"] = tuple(settings["classes"])
    return results, meta["lines"], Settings(**settings), float(meta["seconds"])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one JSON line per model; write the report unless --no-docs."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="world,digits")
    p.add_argument("--classes", default=None, help="comma-separated class indices (default: all)")
    p.add_argument("--quick", action="store_true", help="3 classes per model, fewer draws")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-docs", action="store_true", help="do not write docs/fidelity.md and figures")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "fidelity.md")
    p.add_argument("--save", type=Path, default=None, help="also save the raw tables to this folder")
    p.add_argument("--report-from", type=Path, default=None,
                   help="re-render the report from a folder written by --save (no computation)")
    args = p.parse_args(argv)
    if args.report_from:
        results, lines, s, seconds = load_results(args.report_from)
        write_report(results, lines, s, seconds, args.out, args.out.parent / "figures")
        print(f"wrote {args.out}", file=sys.stderr)
        return 0

    import torch

    torch.set_num_threads(args.threads)
    s = Settings(threads=args.threads)
    if args.classes:
        s.classes = tuple(int(c) for c in args.classes.split(","))
    if args.quick:
        s.classes = s.classes or (0, 2, 4)
        s.draws, s.multi_draws, s.optimality_draws, s.correlation_draws = 8, 4, 10, 12
        s.node_classes = 1
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results, lines = {}, {}
    for name in args.models.split(","):
        t0 = time.perf_counter()
        if name == "world":
            from neurflow_kb.labels import load_clip
            from neurflow_kb.world import world_clip_dir
            from neurflow_kb_dev.world_train import classifier_accuracy

            adapter, class_names = world_model()
            clip = load_clip(checkpoint=world_clip_dir())
            data = world_data(s)
            acc = classifier_accuracy(adapter.model, n=1000, seed=4000)
            extra = {"test_accuracy": round(acc, 4), "weights": adapter.weights,
                     "note": f"Shipped world classifier, test accuracy {acc:.3f} on 1000 fresh images."}
        elif name == "digits":
            dd = digits_data(s.seed)
            adapter, acc, train_s = digits_model(dd, s.seed)
            class_names = [str(i) for i in range(10)]
            clip = None

            data = digits_split(dd, s)
            extra = {"test_accuracy": round(acc, 4), "train_seconds": round(train_s, 1),
                     "note": f"CNN trained here on scikit-learn digits (1200 train / 597 test, seed "
                             f"{s.seed}), test accuracy {acc:.3f}, trained in {train_s:.0f} s. The "
                             "evaluation images are the test images of each class."}
        else:
            raise SystemExit(f"unknown model {name!r}; use world and/or digits")
        res = run_model(name, adapter, class_names, data, s, clip, log)
        line = summarize(name, res, extra)
        line["seconds"] = round(time.perf_counter() - t0, 1)
        results[name], lines[name] = res, line
        print(json.dumps({k: v for k, v in line.items() if k != "note"}), flush=True)
    seconds = time.perf_counter() - started
    if args.save:
        save_results(args.save, results, lines, s, seconds)
    if not args.no_docs:
        write_report(results, lines, s, seconds, args.out, args.out.parent / "figures")
        log(f"wrote {args.out}")
    log(json.dumps({"settings": asdict(s)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
