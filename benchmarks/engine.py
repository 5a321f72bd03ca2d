"""Engine benchmark: IG strategies, precisions and certified modes on the same input, in one run.

Prints one JSON line per configuration. Every variant of a configuration fits the same adapter, images
and class; the first variant is the reference (normally ``exact``: batched float32, 50 steps) and every
other one reports its time ratio against it and how its circuit compares: identical core sets on every
node (certified modes must give true), nodes computed exactly (probe + re-evaluated), whether the
certification's error bound held on every (node, neuron), and the largest importance and edge-weight
differences. Exemplar overlap per layer (rows per distinct exemplar: what a shared forward can save) is
reported too. Seconds are wall clock and process CPU time (the machine may be shared; CPU time counts
this process's threads only). Peak memory: each configuration runs in a fresh subprocess (ru_maxrss).

    python benchmarks/engine.py                      # the default suites
    python benchmarks/engine.py --suite certified    # world + EfficientNet-Lite0 (real weights) on the CPU
    python benchmarks/engine.py --model resnet50 --images 50 --transitions 1 --variants exact
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

# Config overrides of every variant; names are what --variants takes.
VARIANTS: dict[str, dict] = {
    "exact": {},
    "exact_rowwise": {"share_forward": False},
    "exact_channels_last": {"channels_last": True},
    "per_neuron": {"strategy": "per_neuron"},
    "tf32": {"allow_tf32": True},
    "bf16": {"dtype": "bfloat16"},
    "fp16": {"dtype": "float16"},
    "fast": {"strategy": "fast"},
    "cert_tf32": {"allow_tf32": True, "certify": True},
    "cert_bf16": {"dtype": "bfloat16", "certify": True},
    "cert_fp16": {"dtype": "float16", "certify": True},
    "cert_fast": {"strategy": "fast", "certify": True},
    "cert_fast_fp16": {"strategy": "fast", "dtype": "float16", "certify": True},
}


def _photos(n: int, size: int, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    """n real photos (scikit-image's bundled colour images, flipped/rotated to reach n), normalised."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    names = ["astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "colorwheel",
             "retina", "hubble_deep_field", "motorcycle_left", "skin", "logo"]
    base = []
    for name in names:
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - some images need optional data downloads
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            t = torch.tensor(np.ascontiguousarray(img[..., :3]), dtype=torch.float32).permute(2, 0, 1) / 255
            base.append(F.interpolate(t[None], size=(size, size), mode="bilinear", align_corners=False)[0])
    out = []
    i = 0
    while len(out) < n:
        t = base[i % len(base)]
        variant = i // len(base)
        t = torch.flip(t, dims=[2]) if variant % 2 else t
        out.append(torch.rot90(t, k=variant // 2, dims=(1, 2)))
        i += 1
    x = torch.stack(out)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _inputs(args: argparse.Namespace):
    """The adapter (top `transitions` transitions of its chain) and the images."""
    from neurflow_kb.models import get_adapter

    weights = args.weights or ("default" if args.model in ("world", "efficientnet_lite0") else "random")
    adapter = get_adapter(args.model, weights=weights, seed=0, device=args.device)
    chain = list(adapter.layers)[-(args.transitions + 1):]
    adapter = adapter.with_layers(chain)
    if args.model == "world":
        from neurflow_kb.world import generate

        return adapter, generate(args.images, seed=0, classes=[args.cls]).tensor()
    pre = adapter.preprocess
    return adapter, _photos(args.images, args.size, pre.mean, pre.std)


def _cores(nf) -> dict[tuple[str, int], tuple[int, ...]]:
    return {(r.upper, n): tuple(int(m) for m in r.core[n]) for r in nf.layer_results_.values()
            for n in r.neurons}


def _probed(r) -> set[int]:
    """The probe nodes of a certified transition (evenly spaced, as `engine.certify.probe_nodes`)."""
    from neurflow_kb.engine.certify import probe_nodes

    if r.certification is None or r.certification.probe_nodes == 0:
        return set()
    count = r.certification.probe_nodes
    spread = probe_nodes(len(r.neurons), 0.0, count)
    return {r.neurons[i] for i in spread}


def compare(nf, reference) -> dict:
    """How a fitted NeurFlow's circuit compares with the reference fit (same adapter, images, class)."""
    mine, ref = _cores(nf), _cores(reference)
    common = sorted(set(mine) & set(ref))
    out = {
        "same_nodes": set(mine) == set(ref),
        "nodes_differing": sum(set(mine[key]) != set(ref[key]) for key in common),
        "nodes_order_differing": sum(mine[key] != ref[key] for key in common),
        "identical_core_sets": set(mine) == set(ref) and all(set(mine[k]) == set(ref[k]) for k in common),
    }
    rel, bound_checked, bound_violations, approx_flips, bound_use = 0.0, 0, 0, 0, 0.0
    by_upper = {r.upper: r for r in reference.layer_results_.values()}
    for r in nf.layer_results_.values():
        rr = by_upper[r.upper]
        probed = _probed(r)
        for n in r.neurons:
            if n not in rr.importance:
                continue
            exact = rr.importance[n]
            denom = np.abs(exact[rr.core[n]]).max()
            if denom > 0:
                rel = max(rel, float(np.abs(r.importance[n] - exact)[rr.core[n]].max() / denom))
            if n in r.approx_importance:          # certified: did the bound hold on every neuron?
                bound_checked += 1
                error = np.abs(r.approx_importance[n] - exact)
                bound_violations += int((error > r.approx_bound[n]).any())
                if n not in probed:             # the probe calibrated beta, so it is within by design
                    used = error / np.where(r.approx_bound[n] > 0, r.approx_bound[n], np.inf)
                    bound_use = max(bound_use, float(used.max()))
                approx = np.argsort(-r.approx_importance[n], kind="stable")[: len(rr.core[n])]
                approx_flips += int(set(approx.tolist()) != set(rr.core[n].tolist()))
    out["max_rel_core_importance_diff"] = rel
    keys = ["layer", "neuron", "subconcept", "lower_neuron"]
    edges = nf.circuit_.edges.merge(reference.circuit_.edges, on=keys, suffixes=("", "_ref"))
    out["max_abs_edge_weight_diff"] = float((edges["weight"] - edges["weight_ref"]).abs().max()) if len(
        edges) else 0.0
    cert = nf.circuit_.manifest.get("certification")
    if cert:
        out["nodes_bound_checked"] = bound_checked
        out["nodes_bound_violated"] = bound_violations
        out["max_bound_fraction_used"] = round(bound_use, 4)
        out["nodes_approximation_alone_differs"] = approx_flips
        out["exact_nodes"] = sum(nf.circuit_.manifest["exact_nodes"].values())   # all layers
        out["reevaluated"] = sum(v["reevaluated"] for v in cert.values())
        out["probe_nodes"] = sum(v["probe_nodes"] for v in cert.values())
        out["per_layer"] = {layer: {key: v[key] for key in ("approximation", "nodes", "probe_nodes",
                                                            "reevaluated", "beta")}
                            for layer, v in cert.items()}
    return out


def overlap(circuit) -> dict[str, dict[str, float]]:
    """Per transition: rows (node, exemplar), distinct exemplars and rows per exemplar."""
    out = {}
    for layer, ex in circuit.exemplars.groupby("layer", sort=False):
        rows, distinct = len(ex), ex["crop"].nunique()
        out[str(layer)] = {"rows": rows, "exemplars": int(distinct),
                           "rows_per_exemplar": round(rows / distinct, 3)}
    return out


def shared_forward_saving(nf, cfg, args: argparse.Namespace) -> dict:
    """IG of the lowest transition's rows (the largest), row-wise and with the shared forward, in CPU seconds
    (fastest of two interleaved repeats) or, on a GPU, wall seconds (one run each)."""
    import torch

    from neurflow_kb.data import materialize
    from neurflow_kb.engine.ig import integrated_gradients

    r = nf.layer_results_[min(nf.layer_results_)]
    crops = np.concatenate([r.exemplars[n] for n in r.neurons])
    distinct, rows = np.unique(crops, return_inverse=True)
    targets = torch.tensor(np.repeat(r.neurons, len(r.exemplars[r.neurons[0]])))
    images, plan = nf.images_.images, _plan(nf, cfg)
    with torch.no_grad():
        maps = torch.cat([nf.adapter_.activations(materialize(images, plan, part).to(cfg.device), [r.lower])[
            r.lower] for part in np.array_split(distinct, max(1, len(distinct) // 64))])
    cuda = cfg.device.startswith("cuda")
    clock = time.perf_counter if cuda else time.process_time
    took: dict[bool, float] = {}
    results = {}
    for rep in range(1 if cuda else 2):
        for share in ((False, True) if rep == 0 else (True, False)):
            if cuda:
                torch.cuda.synchronize()
            t0 = clock()
            results[share] = integrated_gradients(
                nf.adapter_, r.lower, r.upper, maps, torch.as_tensor(rows), targets, steps=cfg.ig_steps,
                batch_size=args.ig_batch_size, device=cfg.device, share_forward=share)
            if cuda:
                torch.cuda.synchronize()
            took[share] = min(took.get(share, float("inf")), clock() - t0)
    return {"layer": r.upper, "rows": int(len(rows)), "exemplars": int(len(distinct)),
            "rows_per_exemplar": round(len(rows) / len(distinct), 3),
            "seconds_rowwise": round(took[False], 3), "seconds_shared": round(took[True], 3),
            "saving": round(1 - took[True] / took[False], 4), "clock": "wall" if cuda else "cpu",
            "bitwise_equal": bool(torch.equal(results[True].attributions, results[False].attributions))}


def _plan(nf, cfg):
    from neurflow_kb.data import plan_crops

    return plan_crops(len(nf.images_), int(nf.images_.images.shape[-1]), cfg.granularities, cfg.stride_ratio)


def run_one(args: argparse.Namespace) -> dict:
    """One configuration: every requested variant on the same adapter, images and class."""
    import torch

    from neurflow_kb import NeurFlow, NeurFlowConfig

    torch.set_num_threads(args.threads or torch.get_num_threads())
    adapter, x = _inputs(args)
    chain = list(adapter.layers)
    base = NeurFlowConfig(tau=args.tau, top_k=args.top_k, ig_steps=args.ig_steps, class_filter="all",
                          max_nodes_per_layer=args.max_nodes, device=args.device,
                          batch_size=args.batch_size, ig_batch_size=args.ig_batch_size)
    cuda = args.device.startswith("cuda")
    # Warm-up outside the timings: CUDA context, cuDNN handles, kernels, oneDNN primitives, first-call costs.
    for v in args.variants.split(","):
        NeurFlow(base, tau=min(args.tau, 4), top_k=4, ig_steps=4, **VARIANTS[v]).fit(
            adapter.with_layers(chain[-2:]), x[:2], args.cls, progress=False)
    variants = args.variants.split(",")
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    fitted = {}
    gpu_peak = {}
    for rep in range(args.repeats):   # interleaved, order reversed every repeat; the minimum counts
        for v in variants if rep % 2 == 0 else variants[::-1]:
            cfg = dataclasses.replace(base, **VARIANTS[v])
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0, c0 = time.perf_counter(), time.process_time()
            nf = NeurFlow(cfg)
            nf.fit(adapter, x, args.cls, progress=args.progress)
            if cuda:
                torch.cuda.synchronize()
            took, cpu = round(time.perf_counter() - t0, 3), round(time.process_time() - c0, 3)
            seconds[v] = min(seconds.get(v, took), took)
            cpu_seconds[v] = min(cpu_seconds.get(v, cpu), cpu)
            fitted[v] = nf
            if cuda:
                gpu_peak[v] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if args.partial and rep == 0:   # a line per finished variant survives a time limit
                line = {"benchmark": "engine", "partial": True, "model": args.model, "variant": v,
                        "transitions": args.transitions, "seconds": took, "cpu_seconds": cpu,
                        "nodes": int(nf.circuit_.core.groupby(["layer", "neuron"]).ngroups)}
                if v != variants[0] and variants[0] in fitted:
                    line["agreement"] = compare(nf, fitted[variants[0]])
                    line["speedup_vs_reference"] = round(seconds[variants[0]] / took, 3)
                print(json.dumps(line), flush=True)
    ref_name = variants[0]
    reference = fitted[ref_name]
    first = reference.circuit_
    result = {
        "benchmark": "engine", "model": args.model, "weights": adapter.weights, "images": args.images,
        "size": int(x.shape[-1]), "crops": first.manifest["n_crops"], "class": args.cls, "tau": args.tau,
        "top_k": args.top_k, "ig_steps": args.ig_steps, "transitions": args.transitions,
        "max_nodes": args.max_nodes, "device": args.device,
        "card": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
        "threads": torch.get_num_threads(), "repeats": args.repeats, "ig_batch_size": args.ig_batch_size,
        "reference": ref_name, "seconds": seconds, "cpu_seconds": cpu_seconds,
        "speedup_vs_reference": {v: round(seconds[ref_name] / seconds[v], 3) for v in variants},
        "cpu_speedup_vs_reference": {v: round(cpu_seconds[ref_name] / cpu_seconds[v], 3) for v in variants},
        "load_average": round(os.getloadavg()[0], 2),
        "nodes_per_layer": {str(k): int(v) for k, v in
                            first.core.groupby("layer", sort=False)["neuron"].nunique().items()},
        "exemplar_overlap": overlap(first),
        "ig_seconds": {v: {k: t for k, t in nf.circuit_.manifest["timings"].items() if k.startswith("ig:")}
                       for v, nf in fitted.items()},
        "ig_steps_used": {v: nf.circuit_.manifest["ig_steps"] for v, nf in fitted.items()},
    }
    result["agreement"] = {v: compare(fitted[v], reference) for v in variants[1:]}
    if "exact_rowwise" in fitted and "exact" in fitted:
        result["shared_forward"] = shared_forward_saving(fitted["exact"], base, args)
    if cuda:
        result["gpu_peak_mb"] = gpu_peak
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


CERTIFIED = [
    # World classifier (shipped weights), three transitions: exact float32 vs certified bf16/fast.
    ["--model", "world", "--images", "8", "--class", "0", "--tau", "6", "--top-k", "16", "--transitions", "3",
     "--variants", "exact,exact_rowwise,cert_bf16,cert_fp16,cert_fast,bf16,fast", "--threads", "1"],
    # EfficientNet-Lite0 (real ImageNet weights), three transitions at 112 px.
    ["--model", "efficientnet_lite0", "--images", "4", "--size", "112", "--class", "2", "--tau", "8",
     "--top-k", "8", "--transitions", "3", "--max-nodes", "10",
     "--variants", "exact,exact_rowwise,cert_bf16,cert_fp16,cert_fast,bf16,fast", "--threads", "1"],
    # Exemplar overlap and the shared forward on random weights (same model and data).
    ["--model", "efficientnet_lite0", "--weights", "random", "--images", "4", "--size", "112", "--class", "2",
     "--tau", "8", "--top-k", "8", "--transitions", "3", "--max-nodes", "10",
     "--variants", "exact,exact_rowwise", "--threads", "1"],
]
SPEED = [
    # Speed: per-neuron vs batched (shared forward) vs fast.
    ["--model", "resnet18", "--images", "8", "--size", "64", "--tau", "8", "--top-k", "16",
     "--transitions", "3", "--max-nodes", "8", "--variants", "per_neuron,exact,fast", "--repeats", "2"],
    # Memory: ResNet-50, 50 images (2,950 crops), the top transition; maps are kept for exemplars only.
    ["--model", "resnet50", "--images", "50", "--size", "224", "--tau", "16", "--top-k", "50",
     "--transitions", "1", "--variants", "exact"],
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--weights", default=None, help="default: real weights for world/efficientnet_lite0, "
                   "random otherwise")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--tau", type=int, default=8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--ig-steps", type=int, default=50)
    p.add_argument("--transitions", type=int, default=3)
    p.add_argument("--max-nodes", type=int, default=None)
    p.add_argument("--variants", default="exact,cert_bf16,cert_fast",
                   help=f"Comma list, the first is the reference; from {', '.join(VARIANTS)}.")
    p.add_argument("--class", dest="cls", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64, help="Crops per activation forward.")
    p.add_argument("--ig-batch-size", type=int, default=256)
    p.add_argument("--progress", action="store_true", help="Progress bars on stderr.")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="Interleaved repeats; the fastest counts.")
    p.add_argument("--suite", choices=["all", "certified", "speed"], default="all")
    p.add_argument("--partial", action="store_true", help="Also print a line after every variant.")
    args = p.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if args.model:
        print(json.dumps(run_one(args)), flush=True)
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    suite = {"all": CERTIFIED + SPEED, "certified": CERTIFIED, "speed": SPEED}[args.suite]
    for extra in suite:   # a fresh process per configuration so peak memory is its own
        subprocess.run([sys.executable, __file__, *extra], check=True, env=env)


if __name__ == "__main__":
    main()
