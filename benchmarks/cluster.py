"""Cluster benchmark: what distributed ingest costs on top of the work, and whether one loader keeps up.

One JSON line per configuration:

- ``ray-startup``: seconds to start a private local Ray (`RayCluster`, loopback only, 2 CPUs), to get two
  actors ready with nothing to build (worker processes spawned, neurflow-kb imported), and two actors
  holding the world model (`worker_setup` from a real plan, what `ingest --ray` does).
- ``dispatch``: round trip of an empty call to one actor, one at a time (p50/p95 ms), and the cost per
  job of pushing N empty jobs through `ActorPool.map_unordered` over two actors; baseline: the same
  empty job called in this process (ratio).
- ``load-rate`` (one per store): the single loader (`Loader`: read the artifact back, check its key,
  `write_circuits`) writing K ResNet-50-shaped circuit artifacts (about 3,000 relationships each,
  `neurflow_kb.store.synthetic`, as in benchmarks/store.py) in batches of B (1: one class at a time, as
  when classes finish slower than they are written; larger: a backlog), first alone (baseline),
  then while two Ray workers compute real world-model class circuits on the same two cores (the worst
  case: on a cluster the workers are on other machines). Classes/s and relationships/s of loading time,
  ratio contended / alone, and whether the workers were busy for the whole contended load.

    python benchmarks/cluster.py                                 # embedded store, + Neo4j if NEO4J_URI
    python benchmarks/cluster.py --classes 100 --stores ladybug --dispatch-jobs 200
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _store_bench():
    spec = importlib.util.spec_from_file_location("store_bench", HERE / "store.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ms(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000.0
    return round(float(np.percentile(arr, 50)), 3), round(float(np.percentile(arr, 95)), 3)


def _world_plan(root: Path):
    """A real plan over world images (12 classes, 6 images each) with settings that keep a worker busy
    a few seconds per class."""
    from neurflow_kb.config import NeurFlowConfig
    from neurflow_kb.pipeline import Recipe, plan_ingest
    from neurflow_kb.world import generate

    images = root / "val"
    if not images.exists():
        generate(6 * 12, seed=5, classes=list(range(12))).save(images, layout="index", image_format="jpg",
                                                                size=96)
    config = NeurFlowConfig(tau=4, top_k=8, ig_steps=8, max_nodes_per_layer=6, class_filter="true")
    return plan_ingest(Recipe(model="world", layers=["layer2", "layer3", "layer4", "fc"]), "0-11", images,
                       config=config, artifacts=root / "world-arts", replace=True, progress=False, workers=0)


def _empty(state, job):   # defined in __main__: Ray ships it by value
    return job


def _keep(shared):
    return shared


def _release(pool) -> None:
    """Let a pool's actors go and wait until Ray has their CPUs back (two CPUs: one pool at a time)."""
    import gc

    import ray

    want = ray.cluster_resources().get("CPU", 0)
    pool.actors.clear()
    gc.collect()
    deadline = time.time() + 60
    while ray.available_resources().get("CPU", 0) < want and time.time() < deadline:
        time.sleep(0.1)


def bench_startup_and_dispatch(args, cluster, plan) -> list[dict]:
    from neurflow_kb.cluster import ActorPool
    from neurflow_kb.pipeline.workers import WorkerPlan, worker_run, worker_setup

    empty = ActorPool(cluster, _keep, None, _empty, workers=2).start()
    rtt = empty.ping(args.pings)
    t0 = time.perf_counter()
    done = sum(len(batch) for batch in empty.map_unordered(range(args.dispatch_jobs)))
    pool_s = time.perf_counter() - t0
    assert done == args.dispatch_jobs
    _release(empty)
    t0 = time.perf_counter()
    for j in range(args.dispatch_jobs):
        _empty(None, j)
    local_s = time.perf_counter() - t0
    model = ActorPool(cluster, worker_setup, WorkerPlan.of(plan, None, 1), worker_run, workers=2).start()
    _release(model)

    p50, p95 = _ms(rtt)
    per_job = pool_s / args.dispatch_jobs
    return [{"benchmark": "cluster", "config": "ray-startup", "ray_init_s": round(cluster.startup_seconds, 2),
             "two_empty_actors_ready_s": round(empty.ready_seconds, 2),
             "two_world_model_actors_ready_s": round(model.ready_seconds, 2)},
            {"benchmark": "cluster", "config": "dispatch", "round_trip_p50_ms": p50, "round_trip_p95_ms": p95,
             "jobs": args.dispatch_jobs, "workers": 2, "per_job_ms": round(per_job * 1000, 3),
             "in_process_per_job_us": round(local_s / done * 1e6, 3),
             "ratio_vs_in_process": round(per_job / (local_s / done)),
             "share_of_a_93s_class": float(f"{per_job / 93.0:.2e}")}]


def _artifacts(args, root: Path) -> list:
    """K ResNet-50-shaped circuits saved as artifacts; their (ClassResult, None) items for the loader."""
    from neurflow_kb.pipeline import ClassResult, artifact_dir

    circuits = _store_bench().build_circuits(args.classes, args.distinct, 0)
    items = []
    for c in circuits:
        where = artifact_dir(root / "resnet-arts", f"{c.model}@{c.manifest['weights']}", c.target_class)
        if not (where / "manifest.json").is_file():
            c.save(where)
        items.append(ClassResult(c.target_class, str(c.manifest.get("class_name")), "saved", key=c.key,
                                 artifact=where))
    return items


def _open(kind: str, root: Path, tag: str, neo4j: str | None):
    from neurflow_kb.store import LadybugStore, Neo4jStore

    if kind == "ladybug":
        path = root / f"kb-{tag}.lbug"
        for p in root.glob(path.name + "*"):
            p.unlink()
        return LadybugStore(path)
    st = Neo4jStore(neo4j).open()
    _store_bench().wipe(st)
    return st


def _load(items, store, batch: int):
    from neurflow_kb.pipeline import Loader

    loader = Loader(store)
    fresh = [dataclasses.replace(r) for r in items]   # the loader updates results in place
    for i in range(0, len(fresh), batch):
        loader.load([(r, None) for r in fresh[i:i + batch]])
    assert loader.classes == len(items) and all(r.status == "written" for r in fresh), \
        {r.status for r in fresh}
    return loader


def bench_load_rate(args, cluster, plan, root: Path, kind: str, batch: int) -> dict:
    from neurflow_kb.cluster import ActorPool
    from neurflow_kb.pipeline.workers import WorkerPlan, worker_run, worker_setup

    items = _artifacts(args, root)
    with _open(kind, root, "alone", args.neo4j) as st:
        alone = _load(items, st, batch)

    pool = ActorPool(cluster, worker_setup, WorkerPlan.of(plan, None, 1), worker_run, workers=2).start()
    stop = threading.Event()
    computed: list[float] = []
    busy_from = threading.Event()

    def jobs():
        while not stop.is_set():
            yield from plan.jobs

    def compute():
        for batch in pool.map_unordered(jobs()):
            for o in batch:
                assert o.error is None and o.value["status"] == "saved", (o.error, o.value)
                computed.append(time.perf_counter())
                busy_from.set()
            if stop.is_set():
                break

    worker = threading.Thread(target=compute, daemon=True)
    worker.start()
    busy_from.wait(timeout=600)             # workers have finished one class each: they are warm
    with _open(kind, root, "contended", args.neo4j) as st:
        t0 = time.perf_counter()
        loaded = _load(items, st, batch)
        t1 = time.perf_counter()
    stop.set()
    worker.join(timeout=600)
    _release(pool)
    during = [t for t in computed if t0 <= t <= t1]
    rels = loaded.relationships
    row = {"benchmark": "cluster", "config": "load-rate", "store": kind, "classes": len(items),
           "batch": batch, "relationships": rels,
           "alone_s": round(alone.seconds, 2), "alone_read_s": round(alone.read_seconds, 2),
           "alone_classes_per_s": round(alone.rate(), 2),
           "contended_s": round(loaded.seconds, 2), "contended_read_s": round(loaded.read_seconds, 2),
           "contended_classes_per_s": round(loaded.rate(), 2),
           "contended_rel_per_s": round(rels / loaded.seconds),
           "ratio_contended_vs_alone": round(loaded.rate() / alone.rate(), 2),
           "world_classes_computed_during_load": len(during),
           "workers_busy_throughout": bool(computed) and computed[-1] >= t1}
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=64, help="ResNet-50-shaped artifacts to load")
    ap.add_argument("--distinct", type=int, default=20, help="distinct generated circuits among them")
    ap.add_argument("--batches", default="1,8,64", help="classes per loader batch, comma list")
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--dispatch-jobs", type=int, default=500)
    ap.add_argument("--stores", default=None, help="comma list of ladybug,neo4j (default: ladybug, + neo4j "
                    "when NEO4J_URI is set; the Neo4j database is emptied)")
    ap.add_argument("--neo4j", default=os.environ.get("NEO4J_URI"))
    ap.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    args = ap.parse_args(argv)
    stores = (args.stores or ("ladybug,neo4j" if args.neo4j else "ladybug")).split(",")
    root = Path(args.out or tempfile.mkdtemp(prefix="cluster-bench-"))
    root.mkdir(parents=True, exist_ok=True)

    import torch

    from neurflow_kb.cluster import RayCluster, RayOptions

    torch.set_num_threads(1)
    env = {"cpus": os.cpu_count(), "python": platform.python_version()}
    plan = _world_plan(root)
    temp = tempfile.mkdtemp(prefix="nkr", dir="/tmp")     # short: Ray's socket paths must fit 107 bytes
    options = RayOptions("local", num_cpus=2, num_gpus=0, object_store_memory=256 * 2**20, temp_dir=temp)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, temp, ignore_errors=True)
        cluster = stack.enter_context(RayCluster(options))
        import ray

        env["ray"] = ray.__version__
        for row in bench_startup_and_dispatch(args, cluster, plan):
            print(json.dumps({**row, **env, "load_avg": round(os.getloadavg()[0], 2)}), flush=True)
        for kind in stores:
            for batch in (int(b) for b in args.batches.split(",")):
                row = bench_load_rate(args, cluster, plan, root, kind, batch)
                print(json.dumps({**row, **env, "load_avg": round(os.getloadavg()[0], 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
