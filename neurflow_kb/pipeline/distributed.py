"""Ingest on Ray workers: the driver plans once, ships the plan to a pool of actors (each builds the model
once on its device), hands out one class at a time, and, as classes finish, writes them to the store in
batches through the single loader while the workers go on computing. Saved circuits whose key matches
are reused by the driver without starting Ray."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from typing import Any

from ..errors import UserError
from .loader import Loader
from .run import ClassJob, ClassResult, IngestPlan, LabelSpec, compute_class


def _gpus(options: Any, device: str) -> Any:
    """Options with `gpus_per_worker` decided from the engine's device (1 on CUDA, else 0), checked."""
    gpus = options.gpus_per_worker
    cuda = device.startswith("cuda")
    if gpus is None:
        gpus = 1.0 if cuda else 0.0
    if cuda and ":" in device and device.split(":", 1)[1] not in ("", "0"):
        raise UserError(f"--device {device} with --ray: each worker sees only the GPU Ray gave it; pass "
                        "--device cuda")
    if cuda and gpus == 0:
        raise UserError("--device cuda with --ray needs --gpus-per-worker > 0 (workers without a GPU "
                        "cannot run CUDA)")
    if not cuda and gpus > 0:
        raise UserError(f"--gpus-per-worker {gpus:g} reserves GPUs that --device {device} does not use; "
                        "pass --device cuda or --gpus-per-worker 0")
    return dataclasses.replace(options, gpus_per_worker=gpus)


def _result(job: ClassJob, outcome: Any) -> ClassResult:
    """A worker's plain values (or its error) as the class's result; the key is always the planned one,
    so the loader checks the artifact against the plan."""
    if outcome.error is not None:
        return ClassResult(job.cls, job.name, "failed", key=job.key, artifact=job.artifact,
                           message=outcome.error)
    v = outcome.value
    return ClassResult(job.cls, job.name, v["status"], key=job.key, reused=bool(v.get("reused")),
                       n_images=int(v.get("n_images", 0)), n_nodes=int(v.get("n_nodes", 0)),
                       n_groups=int(v.get("n_groups", 0)), seconds=float(v.get("seconds", 0.0)),
                       artifact=job.artifact, message=v.get("message", ""), worker=v.get("worker", ""))


def compute_on_ray(plan: IngestPlan, loader: Loader, labels: LabelSpec | None, options: Any,
                   progress: bool, report: Callable[[ClassResult], None]) -> dict[str, Any]:
    """Compute the plan's classes on Ray actors and load them as they finish (see the module)."""
    from tqdm.auto import tqdm

    from ..cluster import ActorPool, RayCluster
    from .workers import WorkerPlan, worker_run, worker_setup

    options = _gpus(options, plan.config.device)
    todo: list[ClassJob] = []
    reused: list[tuple[ClassResult, Any]] = []
    for job in plan.jobs:
        if not job.reuse:
            todo.append(job)
            continue
        try:  # a saved circuit with the planned key: the driver loads (and, if asked, labels) it
            reused.append(compute_class(plan, job, labels=labels)[::-1])
        except UserError as e:
            report(ClassResult(job.cls, job.name, "failed", key=job.key, artifact=job.artifact,
                               message=str(e)))
    if reused:
        loader.load(reused)
        for result, _ in reused:
            report(result)
    run: dict[str, Any] = {"mode": "ray", "address": options.address, "workers": 0}
    if not todo:
        return run
    with RayCluster(options) as cluster:
        workers = min(options.workers or cluster.default_workers(), len(todo))
        shipped = WorkerPlan.of(plan, labels, math.ceil(options.cpus_per_worker))
        pool = ActorPool(cluster, worker_setup, shipped, worker_run, workers).start()
        bar = tqdm(total=len(todo), desc=f"ingest {plan.adapter.name} on {workers} Ray workers", unit="class",
                   disable=not progress, file=sys.stderr)
        for outcomes in pool.map_unordered(todo):
            batch = [(_result(o.job, o), None) for o in outcomes]
            loader.load(batch)
            for result, _ in batch:
                report(result)
            bar.update(len(batch))
        bar.close()
        run.update(workers=workers, where=pool.where, startup_seconds=round(cluster.startup_seconds, 3),
                   ready_seconds=round(pool.ready_seconds, 3), replaced_workers=pool.replaced)
    return run


__all__ = ["compute_on_ray"]
