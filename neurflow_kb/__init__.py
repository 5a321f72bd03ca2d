"""neurflow-kb: NeurFlow circuits of vision models as a queryable knowledge base.

Public API: `NeurFlow`, `NeurFlowConfig`, `Circuit`, model adapters (`get_adapter`, `ModelAdapter`),
image loading (`load_images`) and the knowledge-base stores and query helpers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:     # what `__getattr__` returns, for type checkers
    from . import queries
    from .artifact import Circuit
    from .cluster import RayOptions
    from .config import NeurFlowConfig
    from .data import ImageSet, load_images, select_images
    from .engine import NeurFlow
    from .errors import StoreError, UserError
    from .labels import LabelMethod, label_circuit, load_clip
    from .model_names import canonical_name
    from .models import (
        ModelAdapter,
        Preprocess,
        as_adapter,
        derive_chain,
        get_adapter,
        list_adapters,
        referable_models,
    )
    from .pipeline import IngestResult, Recipe, ingest, ingest_plan, load_recipe, plan_ingest
    from .store import GraphStore, LadybugStore, Neo4jStore, open_store

__version__ = "0.1.0"

# name -> module; imported on first use so `import neurflow_kb` stays light (no torch for store users).
_EXPORTS = {
    "NeurFlow": "neurflow_kb.engine",
    "NeurFlowConfig": "neurflow_kb.config",
    "Circuit": "neurflow_kb.artifact",
    "UserError": "neurflow_kb.errors",
    "StoreError": "neurflow_kb.errors",
    "ModelAdapter": "neurflow_kb.models",
    "Preprocess": "neurflow_kb.models",
    "get_adapter": "neurflow_kb.models",
    "list_adapters": "neurflow_kb.models",
    "as_adapter": "neurflow_kb.models",
    "canonical_name": "neurflow_kb.model_names",
    "derive_chain": "neurflow_kb.models",
    "referable_models": "neurflow_kb.models",
    "ImageSet": "neurflow_kb.data",
    "load_images": "neurflow_kb.data",
    "open_store": "neurflow_kb.store",
    "LadybugStore": "neurflow_kb.store",
    "Neo4jStore": "neurflow_kb.store",
    "GraphStore": "neurflow_kb.store",
    "label_circuit": "neurflow_kb.labels",
    "LabelMethod": "neurflow_kb.labels",
    "load_clip": "neurflow_kb.labels",
    "queries": "neurflow_kb.queries",
    "ingest": "neurflow_kb.pipeline",
    "IngestResult": "neurflow_kb.pipeline",
    "Recipe": "neurflow_kb.pipeline",
    "load_recipe": "neurflow_kb.pipeline",
    "plan_ingest": "neurflow_kb.pipeline",
    "ingest_plan": "neurflow_kb.pipeline",
    "RayOptions": "neurflow_kb.cluster",
    "select_images": "neurflow_kb.data",
}

# a literal list (type checkers read it); a test checks it names exactly the keys of `_EXPORTS`
__all__ = [
    "Circuit", "GraphStore", "ImageSet", "IngestResult", "LabelMethod", "LadybugStore",
    "ModelAdapter", "Neo4jStore", "NeurFlow", "NeurFlowConfig", "Preprocess", "RayOptions",
    "Recipe", "StoreError", "UserError", "as_adapter", "canonical_name", "derive_chain", "get_adapter",
    "ingest", "ingest_plan", "label_circuit", "list_adapters", "load_clip", "load_images", "load_recipe",
    "open_store", "plan_ingest", "queries", "referable_models", "select_images"
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = import_module(_EXPORTS[name])
        return module if module.__name__.endswith(f".{name}") else getattr(module, name)
    raise AttributeError(f"module 'neurflow_kb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
