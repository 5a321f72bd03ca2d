"""Image debugging (NEURFLOW.md section 6.1, with the problems of section 9 B20 fixed): which neuron groups
of a class circuit fire on which crops of one image, and the strongest circuit path to the class.

For a group g with member nodes (n, s) and reference activations mu_{n,s} (the mean activation of the
node's exemplars), every neuron counts once: mu_g(n) = mean of mu_{n,s} over n's sub-concepts in g.
On a crop x with pooled activation a_n(x),

    LB_g(x) = mean over neurons n of g of  log( max( max(a_n(x), 0) / |mu_g(n)| , floor ) )
    score_g = exp( max over crops x of LB_g(x) )

a geometric mean of activation ratios (a soft AND over the group's neurons). The official code adds
eps = 1e-6 inside the log, so one silent neuron adds log(1e-6) = -13.8 and vetoes the whole group, and it
counts a neuron once per sub-concept. Here each neuron counts once and a silent neuron's ratio is floored
at `floor` (0.05 by default: it can halve the score of a group of four, not erase it). A group fires when
score_g >= threshold. docs/debugging.md explains the choices.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UserError
from .viewer.data import CLASS_ID, CircuitView


@dataclass
class DebugConfig:
    """Crops of the image (None: as the circuit was computed, else the NeurFlow defaults), the ratio
    floor, the firing threshold and how many firing crops to show per group."""

    granularities: tuple[float, ...] | None = None
    stride_ratio: float | None = None
    floor: float = 0.05
    threshold: float = 0.8
    crops_per_group: int = 5
    batch_size: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0 < self.floor < 1:
            raise UserError(f"floor must lie in (0, 1) (got {self.floor})")
        if self.threshold <= 0:
            raise UserError(f"threshold must be > 0 (got {self.threshold})")


@dataclass
class GroupReference:
    """A group's neurons (each once) and their reference activations |mu_g(n)|."""

    gid: str
    depth: int
    layer: str
    index: int
    neurons: np.ndarray
    reference: np.ndarray


def group_references(view: CircuitView) -> list[GroupReference]:
    """Per group: its distinct neurons and mu_g(n) = mean of the members' mu_{n,s} over n's sub-concepts."""
    out = []
    for g in view.groups:
        by_neuron: dict[int, list[float]] = {}
        for m in g["members"]:
            by_neuron.setdefault(int(m["neuron"]), []).append(float(m["activation"]))
        if not by_neuron:
            continue
        neurons = np.array(sorted(by_neuron), dtype=np.int64)
        ref = np.array([abs(float(np.mean(by_neuron[n]))) for n in neurons], dtype=np.float64)
        out.append(GroupReference(g["id"], int(g["depth"]), str(g["layer"]), int(g["index"]), neurons, ref))
    return out


def log_barrier(acts: np.ndarray, ref: GroupReference, floor: float) -> np.ndarray:
    """LB_g(x) for every crop: acts [crops, C] (pooled activations of the group's layer) -> [crops]."""
    a = np.maximum(acts[:, ref.neurons].astype(np.float64), 0.0)
    ratio = a / np.maximum(ref.reference, np.finfo(np.float64).tiny)
    return np.log(np.maximum(ratio, floor)).mean(axis=1)


@dataclass
class DebugResult:
    """What `debug_image` found: per-group scores, per-crop log-barrier values, firing crops, the path."""

    source: str
    image_key: str
    predicted: int
    predicted_name: str
    top5: list[tuple[int, str, float]]
    target: int
    target_name: str
    scores: pd.DataFrame            # one row per group: gid, depth, layer, index, score, crop, fires, ...
    crop_scores: dict[str, np.ndarray]  # gid -> LB_g(x) for every crop
    crops: pd.DataFrame             # crop, granularity, top, left, size
    path: pd.DataFrame              # step, gid, layer, score, weight, strength
    view: CircuitView
    config: DebugConfig
    image_png: bytes = b""
    crop_pngs: dict[int, bytes] = field(default_factory=dict)

    def firing(self) -> pd.DataFrame:
        """Groups with score >= threshold, strongest first."""
        return self.scores[self.scores["fires"]].reset_index(drop=True)

    def firing_crops(self, gid: str) -> list[int]:
        """Crops where group `gid` fires (LB >= log threshold), best first, at most `crops_per_group`."""
        lb = self.crop_scores[gid]
        ok = np.flatnonzero(lb >= np.log(self.config.threshold))
        order = ok[np.argsort(-lb[ok], kind="stable")]
        return [int(c) for c in order[: self.config.crops_per_group]]


def image_key(data: bytes) -> str:
    """Content key of an image file (stable across machines and paths)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:20]


def strongest_path(view: CircuitView, scores: dict[str, float]) -> pd.DataFrame:
    """The path from a lowest-layer group up to the class maximising the product of group scores and
    positive edge weights (dynamic programming over the layers, one pass from the top down)."""
    best: dict[str, tuple[float, str | None, float]] = {CLASS_ID: (1.0, None, 1.0)}
    outgoing: dict[str, list[dict[str, Any]]] = {}
    for e in view.edges:
        outgoing.setdefault(e["source"], []).append(e)
    for g in sorted(view.groups, key=lambda g: -g["depth"]):
        gid = g["id"]
        cands = [(float(e["weight"] or 0.0) * best[e["target"]][0], e["target"], float(e["weight"] or 0.0))
                 for e in outgoing.get(gid, []) if e["target"] in best and (e["weight"] or 0.0) > 0]
        if not cands:
            continue
        cands.sort(key=lambda c: str(c[1]))              # ties go to the smaller target id
        value, nxt, w = max(cands, key=lambda c: c[0])
        best[gid] = (scores.get(gid, 0.0) * value, nxt, w)
    starts = [g for g in view.groups if g["id"] in best]
    if not starts:
        return pd.DataFrame(columns=["step", "gid", "layer", "score", "weight", "strength"])
    low = min(g["depth"] for g in starts)
    start = max((g for g in starts if g["depth"] == low), key=lambda g: (best[g["id"]][0], g["id"]))
    rows, gid, step = [], start["id"], 0
    layer_of = {g["id"]: g["layer"] for g in view.groups}
    while gid is not None and gid != CLASS_ID:
        strength, nxt, w = best[gid]
        rows.append({"step": step, "gid": gid, "layer": layer_of[gid], "score": scores.get(gid, 0.0),
                     "weight": w, "strength": strength})
        gid, step = nxt, step + 1
    rows.append({"step": step, "gid": CLASS_ID, "layer": "class", "score": None, "weight": None,
                 "strength": 1.0})
    return pd.DataFrame(rows)


def load_image(image: Any, adapter: Any) -> tuple[Any, bytes, str]:
    """(normalised [3,S,S] tensor, raw bytes, source text) from a path, PIL image or tensor."""
    import torch
    from PIL import Image

    if isinstance(image, str | Path):
        p = Path(image)
        if not p.is_file():
            raise UserError(f"image {p} does not exist; give an image file (PNG, JPEG, ...)")
        from .data import open_rgb

        data = p.read_bytes()
        return adapter.preprocess(open_rgb(data, name=str(p))), data, str(p)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise UserError(f"an image tensor must be [3,H,W] (got {list(image.shape)})")
        x = image.detach().float().cpu()
        return x, x.numpy().tobytes(), "tensor"
    if isinstance(image, Image.Image):
        from .labels.images import pil_png

        data = pil_png(image)
        return adapter.preprocess(image.convert("RGB")), data, "PIL image"
    raise UserError(f"cannot debug an object of type {type(image).__name__}; give an image path")


def debug_image(adapter: Any, image: Any, view: CircuitView,
                config: DebugConfig | None = None) -> DebugResult:
    """Score every group of the circuit `view` on the crops of `image` (a path, PIL image or normalised
    [3,S,S] tensor) with model `adapter`; see the module docstring for the definition."""
    import torch

    from .data import iter_batches, plan_crops, thumbnail_png

    cfg = config or DebugConfig()
    x, raw, source = load_image(image, adapter)
    layers = sorted({g["layer"] for g in view.groups})
    missing = [name for name in layers if name not in adapter.layers and name not in dict(
        adapter.model.named_modules())]
    if missing:
        raise UserError(f"the circuit's layers {missing} are not in model {adapter.name}; debug with the "
                        "model the circuit was computed on")
    size = int(x.shape[-1])
    images = x.unsqueeze(0)
    grans = cfg.granularities or tuple(view.meta.get("granularities") or ()) or (1.0, 0.5, 0.25)
    stride = cfg.stride_ratio or view.meta.get("stride_ratio") or 0.5
    plan = plan_crops(1, size, tuple(float(g) for g in grans), float(stride))
    pooled: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    with torch.no_grad():
        logits = adapter.logits(images.to(cfg.device)).float().cpu()[0]
        for _, batch in iter_batches(images, plan, cfg.batch_size):
            outs = adapter.activations(batch.to(cfg.device), layers)
            for name in layers:
                pooled[name].append(adapter.pool(name, outs[name]).float().cpu().numpy())
    acts = {name: np.concatenate(parts) for name, parts in pooled.items()}
    probs = torch.softmax(logits, 0)
    names = adapter.class_names or [str(i) for i in range(len(probs))]
    top = torch.topk(probs, min(5, len(probs)))
    top5 = [(int(i), str(names[int(i)]), float(p)) for p, i in zip(top.values, top.indices, strict=True)]
    predicted = int(torch.argmax(logits))

    refs = group_references(view)
    group_of = {g["id"]: g for g in view.groups}
    crop_scores: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    for ref in refs:
        a = acts[ref.layer]
        if ref.neurons.max(initial=-1) >= a.shape[1]:
            raise UserError(f"group {ref.gid} names neuron {int(ref.neurons.max())} but layer {ref.layer} "
                            f"has {a.shape[1]} channels; the circuit belongs to another model")
        lb = log_barrier(a, ref, cfg.floor)
        crop_scores[ref.gid] = lb
        best = int(np.argmax(lb))
        score = float(np.exp(lb[best]))
        g = group_of[ref.gid]
        labels = ", ".join(lab["concept"] for lab in g.get("labels", [])[:3])
        rows.append({"gid": ref.gid, "depth": ref.depth, "layer": ref.layer, "index": ref.index,
                     "neurons": len(ref.neurons), "score": score, "log_score": float(lb[best]), "crop": best,
                     "granularity": float(plan.granularity[best]), "top": int(plan.top[best]),
                     "left": int(plan.left[best]), "size": int(plan.size[best]),
                     "fires": bool(score >= cfg.threshold), "influence": g.get("influence"),
                     "labels": labels})
    scores = pd.DataFrame(rows).sort_values(["score", "depth", "gid"], ascending=[False, False, True])
    scores = scores.reset_index(drop=True)
    path = strongest_path(view, {r["gid"]: r["score"] for r in rows})
    crops = pd.DataFrame({"crop": np.arange(len(plan)), "granularity": plan.granularity, "top": plan.top,
                          "left": plan.left, "size": plan.size})
    pre = adapter.preprocess
    result = DebugResult(
        source=source, image_key=image_key(raw), predicted=predicted, predicted_name=str(names[predicted]),
        top5=top5, target=int(view.class_node.get("index", -1)), target_name=str(view.class_node.get("name")),
        scores=scores, crop_scores=crop_scores, crops=crops, path=path, view=view, config=cfg,
        image_png=thumbnail_png(images, plan, 0, pre.mean, pre.std, size=min(size, 320)))
    shown = {c for gid in scores.loc[scores["fires"], "gid"] for c in result.firing_crops(gid)}
    shown |= set(int(c) for c in scores["crop"])
    result.crop_pngs = {c: thumbnail_png(images, plan, c, pre.mean, pre.std, size=64) for c in sorted(shown)}
    return result


def activation_rows(result: DebugResult, uri: str | None = None, label: int = -1) -> tuple[dict[str, Any],
                                                                                           pd.DataFrame]:
    """The Image node (key, uri, label, predicted) and its ACTIVATES rows (src, dst, score, crop) for every
    firing group of a debug result whose circuit came from a store (group ids are NeuronGroup keys)."""
    image = {"key": result.image_key, "uri": uri or result.source, "label": int(label),
             "predicted": int(result.predicted)}
    firing = result.firing()
    rels = pd.DataFrame({"src": result.image_key, "dst": firing["gid"].astype(str),
                         "score": firing["score"].astype(float), "crop": firing["crop"].astype("int64")})
    return image, rels


def save_result(store: Any, result: DebugResult, label: int = -1) -> int:
    """Write (:Image)-[:ACTIVATES {score, crop}]->(:NeuronGroup) for the firing groups (replacing what an
    earlier debugging of the same image wrote for this run); returns the number of relationships."""
    if result.view.meta.get("source") != "store":
        raise UserError("only a circuit read from the knowledge base can be saved to it; debug without "
                        "--artifact")
    uri = str(Path(result.source).resolve()) if Path(result.source).is_file() else result.source
    image, rels = activation_rows(result, uri, label)
    store.write_activations(image, rels, run=str(result.view.meta["run"]))
    return len(rels)


__all__ = ["load_image", "DebugConfig", "DebugResult", "GroupReference", "debug_image", "group_references",
           "log_barrier", "strongest_path", "image_key", "activation_rows", "save_result"]
