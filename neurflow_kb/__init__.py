"""neurflow-kb: NeurFlow circuits of vision models as a queryable knowledge base.

Public API: `NeurFlow`, `NeurFlowConfig`, `Circuit`, model adapters (`get_adapter`, `ModelAdapter`),
image loading (`load_images`) and the knowledge-base stores and query helpers.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = import_module(_EXPORTS[name])
        return module if module.__name__.endswith(f".{name}") else getattr(module, name)
    raise AttributeError(f"module 'neurflow_kb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
