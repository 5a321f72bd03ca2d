"""`NeurFlow`: the class circuit of a vision model, from the class down through the layer chain.

Per layer transition (NEURFLOW.md sections 4-5, corrected as section 11 says): exemplars (top-k crops of
each node), batched Integrated Gradients from the lower layer, core concept neurons (top-tau mean |IG|),
optional error-range pruning, sub-concepts (Ward + silhouette), L1-normalised signed edge weights and
concept vectors; then neuron groups per layer, group-to-group weights and each group's influence on
the class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..artifact import Circuit
from ..config import NeurFlowConfig
from ..data import (
    CropPlan,
    ImageSet,
    filter_by_class,
    iter_batches,
    load_images,
    plan_crops,
    select_images,
    thumbnail_png,
)
from ..errors import UserError
from ..models import ModelAdapter, as_adapter
from .certify import (
    Attribution,
    Certification,
    certify_transition,
    importance_of,
    refine,
    uncertain_selection,
)
from .clustering import Clustering, ward_silhouette
from .groups import build_groups
from .ig import fast_steps, integrated_gradients, per_neuron_integrated_gradients, tf32
from .types import LayerResult

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (the official code seeds nothing, bug B12)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, ties broken by the lower index (deterministic top-k)."""
    return np.argsort(-values, kind="stable")[:k]


@contextlib.contextmanager
def _memory_format(module: torch.nn.Module, channels_last: bool) -> Iterator[None]:
    """The model's 4-D weights in channels-last (NHWC) layout for one fit, as they were afterwards."""
    if not channels_last:
        yield
        return
    kernels = [p for p in module.parameters() if p.dim() == 4]
    was_nhwc = bool(kernels) and all(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in kernels)
    module.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if not was_nhwc:
            module.to(memory_format=torch.contiguous_format)


#: The packages whose versions a circuit's manifest records.
ENGINE_PACKAGES = ("neurflow-kb", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pandas")


def package_versions(packages: Sequence[str] = ENGINE_PACKAGES, missing: str = "unknown") -> dict[str, str]:
    """Installed version of each package (`missing` for one that is not installed), for provenance."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = missing
    return out


def _fits_on_device(first: torch.Tensor, n_rows: int) -> bool:
    """Whether `n_rows` maps shaped like `first`'s rows fit in half the free memory of its device."""
    if first.device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(first.device)
    return first[:1].nbytes * n_rows < free // 2


class NeurFlow:
    """NeurFlow circuit extraction, scikit-learn style: configure in `__init__`, compute in `fit`.

    ``NeurFlow(NeurFlowConfig(tau=8)).fit("resnet50", "images/", 309)`` returns a `Circuit`; the fitted
    attributes ``circuit_``, ``adapter_``, ``images_`` and ``layer_results_`` (per transition, with the
    full importance vectors and, when certified, their error bounds) stay on the object.
    """

    def __init__(self, config: NeurFlowConfig | None = None, **overrides: Any) -> None:
        config = config or NeurFlowConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config

    # -- public ---------------------------------------------------------------------------------
    def fit(
        self,
        model: ModelAdapter | torch.nn.Module | str,
        images: Any,
        target_class: int,
        *,
        layers: list[str] | None = None,
        progress: bool = True,
    ) -> Circuit:
        """Compute the circuit of `target_class`.

        `model`: an adapter, a registry name or an ``nn.Module`` (then `layers` or ``config.layers``
        names its chain, bottom to top, ending with the class-logit layer). `images`: a normalised float
        tensor [N,3,H,W], a folder, a file list or an `ImageSet`.
        """
        # PyTorch lets cuDNN convolutions use TF32 by default, so exact float32 switches it off explicitly
        # for the fit (and restores the caller's flags afterwards).
        with tf32(self.config.allow_tf32), contextlib.ExitStack() as scope:
            return self._fit(model, images, target_class, layers, progress, scope)

    def _fit(self, model: ModelAdapter | torch.nn.Module | str, images: Any, target_class: int,
             layers: list[str] | None, progress: bool, scope: contextlib.ExitStack) -> Circuit:
        cfg = self.config
        seed_everything(cfg.seed)
        started = time.perf_counter()
        adapter = as_adapter(model, layers or cfg.layers).to(cfg.device)
        chain = list(adapter.layers)
        target = int(target_class)
        if not 0 <= target < adapter.num_classes:
            raise UserError(f"class {target} is out of range for {adapter.name} ({adapter.num_classes} "
                            f"classes: 0..{adapter.num_classes - 1})")
        self.check(adapter)

        if isinstance(images, ImageSet | torch.Tensor):
            imageset = load_images(images, adapter.preprocess)
        else:  # files: one streamed prediction pass, then only the class's images are decoded
            imageset = select_images(images, adapter, target, cfg.class_filter, seed=cfg.seed,
                                     batch_size=cfg.batch_size, device=cfg.device, progress=progress)
        if imageset.selection != (target, cfg.class_filter):
            imageset = filter_by_class(imageset, adapter, target, cfg.class_filter,
                                       batch_size=cfg.batch_size, device=cfg.device)
        image_size = int(imageset.images.shape[-1])
        plan = plan_crops(len(imageset), image_size, cfg.granularities, cfg.stride_ratio)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        pooled = self._pooled_activations(adapter, imageset, plan, chain, progress)
        timings["activations"] = time.perf_counter() - t0

        n_crops = len(plan)
        k = min(cfg.top_k, n_crops)
        top = len(chain) - 1
        frontier = [target]
        results: dict[int, LayerResult] = {}
        bar = tqdm(range(top, 0, -1), desc="circuit", unit="layer", disable=not progress)
        for depth in bar:
            bar.set_postfix_str(f"{chain[depth]} ({len(frontier)} nodes)")
            t0 = time.perf_counter()
            with tqdm(total=len(frontier), desc=f"  {chain[depth]}", unit="node", leave=False,
                      disable=not progress) as nodes_bar:
                def on_nodes(done: int, b: Any = nodes_bar) -> None:
                    b.update(done - b.n)

                res = self._transition(adapter, imageset, plan, pooled, chain, depth, frontier, k,
                                       on_nodes=on_nodes)
            res.seconds = time.perf_counter() - t0
            timings[chain[depth]] = res.seconds
            timings[f"ig:{chain[depth]}"] = res.ig_seconds
            results[depth] = res
            frontier = self._next_frontier(res)
        bar.close()

        t0 = time.perf_counter()
        groups, group_edges, node_groups = build_groups(results, k, max_groups=cfg.max_groups)
        timings["groups"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        circuit = self._assemble(adapter, imageset, plan, pooled, chain, results, groups, group_edges,
                                 node_groups, target, k, timings)
        self.circuit_ = circuit
        self.adapter_ = adapter
        self.images_ = imageset
        self.layer_results_ = results
        return circuit

    # -- steps ----------------------------------------------------------------------------------
    def _pooled_activations(self, adapter: ModelAdapter, imageset: ImageSet, plan: CropPlan,
                            chain: list[str], progress: bool) -> dict[str, np.ndarray]:
        """One hooked forward per crop batch; pooled activations [crops, C] of every chain layer."""
        cfg = self.config
        parts: dict[str, list[np.ndarray]] = {name: [] for name in chain}
        total = (len(plan) + cfg.batch_size - 1) // cfg.batch_size
        with torch.no_grad():
            for _, batch in tqdm(iter_batches(imageset.images, plan, cfg.batch_size), total=total,
                                 desc="activations", unit="batch", disable=not progress):
                outs = adapter.activations(batch.to(cfg.device), chain)
                for name in chain:
                    parts[name].append(adapter.pool(name, outs[name]).float().cpu().numpy())
        return {name: np.concatenate(p) for name, p in parts.items()}

    def _lower_maps(self, adapter: ModelAdapter, imageset: ImageSet, plan: CropPlan, lower: str,
                    crops: np.ndarray) -> torch.Tensor:
        """Full lower-layer maps, for the exemplar crops only.

        They stay on the accelerator when they take under half its free memory (IG gathers rows from
        them for every batch); otherwise, and on the CPU, they live in host memory (pinned when they feed
        a CUDA device, so batches copy asynchronously).
        """
        cfg = self.config
        keep_on = cfg.device
        maps = []
        with torch.no_grad():
            for _, batch in iter_batches(imageset.images, plan, cfg.batch_size, indices=crops):
                maps.append(adapter.activations(batch.to(cfg.device), [lower])[lower].float())
                if len(maps) == 1 and not _fits_on_device(maps[0], len(crops)):
                    keep_on = "cpu"
                maps[-1] = maps[-1].to(keep_on)
        out = torch.cat(maps)
        if keep_on == "cpu" and torch.device(cfg.device).type == "cuda":
            out = out.pin_memory()
        return out

    def _attribute(self, adapter: ModelAdapter, lower: str, upper: str, inputs: torch.Tensor,
                   rows: torch.Tensor, targets: torch.Tensor, k: int,
                   on_nodes: Callable[[int], None] | None = None) -> tuple[Attribution, Any]:
        """Attributions of every node (k rows each, node-major) and the exact evaluator of a node subset.

        Certified: cheap IG for all nodes, exact IG for the probe and every node whose core set is not
        certain (`engine.certify`). Otherwise one evaluation with the configured precision and steps.
        `on_nodes` hears how many nodes' worth of rows the pass over every node has finished (progress).
        """
        cfg = self.config
        n_nodes = int(rows.numel()) // k
        on_rows = None if on_nodes is None else (lambda done: on_nodes(done // k))
        ig = per_neuron_integrated_gradients if cfg.strategy == "per_neuron" else integrated_gradients
        common: dict[str, Any] = dict(batch_size=cfg.ig_batch_size, device=cfg.device,
                                      share_forward=cfg.share_forward, channels_last=cfg.channels_last)

        def node_rows(nodes: np.ndarray) -> torch.Tensor:
            return torch.as_tensor((np.asarray(nodes)[:, None] * k + np.arange(k)).ravel(), dtype=torch.long)

        def exact(nodes: np.ndarray, progress: Callable[[int], None] | None = None) -> Any:
            idx = node_rows(nodes)
            return ig(adapter, lower, upper, inputs, rows[idx], targets[idx], steps=cfg.ig_steps,
                      dtype="float32", allow_tf32=False, progress=progress, **common)

        steps, whole = cfg.ig_steps, None
        all_probed = cfg.certify and n_nodes <= cfg.certify_min_probe    # certified by computing all exactly
        if cfg.strategy == "fast" and not all_probed:
            candidates = tuple(s for s in cfg.fast_steps if s <= cfg.ig_steps) or (cfg.ig_steps,)
            steps, probed, probe = fast_steps(adapter, lower, upper, inputs, rows, targets,
                                              candidate_steps=candidates, tolerance=cfg.fast_tolerance,
                                              dtype=cfg.dtype, **common)
            whole = probed if len(probe) == int(rows.numel()) else None   # the probe already is every row
        approximate = cfg.dtype != "float32" or cfg.allow_tf32 or steps != cfg.ig_steps

        def cheap(nodes: np.ndarray, with_scale: bool = False,
                  progress: Callable[[int], None] | None = None) -> Any:
            idx = node_rows(nodes)
            return ig(adapter, lower, upper, inputs, rows[idx], targets[idx], steps=steps, dtype=cfg.dtype,
                      with_scale=with_scale, progress=progress, **common)

        everything = np.arange(n_nodes)
        if not approximate:
            t0 = time.perf_counter()
            res = exact(everything, on_rows)
            report = Certification("none (exact)", n_nodes, 0, 0, 0.0, 0.0,
                                   exact_seconds=time.perf_counter() - t0) if cfg.certify else None
            return Attribution(res, res.attributions.double().numpy().reshape(n_nodes, k, -1),
                               np.ones(n_nodes, dtype=bool), np.zeros((n_nodes, res.attributions.shape[1])),
                               report=report, steps=res.steps), exact
        if not cfg.certify:
            res = whole if whole is not None else cheap(everything, progress=on_rows)
            return Attribution(res, res.attributions.double().numpy().reshape(n_nodes, k, -1),
                               np.zeros(n_nodes, dtype=bool), steps=res.steps), exact
        precision = cfg.dtype + (" + TF32" if cfg.allow_tf32 and cfg.dtype == "float32" else "")
        return certify_transition(
            lambda nodes: cheap(nodes, with_scale=True, progress=on_rows if len(nodes) == n_nodes else None),
            exact, n_nodes, k, cfg.tau,
            approximation=f"{precision}, {steps} steps", safety=cfg.certify_safety,
            probe_fraction=cfg.certify_probe, min_probe=cfg.certify_min_probe,
            ordered=cfg.certify_order or cfg.error_range is not None), exact

    def _cores(self, adapter: ModelAdapter, imageset: ImageSet, plan: CropPlan, lower: str, upper: str,
               neurons: list[int], exemplars: dict[int, np.ndarray], importances: np.ndarray,
               nodes: Any) -> dict[int, np.ndarray]:
        """Core concept neurons (top-tau importance, then error-range pruning if set) of the given nodes."""
        cfg = self.config
        cores = {}
        for i in nodes:
            core = top_indices(importances[i], cfg.tau)
            if cfg.error_range is not None:
                core = self._prune(adapter, imageset, plan, lower, upper, neurons[i], core,
                                   exemplars[neurons[i]])
            cores[int(i)] = core
        return cores

    def _certain_frontier(self, attribution: Attribution, exact: Any, cores: dict[int, np.ndarray],
                          k: int) -> list[int]:
        """With a node cap, recompute exactly the nodes behind every candidate whose place in the capped
        frontier the remaining error bounds leave open (the frontier is then that of exact IG). Returns the
        nodes recomputed."""
        cap = self.config.max_nodes_per_layer
        refined: list[int] = []
        if attribution.bound is None or not cap:
            return refined
        while True:
            values = importance_of(attribution.attributions)
            totals: dict[int, float] = {}
            bounds: dict[int, float] = {}
            contributors: dict[int, list[int]] = {}
            for i, core in cores.items():
                for m in core.tolist():
                    totals[m] = totals.get(m, 0.0) + float(values[i, m])
                    bounds[m] = bounds.get(m, 0.0) + float(attribution.bound[i, m])
                    contributors.setdefault(m, []).append(i)
            open_ = uncertain_selection(totals, bounds, cap)
            todo = sorted({i for m in open_ for i in contributors[m] if not attribution.exact[i]})
            if not todo:
                return refined
            refine(attribution, exact, np.asarray(todo), k)
            refined += todo

    def _transition(self, adapter: ModelAdapter, imageset: ImageSet, plan: CropPlan,
                    pooled: dict[str, np.ndarray], chain: list[str], depth: int, neurons: list[int],
                    k: int, on_nodes: Callable[[int], None] | None = None) -> LayerResult:
        upper, lower = chain[depth], chain[depth - 1]
        act_up, act_low = pooled[upper], pooled[lower]
        exemplars = {n: top_indices(act_up[:, n], k) for n in neurons}
        union = np.unique(np.concatenate(list(exemplars.values())))
        position = {int(c): i for i, c in enumerate(union)}
        rows = torch.tensor([position[int(c)] for n in neurons for c in exemplars[n]], dtype=torch.long)
        targets = torch.tensor([n for n in neurons for _ in range(k)], dtype=torch.long)
        # Sub-concepts need only pooled activations, so they are clustered while IG runs.
        with ThreadPoolExecutor(max_workers=1) as pool:
            clustering = pool.submit(self._subconcepts, act_low, exemplars)
            t0 = time.perf_counter()
            inputs = self._lower_maps(adapter, imageset, plan, lower, union)
            attribution, exact = self._attribute(adapter, lower, upper, inputs, rows, targets, k, on_nodes)
            importances = importance_of(attribution.attributions)     # I_n(m) = mean_x |IG_m(x; n)|
            cores = self._cores(adapter, imageset, plan, lower, upper, neurons, exemplars, importances,
                                range(len(neurons)))
            refined = self._certain_frontier(attribution, exact, cores, k)
            if refined:   # exact values now; their core sets are unchanged wherever the bound held
                importances = importance_of(attribution.attributions)
                cores.update(self._cores(adapter, imageset, plan, lower, upper, neurons, exemplars,
                                         importances, refined))
            ig_seconds = time.perf_counter() - t0
            del inputs, exact
            subconcepts = clustering.result()
        attributions = attribution.attributions

        res = LayerResult(depth=depth, upper=upper, lower=lower, neurons=list(neurons), exemplars=exemplars,
                          importance={}, core={}, subconcepts={}, ig_steps=attribution.steps,
                          completeness_error=attribution.result.completeness_error(), ig_seconds=ig_seconds,
                          certification=attribution.report)
        log.debug("transition %s -> %s: %d nodes, IG %d steps in %.2f s", lower, upper, len(neurons),
                  attribution.steps, ig_seconds)
        for i, n in enumerate(neurons):
            attr = attributions[i]                       # [k, C_lower]
            importance = importances[i]
            res.exact[n] = bool(attribution.exact[i])
            if attribution.bound is not None:
                res.bound[n] = attribution.bound[i]
            if attribution.approx_importance is not None and attribution.approx_bound is not None:
                res.approx_importance[n] = attribution.approx_importance[i]
                res.approx_bound[n] = attribution.approx_bound[i]
            core = cores[i]
            res.importance[n], res.core[n] = importance, core
            feats = act_low[exemplars[n]].astype(np.float64)   # pooled lower activations u_x
            clusters = subconcepts[n]
            res.subconcepts[n] = clusters.labels
            for s in range(clusters.k):
                members = np.flatnonzero(clusters.labels == s)
                raw = attr[members][:, core].mean(0)         # signed mean IG per core neuron
                norm = np.abs(raw).sum()
                weight = raw / norm if norm > 0 else np.zeros_like(raw)
                res.nodes.append({
                    "depth": depth, "layer": upper, "neuron": int(n), "subconcept": s,
                    "size": len(members), "activation": float(act_up[exemplars[n][members], n].mean()),
                    "concept_vector": feats[members].mean(0).astype(np.float32).tolist(),
                })
                for m, w, r in zip(core, weight, raw, strict=True):
                    res.edges.append({"depth": depth, "layer": upper, "neuron": int(n), "subconcept": s,
                                      "lower_layer": lower, "lower_neuron": int(m), "weight": float(w),
                                      "raw": float(r)})
                res.representatives[(int(n), s)] = self._representatives(
                    feats[members][:, core], exemplars[n][members], act_up[exemplars[n][members], n])
        return res

    def _subconcepts(self, act_low: np.ndarray, exemplars: dict[int, np.ndarray]) -> dict[int, Clustering]:
        """Ward + silhouette sub-concepts of every node, over its exemplars' pooled lower activations."""
        cfg = self.config
        return {n: ward_silhouette(act_low[crops].astype(np.float64), cfg.max_subconcepts,
                                   min_silhouette=cfg.subconcept_min_silhouette)
                for n, crops in exemplars.items()}

    def _representatives(self, core_feats: np.ndarray, crops: np.ndarray, acts: np.ndarray) -> list[int]:
        """The members closest to the sub-concept centroid in the core subspace, by decreasing activation."""
        dist = np.linalg.norm(core_feats - core_feats.mean(0), axis=1)
        nearest = np.argsort(dist, kind="stable")[: self.config.num_representatives]
        order = nearest[np.argsort(-acts[nearest], kind="stable")]
        return [int(c) for c in crops[order]]

    def _prune(self, adapter: ModelAdapter, imageset: ImageSet, plan: CropPlan, lower: str, upper: str,
               neuron: int, core: np.ndarray, exemplars: np.ndarray) -> np.ndarray:
        """Error-range pruning (NEURFLOW.md step 5): shortest core prefix whose masking comes within
        `error_range` of the largest disruption of the exemplar set."""
        cfg = self.config
        k = len(exemplars)
        scores = np.zeros((len(core), len(plan)), dtype=np.float32)
        with torch.no_grad():
            for idx, batch in iter_batches(imageset.images, plan, cfg.batch_size):
                x = adapter.activations(batch.to(cfg.device), [lower])[lower]
                for i in range(len(core)):
                    masked = x.clone()
                    index = torch.as_tensor(core[: i + 1].copy(), device=masked.device)
                    masked.index_fill_(adapter.channel_dim(masked), index, 0.0)
                    out = adapter.pool(upper, adapter.run_from(lower, masked, upper))[:, neuron]
                    scores[i, idx] = out.float().cpu().numpy()
        reference = set(int(e) for e in exemplars)
        acc = np.array([len(reference & set(top_indices(s, k).tolist())) / k for s in scores])
        threshold = acc.min() + cfg.error_range
        below = np.flatnonzero(acc < threshold)
        keep = int(below[0]) + 1 if len(below) else len(core)
        return core[:keep]

    def _next_frontier(self, res: LayerResult) -> list[int]:
        """Union of the core sets in neuron order; with a cap, the top nodes by aggregated importance (then
        index). The order is the neuron index, not the importance, so that circuits whose node sets agree
        (certified reduced precision and exact float32) also agree in node order and group numbering."""
        total: dict[int, float] = {}
        for n in res.neurons:
            for m in res.core[n]:
                total[int(m)] = total.get(int(m), 0.0) + float(res.importance[n][m])
        cap = self.config.max_nodes_per_layer
        chosen = sorted(total, key=lambda m: (-total[m], m))[:cap] if cap else total
        return sorted(chosen)

    # -- artifact -------------------------------------------------------------------------------
    def check(self, adapter: ModelAdapter) -> None:
        """Refuse, in one line, settings no class of this model can be computed with (a chain of fewer
        than two layers, tau above a layer's channels); the ingest planner calls it before any work."""
        chain = list(adapter.layers)
        if len(chain) < 2:
            raise UserError("the layer chain needs at least two layers (a lower layer and the class-logit "
                            "layer); pass more layers")
        for lower in chain[:-1]:
            channels = adapter.channels(lower)
            if self.config.tau > channels:
                raise UserError(f"tau {self.config.tau} exceeds the {channels} channels of layer {lower!r}; "
                                "lower --tau or start the chain at a wider layer")

    def identity(self, adapter: ModelAdapter, target: int, data_fingerprint: str) -> dict[str, Any]:
        """The manifest fields that make a circuit's run key (`neurflow_kb.artifact.circuit_key`): what
        `fit` would record for this adapter, class and data, known before any work."""
        chain = list(adapter.layers)
        return {"model": adapter.name, "weights": adapter.weights, "target_class": int(target),
                "layers": chain, "preprocess": adapter.preprocess.to_dict(),
                "config": dict(self.config.to_dict(), layers=chain), "data_fingerprint": data_fingerprint}

    def _assemble(self, adapter: ModelAdapter, imageset: ImageSet, plan: CropPlan,
                  pooled: dict[str, np.ndarray], chain: list[str], results: dict[int, LayerResult],
                  groups: pd.DataFrame, group_edges: pd.DataFrame,
                  node_groups: dict[tuple[int, int, int], int],
                  target: int, k: int, timings: dict[str, float]) -> Circuit:
        cfg = self.config
        ordered = [results[d] for d in sorted(results, reverse=True)]
        nodes = pd.DataFrame([dict(row, group=node_groups[(row["depth"], row["neuron"], row["subconcept"])])
                              for r in ordered for row in r.nodes])
        edges = pd.DataFrame([row for r in ordered for row in r.edges])
        core_rows, exemplar_rows, thumbs = [], [], set()
        for r in ordered:
            act_up = pooled[r.upper]
            for n in r.neurons:
                for rank, m in enumerate(r.core[n]):
                    core_rows.append({"depth": r.depth, "layer": r.upper, "neuron": n, "lower_neuron": int(m),
                                      "rank": rank, "importance": float(r.importance[n][m])})
                for rank, crop in enumerate(r.exemplars[n]):
                    s = int(r.subconcepts[n][rank])
                    rep = int(crop) in r.representatives[(n, s)]
                    if rep:
                        thumbs.add(int(crop))
                    exemplar_rows.append({
                        "depth": r.depth, "layer": r.upper, "neuron": n, "subconcept": s, "rank": rank,
                        "crop": int(crop), "image": int(plan.image[crop]),
                        "granularity": float(plan.granularity[crop]), "top": int(plan.top[crop]),
                        "left": int(plan.left[crop]), "size": int(plan.size[crop]),
                        "activation": float(act_up[crop, n]), "representative": rep})
        pre = adapter.preprocess
        thumbnails = pd.DataFrame({
            "crop": sorted(thumbs),
            "png": [thumbnail_png(imageset.images, plan, c, pre.mean, pre.std, size=cfg.thumbnail_size)
                    for c in sorted(thumbs)]})
        predicted = imageset.predicted if imageset.predicted is not None else torch.full(
            (len(imageset),), -1, dtype=torch.long)
        images = pd.DataFrame({"image": np.arange(len(imageset)), "source": list(imageset.sources),
                               "label": imageset.labels.numpy(), "predicted": predicted.numpy()})
        layers = pd.DataFrame({"depth": np.arange(len(chain)), "name": chain,
                               "channels": [int(pooled[name].shape[1]) for name in chain]})
        names = adapter.class_names
        manifest = {
            **self.identity(adapter, target, imageset.fingerprint()),
            "weights_source": adapter.weights_source, "arch": type(adapter.model).__name__,
            "num_classes": adapter.num_classes,
            "class_name": names[target] if names else str(target),
            "channels": {name: int(pooled[name].shape[1]) for name in chain}, "n_images": len(imageset),
            "n_crops": len(plan), "top_k_used": k, "seed": cfg.seed, "versions": package_versions(),
            "ig_steps": {r.upper: r.ig_steps for r in ordered},
            "completeness_error": {r.upper: round(r.completeness_error, 6) for r in ordered},
            "exact_nodes": {r.upper: sum(r.exact.values()) for r in ordered},
            "timings": {key: round(v, 4) for key, v in timings.items()},
        }
        if cfg.certify:
            manifest["certification"] = {r.upper: r.certification.to_dict() for r in ordered
                                         if r.certification is not None}
        tables = {"layers": layers, "nodes": nodes, "core": pd.DataFrame(core_rows), "edges": edges,
                  "groups": groups, "group_edges": group_edges, "exemplars": pd.DataFrame(exemplar_rows),
                  "images": images, "thumbnails": thumbnails}
        return Circuit(manifest=manifest, tables=tables)
