"""What a distributed worker runs: `worker_setup` builds the model once on the worker's device from what
the driver ships (`WorkerPlan`), `worker_run` computes one planned class with `compute_class` and returns
plain values. Both are handed to `neurflow_kb.cluster.ActorPool`; neither touches a store."""

from __future__ import annotations

import os
import socket
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import NeurFlowConfig
from ..errors import UserError
from .recipes import Recipe
from .run import ClassJob, IngestPlan, LabelSpec, compute_class, recipe_adapter


def model_identity(adapter: Any) -> dict[str, Any]:
    """What must match between the driver's model and a worker's rebuilt one for the run keys to agree."""
    pre = adapter.preprocess
    return {"name": adapter.name, "weights": adapter.weights, "layers": list(adapter.layers),
            "num_classes": int(adapter.num_classes),
            "preprocess": pre.to_dict() if hasattr(pre, "to_dict") else repr(pre)}


@dataclass
class WorkerPlan:
    """The part of an `IngestPlan` every worker needs: the model as a recipe to rebuild (or, for a plan
    made from a `ModelAdapter`, the adapter itself), its expected identity, the settings, the prediction
    pass (record files and selections) and where artifacts go."""

    model: Recipe | Any
    identity: dict[str, Any]
    config: NeurFlowConfig
    predictions: Any
    artifacts: Path
    replace: bool
    labels: LabelSpec | None = None
    threads: int = 1

    @classmethod
    def of(cls, plan: IngestPlan, labels: LabelSpec | None, threads: int) -> WorkerPlan:
        model = plan.recipe if plan.from_recipe else plan.adapter
        return cls(model, model_identity(plan.adapter), plan.config, plan.predictions, plan.artifacts,
                   plan.replace, labels, max(1, threads))


@dataclass
class WorkerState:
    """A worker's plan with its own model on its own device."""

    plan: IngestPlan
    labels: LabelSpec | None
    where: str


def worker_setup(wp: WorkerPlan) -> WorkerState:
    """Build the worker's model once (on `config.device`: under Ray, the GPU assigned to the actor)."""
    import torch

    torch.set_num_threads(wp.threads)
    if isinstance(wp.model, Recipe):
        adapter = recipe_adapter(wp.model, wp.config.device, wp.config.seed)
    else:
        adapter = wp.model.to(wp.config.device)
    have = model_identity(adapter)
    if have != wp.identity:
        diff = sorted(k for k in have if have[k] != wp.identity.get(k))
        raise UserError(f"the model rebuilt on worker {socket.gethostname()} differs from the driver's in "
                        f"{', '.join(diff)}; install the same neurflow-kb, weights and recipe on every node")
    plan = IngestPlan(wp.model if isinstance(wp.model, Recipe) else Recipe(model=adapter.name), adapter,
                      wp.config, wp.predictions, [], [], wp.artifacts, [], wp.replace)
    return WorkerState(plan, wp.labels, f"{socket.gethostname()}:{os.getpid()}")


def worker_run(state: WorkerState, job: ClassJob) -> dict[str, Any]:
    """Compute (or reuse and label) one class; plain values back: status, run key, artifact path,
    counts, seconds, where it ran. A user error (say an image changed since the plan) is a `failed`
    status with its one line, not an exception, so Ray does not retry it."""
    base = {"cls": job.cls, "key": job.key, "artifact": str(job.artifact), "worker": state.where}
    try:
        _, result = compute_class(state.plan, job, labels=state.labels)
    except UserError as e:
        return {**base, "status": "failed", "message": str(e)}
    except Exception as e:  # a bug or a resource error: one line back, the traceback in the worker's log
        traceback.print_exc(file=sys.stderr)
        first = (str(e).strip().splitlines() or [""])[0]
        return {**base, "status": "failed", "message": f"{type(e).__name__}: {first}"[:500]}
    return {**base, "status": "saved", "key": result.key, "reused": result.reused,
            "n_images": result.n_images, "n_nodes": result.n_nodes, "n_groups": result.n_groups,
            "seconds": round(result.seconds, 3), "message": ""}


__all__ = ["WorkerPlan", "WorkerState", "model_identity", "worker_run", "worker_setup"]
