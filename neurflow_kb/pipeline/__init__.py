"""Ingest as a library: recipes, class lists, the plan (which classes, which images, which saved
circuits to reuse) and the loop that computes circuits and writes them to a knowledge base.

    from neurflow_kb import ingest
    result = ingest("efficientnet-lite0", "281-285", "imagenet/val", store="kb.lbug", max_images=50)
    result.frame()        # one row per class: status, run key, images used, nodes, groups, seconds

The CLI's `neurflow-kb ingest` is a thin wrapper over `ingest`. The same loop runs on Ray workers
(`ingest(..., ray="local")`, `ray="auto"` or a cluster address) or on one static shard of the classes
(`shard="I/N"`); the calling process is always the single loader of the store.
"""

from .classes import parse_classes, resolve_class
from .loader import Loader, find_artifacts
from .loop import ingest, ingest_plan, ray_options
from .recipes import Recipe, load_recipe, recipe_names, recipes_dir
from .run import (
    DEFAULT_ARTIFACTS,
    ClassJob,
    ClassResult,
    IngestPlan,
    IngestResult,
    LabelSpec,
    artifact_dir,
    compute_class,
    plan_ingest,
)

__all__ = [
    "DEFAULT_ARTIFACTS",
    "ClassJob",
    "ClassResult",
    "IngestPlan",
    "IngestResult",
    "LabelSpec",
    "Loader",
    "Recipe",
    "artifact_dir",
    "compute_class",
    "find_artifacts",
    "ingest",
    "ingest_plan",
    "load_recipe",
    "parse_classes",
    "plan_ingest",
    "ray_options",
    "recipe_names",
    "recipes_dir",
    "resolve_class",
]
