"""Ingest as a library: a model and a list of classes -> circuits saved as artifacts -> the knowledge base.

Three steps, usable on their own (a distributed runner calls `compute_class` on workers):

1. `plan_ingest`: build the model, scan the images, run (or reuse) the one prediction pass of the
   dataset, select each class's images and compute each circuit's run key before any work; classes with
   no image are reported, not fatal.
2. `compute_class`: the circuit of one class (or the saved artifact when its key matches), labelled
   if asked, saved atomically under ``artifacts``. Needs no database.
3. `ingest_plan` (in `loop.py`): compute every class of a plan (here, one after another, or on Ray
   workers) and write the finished ones to the store through the single loader; `ingest` = `plan_ingest`
   + `ingest_plan`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..artifact import Circuit, circuit_key, model_id
from ..config import NeurFlowConfig
from ..data import (
    DatasetPredictions,
    empty_selection_message,
    load_selection,
    predict_dataset,
    scan_images,
    select_class,
    selection_fingerprint,
)
from ..errors import UserError
from .classes import parse_classes
from .recipes import Recipe, load_recipe

DEFAULT_ARTIFACTS = "neurflow-kb-artifacts"
CACHE_DIR = "_cache"
#: Without an explicit `max_images`, a class may use at most this many images (the engine holds a class's
#: images and their crops in memory); more is refused in one line asking for --max-images.
UNCAPPED_LIMIT = 2000
#: Bad files listed by name in a manifest (the count is always complete).
MAX_LISTED_BAD = 100

Status = Literal["written", "skipped", "replaced", "recovered", "labelled", "saved", "no_images", "failed"]


@dataclass
class LabelSpec:
    """How `ingest` labels groups: a loaded CLIP encoder, a vocabulary, the label options and the method
    (`neurflow_kb.labels.LabelMethod`; default: the contrastive method of docs/labels.md)."""

    clip: Any
    vocabulary: Any
    top_n: int = 5
    templates: tuple[str, ...] | None = None
    method: Any = None

    def _options(self) -> dict[str, Any]:
        from ..labels import DEFAULT_TEMPLATES, LabelMethod

        return {"top_n": self.top_n, "templates": tuple(self.templates or DEFAULT_TEMPLATES),
                "method": LabelMethod.parse(self.method) if self.method is not None else LabelMethod()}

    def done(self, circuit: Circuit) -> bool:
        """Whether `circuit` already carries labels made this way (then it is not labelled again)."""
        have = circuit.manifest.get("labels") or {}
        opts = self._options()
        want = {"encoder": self.clip.encoder, "vocabulary": self.vocabulary.name, "top_n": opts["top_n"],
                "templates": list(opts["templates"]), "method": opts["method"].name}
        return bool(len(circuit.labels)) and all(have.get(k) == v for k, v in want.items())

    def apply(self, circuit: Circuit) -> Circuit:
        from ..labels import label_circuit

        return label_circuit(circuit, self.clip, self.vocabulary, **self._options())


@dataclass
class ClassJob:
    """One class of a plan: its selected images (record positions), data fingerprint, run key and where
    its artifact lives; `reuse` when a saved artifact with that key is there."""

    cls: int
    name: str
    positions: np.ndarray
    fingerprint: str
    key: str
    artifact: Path
    reuse: bool = False


@dataclass
class ClassResult:
    """What happened to one class: `status` is the store's (written, skipped, replaced, recovered,
    labelled), `saved` (artifact only, no store), `no_images` (skipped) or `failed` (its computation
    stopped on a user error or its worker was lost; see `message`). `worker` is host:pid under Ray."""

    cls: int
    name: str
    status: Status
    key: str | None = None
    reused: bool = False
    n_images: int = 0
    n_nodes: int = 0
    n_groups: int = 0
    seconds: float = 0.0
    relationships: int = 0
    artifact: Path | None = None
    message: str = ""
    worker: str = ""

    def line(self) -> str:
        """The per-class line the CLI prints."""
        head = f"{self.status} class {self.cls} ({self.name})"
        if self.status in ("no_images", "failed"):
            return f"{head}: {self.message}"
        return (f"{head}: run {self.key}, {self.n_images} images, {self.n_nodes} nodes, {self.n_groups} "
                f"groups, {self.seconds:.1f}s{' (saved circuit reused)' if self.reused else ''}")


@dataclass
class IngestPlan:
    """Everything decided before any circuit is computed (see `plan_ingest`)."""

    recipe: Recipe
    adapter: Any
    config: NeurFlowConfig
    predictions: DatasetPredictions
    jobs: list[ClassJob]
    missing: list[ClassResult]
    artifacts: Path
    targets: list[int]
    replace: bool = False
    #: whether workers can rebuild the model from `recipe` (False: the plan was given a ModelAdapter)
    from_recipe: bool = True
    #: (index, count) when this plan is one static shard of the classes
    shard: tuple[int, int] | None = None

    @property
    def model_key(self) -> str:
        return model_id(self.adapter.name, self.adapter.weights)


@dataclass
class IngestResult:
    """Per-class results of an ingest, in the order the classes were given, and the prediction pass."""

    model: str
    classes: list[ClassResult]
    images: int = 0
    predicted: int = 0
    prediction_seconds: float = 0.0
    bad_images: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: how the classes were computed: {"mode": "local" | "ray", and for Ray the address, workers, start-up
    #: seconds, replaced workers}; the loader's store seconds and batches
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> list[ClassResult]:
        """Classes left out because no image was selected for them."""
        return [r for r in self.classes if r.status == "no_images"]

    @property
    def failed(self) -> list[ClassResult]:
        """Classes whose computation failed (a user error on the worker, or the worker lost)."""
        return [r for r in self.classes if r.status == "failed"]

    def frame(self) -> Any:
        """The results as a DataFrame (one row per class)."""
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in vars(r).items()} for r in self.classes])


def artifact_dir(root: Path, model_key: str, cls: int) -> Path:
    """Where the circuit of class `cls` of a model is saved under `root`."""
    safe = "".join(ch if ch.isalnum() or ch in "._-@" else "_" for ch in model_key)
    return root / safe / f"class-{cls:04d}"


def _recipe(model: Recipe | str | Path | Any) -> tuple[Recipe, Any]:
    """(recipe, adapter or None) from a recipe, a recipe name/path, a model name or a `ModelAdapter`."""
    from ..models import ModelAdapter

    if isinstance(model, Recipe):
        return model, None
    if isinstance(model, ModelAdapter):
        return Recipe(model=model.name, weights=model.weights, layers=list(model.layers)), model
    if isinstance(model, (str, Path)):
        return load_recipe(model), None
    raise UserError(f"cannot ingest a {type(model).__name__}; give a recipe, a model name or a ModelAdapter")


def recipe_adapter(recipe: Recipe, device: str, seed: int) -> Any:
    """The model adapter a recipe describes (its model, weights, layers and preprocessing)."""
    from ..models import Preprocess, get_adapter

    adapter = get_adapter(recipe.model, weights=recipe.weights, layers=recipe.layers, device=device,
                          seed=seed)
    if recipe.preprocess:
        adapter.preprocess = Preprocess(**recipe.preprocess)
    return adapter


def _saved_key(path: Path) -> str | None:
    """Run key of the artifact saved at `path` (None when there is none or it cannot be read)."""
    if not (path / "manifest.json").is_file():
        return None
    try:
        return Circuit.load(path).key
    except UserError:
        return None


def plan_ingest(model: Recipe | str | Path | Any, classes: str | Sequence[int | str],
                images: str | Path | Sequence[str | Path] | None = None, *,
                config: NeurFlowConfig | None = None, artifacts: str | Path = DEFAULT_ARTIFACTS,
                max_images: int | None = None, replace: bool = False, skip_bad_images: bool = False,
                workers: int | None = None, progress: bool = True,
                shard: str | tuple[int, int] | None = None) -> IngestPlan:
    """Decide everything before computing: the model, the classes, each class's images (after the one
    prediction pass over the dataset, cached under ``artifacts/_cache``), their run keys, and which saved
    circuits are reused. `config` defaults to the recipe's settings. `shard` ("I/N" or (I, N)) keeps
    the I-th of N round-robin slices of the sorted classes (`neurflow_kb.cluster.shard_classes`); the
    prediction pass still covers the whole dataset, once: concurrent shards wait for each other's pass
    on a lock in the cache and then read it."""
    from ..cluster.shards import parse_shard, shard_classes

    which = parse_shard(shard) if shard is not None else None
    recipe, adapter = _recipe(model)
    from_recipe = adapter is None
    config = config or recipe.config()
    if adapter is None:
        adapter = recipe_adapter(recipe, config.device, config.seed)
    else:
        adapter = adapter.to(config.device)
    targets = parse_classes(classes, adapter.class_names, adapter.num_classes)
    if which is not None:
        mine = set(shard_classes(targets, *which))
        targets = [c for c in targets if c in mine]
    source = images if images is not None else recipe.images
    if source is None:
        raise UserError("no images: pass --images FOLDER (or set [data] images in the recipe)")
    max_images = max_images if max_images is not None else recipe.max_images
    if max_images is not None and max_images < 1:
        raise UserError(f"max_images must be >= 1 (got {max_images})")
    records = scan_images(source, adapter.class_names)
    root = Path(artifacts)
    preds = predict_dataset(records, adapter, cache_dir=root / CACHE_DIR, batch_size=config.batch_size,
                            device=config.device, workers=workers, skip_bad=skip_bad_images,
                            progress=progress)
    from ..engine import NeurFlow

    engine = NeurFlow(config)
    engine.check(adapter)
    jobs: list[ClassJob] = []
    missing: list[ClassResult] = []
    names = adapter.class_names
    for cls in targets:
        name = names[cls] if names else str(cls)
        positions = select_class(preds, cls, config.class_filter, max_images, config.seed)
        if len(positions) == 0:
            missing.append(ClassResult(cls, name, "no_images", message=empty_selection_message(
                preds, cls, config.class_filter, names)))
            continue
        if max_images is None and len(positions) > UNCAPPED_LIMIT:
            raise UserError(f"class {cls} ({name}) selects {len(positions)} images; the engine holds a "
                            "class's images in memory: pass --max-images N (e.g. 50, the paper's setting)")
        fingerprint = selection_fingerprint(preds, positions, adapter.preprocess)
        key = circuit_key(engine.identity(adapter, cls, fingerprint))
        where = artifact_dir(root, model_id(adapter.name, adapter.weights), cls)
        reuse = not replace and _saved_key(where) == key
        jobs.append(ClassJob(cls, name, positions, fingerprint, key, where, reuse))
    return IngestPlan(recipe, adapter, config, preds, jobs, missing, root, targets, replace, from_recipe,
                      which)


def compute_class(plan: IngestPlan, job: ClassJob, *, labels: LabelSpec | None = None,
                  progress: bool = False) -> tuple[Circuit, ClassResult]:
    """The circuit of one planned class: the saved artifact when `job.reuse`, else computed from its
    selected images; labelled when `labels` is given and it lacks those labels; saved atomically."""
    from ..engine import NeurFlow

    t0 = time.perf_counter()
    circuit = Circuit.load(job.artifact) if job.reuse else None
    if circuit is None:
        imageset = load_selection(plan.predictions, job.positions, plan.adapter.preprocess, job.cls,
                                  plan.config.class_filter)
        circuit = NeurFlow(plan.config).fit(plan.adapter, imageset, job.cls, progress=progress)
        if circuit.key != job.key:  # the plan and the engine must agree on identity
            raise RuntimeError(f"planned run key {job.key} but computed {circuit.key} for class {job.cls}")
        if plan.predictions.bad:
            bad = plan.predictions.bad_files()
            circuit.manifest["skipped_images"] = {"count": len(bad), "files": bad[:MAX_LISTED_BAD]}
        _save(circuit, job.artifact)
    if labels is not None and not labels.done(circuit):
        circuit = labels.apply(circuit)
        _save(circuit, job.artifact)
    result = ClassResult(job.cls, job.name, "saved", key=circuit.key, reused=job.reuse,
                         n_images=int(circuit.manifest.get("n_images", len(job.positions))),
                         n_nodes=len(circuit.nodes), n_groups=len(circuit.groups),
                         seconds=time.perf_counter() - t0, artifact=job.artifact)
    return circuit, result


def _save(circuit: Circuit, where: Path) -> None:
    circuit.save(where)


__all__ = ["recipe_adapter", "DEFAULT_ARTIFACTS", "ClassJob", "ClassResult", "IngestPlan", "IngestResult",
           "LabelSpec", "artifact_dir", "compute_class", "plan_ingest"]
