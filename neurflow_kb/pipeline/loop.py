"""The ingest loop: compute every class of a plan (here, one after another, or on Ray workers) and write
the finished circuits to the store through the single loader. `ingest` = `plan_ingest` + `ingest_plan`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import NeurFlowConfig
from ..errors import UserError
from .loader import Loader
from .recipes import Recipe
from .run import (
    DEFAULT_ARTIFACTS,
    ClassResult,
    IngestPlan,
    IngestResult,
    LabelSpec,
    compute_class,
    plan_ingest,
)

log = logging.getLogger(__name__)


def ingest(model: Recipe | str | Path | Any, classes: str | Sequence[int | str],
           images: str | Path | Sequence[str | Path] | None = None, store: Any = None,
           config: NeurFlowConfig | None = None, *, artifacts: str | Path = DEFAULT_ARTIFACTS,
           max_images: int | None = None, replace: bool = False, labels: LabelSpec | None = None,
           skip_bad_images: bool = False, workers: int | None = None, progress: bool = True,
           on_class: Callable[[ClassResult], None] | None = None, ray: Any = None,
           shard: str | tuple[int, int] | None = None) -> IngestResult:
    """Compute the circuits of `classes` and write each to `store` as soon as it is done.

    `model`: a recipe (`Recipe`, a TOML path or a shipped recipe name), a built-in model name or a
    `ModelAdapter`. `images`: a folder (flat, class subfolders, ImageNet-val), a list file, a file://
    URI or a list of paths (default: the recipe's). `store`: an open `GraphStore`, an embedded file path,
    or None to only save artifacts. Circuits saved under `artifacts` with the same run key are reused;
    `max_images` caps the images *per class* (seeded choice). Classes without images are reported in the
    result (`IngestResult.skipped`), not raised; so are classes whose computation failed
    (`IngestResult.failed`). `on_class` is called with each class's result.

    `ray`: compute on Ray workers instead of here ("local", "auto", a cluster address or a
    `neurflow_kb.cluster.RayOptions`); `shard`: only the I-th of N slices of the classes ("I/N").
    `workers` is the number of processes decoding images in the prediction pass.
    """
    started = time.perf_counter()
    options = ray_options(ray)
    plan = plan_ingest(model, classes, images, config=config, artifacts=artifacts, max_images=max_images,
                       replace=replace, skip_bad_images=skip_bad_images, workers=workers, progress=progress,
                       shard=shard)
    return ingest_plan(plan, store, labels=labels, ray=options, progress=progress, on_class=on_class,
                       started=started)


def ray_options(ray: Any) -> Any:
    """`RayOptions` from an address string or options (None stays None); checks that Ray is installed
    and an explicit cluster address answers, so either is one line before any work."""
    if ray is None:
        return None
    from ..cluster import RayOptions, require_ray

    options = ray if isinstance(ray, RayOptions) else RayOptions(address=str(ray))
    require_ray(local=options.local)
    options.check_reachable()
    return options


def ingest_plan(plan: IngestPlan, store: Any = None, *, labels: LabelSpec | None = None, ray: Any = None,
                progress: bool = True, on_class: Callable[[ClassResult], None] | None = None,
                started: float | None = None) -> IngestResult:
    """Compute every class of `plan` (here, one after another, or on Ray workers when `ray` is given)
    and write the finished ones to `store` through one loader, in batches (see `ingest`)."""
    started = time.perf_counter() if started is None else started
    options = ray_options(ray)
    results: dict[int, ClassResult] = {}

    def report(r: ClassResult) -> None:
        log.info("class %s (%s): %s%s", r.cls, r.name, r.status, f" - {r.message}" if r.message else "")
        results[r.cls] = r
        if on_class:
            on_class(r)

    for r in plan.missing:
        report(r)
    opened = None
    if store is not None and isinstance(store, (str, Path)):
        from ..store import open_store

        opened = store = open_store(store_path=store)
    loader = Loader(store, replace=plan.replace)
    try:
        if options is None:
            run = _compute_here(plan, loader, labels, progress, report)
        else:
            from .distributed import compute_on_ray

            run = compute_on_ray(plan, loader, labels, options, progress, report)
    finally:
        if opened is not None:
            opened.close()
    run.update(loader_seconds=round(loader.seconds, 3), loader_batches=loader.batches,
               loader_classes=loader.classes)
    preds = plan.predictions
    return IngestResult(plan.model_key, [results[c] for c in plan.targets], images=len(preds),
                        predicted=preds.forwarded, prediction_seconds=round(preds.seconds, 3),
                        bad_images=preds.bad_files(), seconds=time.perf_counter() - started, run=run)


def _compute_here(plan: IngestPlan, loader: Any, labels: LabelSpec | None, progress: bool,
                  report: Callable[[ClassResult], None]) -> dict[str, Any]:
    """The single-process loop: compute each class, then write it before the next one starts."""
    from tqdm.auto import tqdm

    bar = tqdm(plan.jobs, desc=f"ingest {plan.adapter.name}", unit="class", disable=not progress,
               file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(f"{job.cls} {job.name}")
        try:
            circuit, result = compute_class(plan, job, labels=labels, progress=progress)
        except UserError as e:
            report(ClassResult(job.cls, job.name, "failed", key=job.key, artifact=job.artifact,
                               message=str(e)))
            continue
        loader.load([(result, circuit)])
        result.seconds = round(result.seconds, 3)
        report(result)
    bar.close()
    return {"mode": "local"}


__all__ = ["ingest", "ingest_plan", "ray_options"]
