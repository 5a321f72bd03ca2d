"""Ingest benchmark: ImageNet-scale folders through `neurflow_kb.ingest` with bounded memory.

Generates ImageNet-val layouts of N JPEG files (world images upsampled to 224 px, each file made unique
by a little seeded pixel noise, labels from class-index subfolders or a flat folder with
LOC_val_solution.csv) and ingests 12 classes into the embedded store with a real model (the shipped
world classifier; EfficientNet-Lite0 with real weights on a smaller N). Each configuration runs in a
fresh process and prints one JSON line: N, layout, peak RSS of the ingest process and of its decoding
workers, prediction-pass images/s, seconds per class, and the number of full-dataset prediction passes
*counted* by a forward hook on the model (complete forwards only happen in the prediction pass), for a
first ingest and for a second one of the same classes (which must reuse everything: 0 passes). After the
largest world run, three bad files (truncated JPEG, 0-byte file, non-image) are added and the time to the
one-line error is measured.

    python benchmarks/ingest.py                                  # N = 5,000 and 50,000; Lite0 at 500
    python benchmarks/ingest.py --sizes 2000 --lite0 200 --out /tmp/ingest-bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
POOL = 600  # distinct world images (50 per class); files add noise to them


def generate(root: Path, n: int, layout: str, seed: int = 0) -> Path:
    """N unique JPEG files in `layout` under `root` (skipped when a finished copy is there)."""
    from neurflow_kb.world import generate as world
    from neurflow_kb.world.generator import image_path, write_image, write_loc_solution

    done = root / ".complete"
    if done.is_file() and done.read_text().strip() == f"{n} {layout} {seed}":
        return root
    batch = world(POOL, seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = i % POOL
        noise = rng.integers(-3, 4, size=batch.images[k].shape, dtype=np.int16)
        img = np.clip(batch.images[k].astype(np.int16) + noise, 0, 255).astype(np.uint8)
        label = int(batch.labels[k])
        path = image_path(root, layout, label, f"ILSVRC2012_val_{i:08d}", "jpg")
        write_image(img, path, size=224)
        if layout == "flat":
            rows.append((path.stem, label, 224))
            if len(rows) >= 5000:
                write_loc_solution(root, rows, append=True)
                rows = []
    if layout == "flat" and rows:
        write_loc_solution(root, rows, append=True)
    done.write_text(f"{n} {layout} {seed}")
    return root


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0


def run_one(args: argparse.Namespace) -> dict:
    """One configuration in this process: ingest twice, count complete forwards, measure memory."""
    import torch

    from neurflow_kb import ingest
    from neurflow_kb.config import NeurFlowConfig
    from neurflow_kb.models import get_adapter

    torch.set_num_threads(1)
    chains = {"world": ["layer3", "layer4", "fc"], "efficientnet_lite0": ["_blocks.14", "_blocks.15", "_fc"]}
    adapter = get_adapter(args.model, layers=chains[args.model])
    rows = [0]
    adapter.model.register_forward_hook(lambda m, i, o: rows.__setitem__(0, rows[0] + int(i[0].shape[0])))
    config = NeurFlowConfig(tau=4, top_k=16, ig_steps=8, max_nodes_per_layer=8, strategy="batched",
                            class_filter="true", batch_size=64)
    classes = list(range(12)) if args.model == "world" else [0, 1, 2]
    kb = Path(args.out) / f"kb-{args.model}-{args.n}-{args.layout}.lbug"
    arts = Path(args.out) / f"artifacts-{args.model}-{args.n}-{args.layout}"
    for p in (kb, Path(str(kb) + ".wal")):
        p.unlink(missing_ok=True)
    import shutil

    shutil.rmtree(arts, ignore_errors=True)
    t0 = time.perf_counter()
    first = ingest(adapter, classes, args.images, store=kb, config=config, artifacts=arts,
                   max_images=args.max_images, workers=args.workers, progress=False)
    first_s = time.perf_counter() - t0
    passes_first = rows[0] / args.n
    t0 = time.perf_counter()
    second = ingest(adapter, classes, args.images, store=kb, config=config, artifacts=arts,
                    max_images=args.max_images, workers=args.workers, progress=False)
    second_s = time.perf_counter() - t0
    passes_second = rows[0] / args.n - passes_first
    computed = [r for r in first.classes if r.status != "no_images"]
    return {
        "benchmark": "ingest", "model": args.model, "layout": args.layout, "n_images": args.n,
        "classes": len(classes), "max_images_per_class": args.max_images, "workers": args.workers,
        "peak_rss_mb": round(_peak_mb(resource.RUSAGE_SELF), 1),
        "peak_rss_workers_mb": round(_peak_mb(resource.RUSAGE_CHILDREN), 1),
        "prediction_images_per_s": round(first.predicted / max(first.prediction_seconds, 1e-9), 1),
        "prediction_seconds": first.prediction_seconds,
        "seconds_per_class": round(float(np.mean([r.seconds for r in computed])), 2),
        "images_per_class": [r.n_images for r in first.classes],
        "first_ingest_seconds": round(first_s, 1), "second_ingest_seconds": round(second_s, 1),
        "prediction_passes_first": round(passes_first, 4),
        "prediction_passes_second": round(passes_second, 4),
        "second_ingest_statuses": sorted({r.status for r in second.classes}),
        "second_ingest_reused": all(r.reused for r in second.classes if r.status != "no_images"),
    }


def bad_files_check(folder: Path, out: Path, model: str, layout: str, n: int) -> dict:
    """Add a truncated JPEG, a 0-byte file and a non-image; time the CLI until its one-line error (in a
    fresh artifacts folder that starts with the run's prediction cache, so no circuit exists yet)."""
    import shutil

    arts = out / "artifacts-bad-files"
    shutil.rmtree(arts, ignore_errors=True)
    shutil.copytree(out / f"artifacts-{model}-{n}-{layout}" / "_cache", arts / "_cache")
    some = next(folder.rglob("*.jpg"))
    sub = some.parent
    bad = [sub / "zz_truncated.jpg", sub / "zz_empty.jpg", sub / "zz_notes.png"]
    bad[0].write_bytes(some.read_bytes()[:2000])
    bad[1].write_bytes(b"")
    bad[2].write_text("not an image")
    if layout == "flat":
        (folder / "LOC_val_solution.csv").open("a").write("".join(
            f"{p.stem},n01440764 0 0 1 1\n" for p in bad))
    try:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "neurflow_kb.cli", "ingest", model, "--layers", "layer3,layer4,fc",
               "--classes", "0-11", "--images", str(folder), "--filter", "true", "--max-images", "20",
               "--store", str(out / "kb-bad.lbug"), "--artifacts", str(arts), "--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    finally:
        for p in bad:
            p.unlink(missing_ok=True)
    err = proc.stderr.strip().splitlines()
    return {"benchmark": "ingest-bad-files", "model": model, "layout": layout, "n_images": n + 3,
            "exit_code": proc.returncode, "stderr_lines": len(err), "error": err[-1] if err else "",
            "seconds_to_error": round(seconds, 1),
            "circuits_before_error": len(list(arts.rglob("class-*")))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="5000,50000", help="world dataset sizes N (comma-separated)")
    p.add_argument("--layouts", default="flat,index", help="layouts to run at the smallest N")
    p.add_argument("--lite0", type=int, default=500, help="N for EfficientNet-Lite0 (0: skip)")
    p.add_argument("--max-images", type=int, default=20, help="images per class")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: cores - 1)")
    p.add_argument("--out", default=str(HERE / "out" / "ingest"))
    p.add_argument("--_run", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="world", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--layout", default="flat", help=argparse.SUPPRESS)
    p.add_argument("--images", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.workers is None:
        args.workers = max(1, (os.cpu_count() or 2) - 1)
    if args._run:
        print(json.dumps(run_one(args)), flush=True)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    layouts = [s for s in args.layouts.split(",") if s]
    plan = [("world", n, "flat") for n in sizes]
    plan += [("world", min(sizes), lay) for lay in layouts if lay != "flat"]
    if args.lite0:
        plan.append(("efficientnet_lite0", args.lite0, "index"))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    lines = []
    for model, n, layout in plan:
        t0 = time.perf_counter()
        folder = generate(out / f"data-{n}-{layout}", n, layout)
        gen_s = time.perf_counter() - t0
        cmd = [sys.executable, __file__, "--_run", "--model", model, "--n", str(n), "--layout", layout,
               "--images", str(folder), "--out", str(out), "--max-images", str(args.max_images), "--workers",
               str(args.workers)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            return proc.returncode
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        line.update(generate_seconds=round(gen_s, 1), load_avg=round(os.getloadavg()[0], 2),
                    cpus=os.cpu_count(), python=platform.python_version())
        lines.append(line)
        print(json.dumps(line), flush=True)
    world = [ln for ln in lines if ln["model"] == "world" and ln["layout"] == "flat"]
    if len(world) >= 2:
        small, big = world[0], world[-1]
        print(json.dumps({"benchmark": "ingest-memory-ratio", "n_small": small["n_images"],
                          "n_large": big["n_images"],
                          "peak_rss_ratio": round(big["peak_rss_mb"] / small["peak_rss_mb"], 3),
                          "peak_rss_large_mb": big["peak_rss_mb"],
                          "total_with_workers_large_mb":
                              round(big["peak_rss_mb"] + big["peak_rss_workers_mb"], 1),
                          "images_ratio": big["n_images"] / small["n_images"]}), flush=True)
        n = big["n_images"]
        print(json.dumps(bad_files_check(out / f"data-{n}-flat", out, "world", "flat", n)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
