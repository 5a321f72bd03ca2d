"""Engine benchmark: batched vs per-neuron vs fast Integrated Gradients on the same input, in one run.

Prints one JSON line per configuration: seconds per strategy, ratios against the per-neuron baseline,
max importance difference, core-set agreement and Spearman rank correlation of the fast mode, nodes per
layer, and peak memory (RSS high-water mark of this process and torch's CPU allocations are not
separable, so each configuration runs in a fresh subprocess and reports its own ru_maxrss).

    python benchmarks/engine.py                      # the default suite (resnet18 speed, resnet50 memory)
    python benchmarks/engine.py --model resnet50 --images 50 --transitions 1 --strategies batched
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


def _photos(n: int, size: int):
    """n real photos (scikit-image's bundled colour images, flipped/rotated to reach n), preprocessed."""
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
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


PRECISIONS = {"fp32": ("float32", False), "tf32": ("float32", True), "bf16": ("bfloat16", False)}


def _per_node_seconds(circuit, chain: list[str]) -> dict[str, dict[str, float]]:
    """Seconds, nodes and seconds per node of every transition, keyed by its upper layer."""
    nodes = circuit.core.groupby("layer", sort=False)["neuron"].nunique()
    out = {}
    for layer in reversed(chain[1:]):
        seconds = circuit.manifest["timings"][layer]
        ig = circuit.manifest["timings"].get(f"ig:{layer}", float("nan"))
        out[layer] = {"nodes": int(nodes[layer]), "seconds": round(seconds, 3), "ig_seconds": round(ig, 3),
                      "seconds_per_node": round(seconds / int(nodes[layer]), 5)}
    return out


def _agreement(circuit, reference) -> dict:
    """How a lower-precision circuit's importances and core sets compare with the float32 one, on the
    nodes both have (their frontiers can differ below the first changed core set)."""
    from scipy.stats import spearmanr

    keys = ["layer", "neuron"]
    mine = circuit.core.groupby(keys)["lower_neuron"].apply(frozenset)
    ref = reference.core.groupby(keys)["lower_neuron"].apply(frozenset)
    common = mine.index.intersection(ref.index)
    rows = circuit.core.merge(reference.core, on=[*keys, "lower_neuron"], suffixes=("", "_ref"))
    rel = (rows["importance"] - rows["importance_ref"]).abs() / rows["importance_ref"].abs().clip(lower=1e-30)
    return {"common_nodes": int(len(common)),
            "same_core_fraction": round(float((mine[common] == ref[common]).mean()), 4),
            "max_rel_importance_diff": float(rel.max()),
            "median_rel_importance_diff": float(rel.median()),
            "importance_spearman": round(float(
                spearmanr(rows["importance"], rows["importance_ref"]).statistic), 6)}


def run_one(args: argparse.Namespace) -> dict:
    """One configuration: every requested strategy (and precision) on the same adapter, images, class."""
    import torch
    from scipy.stats import spearmanr

    from neurflow_kb import NeurFlow, NeurFlowConfig
    from neurflow_kb.models import get_adapter

    torch.set_num_threads(args.threads or torch.get_num_threads())
    adapter = get_adapter(args.model, weights="random", seed=0, device=args.device)
    chain = list(adapter.layers)[-(args.transitions + 1):]
    adapter = get_adapter(args.model, weights="random", seed=0, layers=chain, device=args.device)
    x = _photos(args.images, args.size)
    base = NeurFlowConfig(tau=args.tau, top_k=args.top_k, ig_steps=args.ig_steps, class_filter="all",
                          max_nodes_per_layer=args.max_nodes, device=args.device,
                          batch_size=args.batch_size, ig_batch_size=args.ig_batch_size)
    cuda = args.device.startswith("cuda")
    if cuda:   # CUDA context, cuDNN handles and kernels are loaded once, outside the timings
        NeurFlow(base, tau=min(args.tau, 4), top_k=4, ig_steps=4).fit(
            adapter.with_layers(chain[-2:]), x[:2], args.cls, progress=False)
    precisions = args.precisions.split(",")
    variants = [(s, p) for s in args.strategies.split(",") for p in precisions]
    name = {v: v[0] if len(precisions) == 1 else f"{v[0]}@{v[1]}" for v in variants}
    seconds: dict[str, float] = {}
    circuits = {}
    gpu_peak = {}
    for rep in range(args.repeats):   # interleaved, order reversed every repeat; the minimum counts
        for v in variants if rep % 2 == 0 else variants[::-1]:
            dtype, tf32 = PRECISIONS[v[1]]
            cfg = dataclasses.replace(base, strategy=v[0], dtype=dtype, allow_tf32=tf32)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            circuits[name[v]] = NeurFlow(cfg).fit(adapter, x, args.cls, progress=args.progress)
            took = round(time.perf_counter() - t0, 3)
            seconds[name[v]] = min(seconds.get(name[v], took), took)
            if cuda:
                gpu_peak[name[v]] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    first = next(iter(circuits.values()))
    result = {
        "benchmark": "engine", "model": args.model, "images": args.images, "size": args.size,
        "crops": first.manifest["n_crops"], "tau": args.tau, "top_k": args.top_k,
        "ig_steps": args.ig_steps, "transitions": args.transitions, "device": args.device,
        "card": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
        "threads": torch.get_num_threads(), "repeats": args.repeats, "ig_batch_size": args.ig_batch_size,
        "seconds": seconds, "load_average": round(os.getloadavg()[0], 2),
        "nodes_per_layer": {str(k): int(v) for k, v in
                            first.core.groupby("layer", sort=False)["neuron"].nunique().items()},
        "ig_seconds": {s: {k: v for k, v in c.manifest["timings"].items() if k in chain}
                       for s, c in circuits.items()},
    }
    result["per_node"] = {s: _per_node_seconds(c, chain) for s, c in circuits.items()}
    if cuda:
        result["gpu_peak_mb"] = gpu_peak
    if len(precisions) > 1:   # lower precisions against the first (float32) one, per strategy
        for s in args.strategies.split(","):
            ref = circuits[name[(s, precisions[0])]]
            for p in precisions[1:]:
                result[f"agreement_{name[(s, p)]}"] = _agreement(circuits[name[(s, p)]], ref)
    if "per_neuron" in circuits:
        ref = circuits["per_neuron"].core
        for s, c in circuits.items():
            if s == "per_neuron":
                continue
            result[f"speedup_{s}_vs_per_neuron"] = round(seconds["per_neuron"] / seconds[s], 3)
            same = list(c.core["lower_neuron"]) == list(ref["lower_neuron"])
            result[f"same_core_{s}"] = same
            if s == "batched":
                result["max_abs_importance_diff_batched"] = float(np.abs(
                    c.core["importance"].to_numpy() - ref["importance"].to_numpy()).max())
                rel = np.abs(c.core["importance"].to_numpy() - ref["importance"].to_numpy()) / (
                    np.abs(ref["importance"].to_numpy()) + 1e-30)
                result["max_rel_importance_diff_batched"] = float(rel.max())
            else:
                if same:
                    result[f"importance_spearman_{s}"] = float(
                        spearmanr(c.core["importance"], ref["importance"]).statistic)
                result[f"ig_steps_{s}"] = c.manifest["ig_steps"]
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


SUITE = [
    # Speed: both exact strategies do the same arithmetic; the fast mode picks fewer steps.
    ["--model", "resnet18", "--images", "8", "--size", "64", "--tau", "8", "--top-k", "16",
     "--transitions", "3", "--max-nodes", "8", "--strategies", "per_neuron,batched,fast"],
    # Memory: ResNet-50, 50 images (2,950 crops), the top transition; maps are kept for exemplars only.
    ["--model", "resnet50", "--images", "50", "--size", "224", "--tau", "16", "--top-k", "50",
     "--transitions", "1", "--strategies", "batched", "--repeats", "1"],
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--tau", type=int, default=8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--ig-steps", type=int, default=50)
    p.add_argument("--transitions", type=int, default=3)
    p.add_argument("--max-nodes", type=int, default=None)
    p.add_argument("--strategies", default="per_neuron,batched,fast")
    p.add_argument("--class", dest="cls", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", default="fp32",
                   help="Comma list of fp32, tf32, bf16; later ones are compared with the first.")
    p.add_argument("--batch-size", type=int, default=64, help="Crops per activation forward.")
    p.add_argument("--ig-batch-size", type=int, default=256)
    p.add_argument("--progress", action="store_true", help="Progress bars on stderr.")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2, help="Interleaved repeats; the fastest counts.")
    args = p.parse_args()
    if args.model:
        print(json.dumps(run_one(args)), flush=True)
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for extra in SUITE:   # a fresh process per configuration so peak memory is its own
        subprocess.run([sys.executable, __file__, *extra], check=True, env=env)


if __name__ == "__main__":
    main()
