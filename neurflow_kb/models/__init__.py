"""Model adapters: a layer chain over an unmodified vision model, run through forward hooks."""

from .adapter import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter, Preprocess
from .builders import read_state_dict
from .lite0 import EfficientNetLite0
from .reference import derive_chain
from .registry import AdapterInfo, as_adapter, get_adapter, list_adapters, referable_models

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AdapterInfo",
    "EfficientNetLite0",
    "ModelAdapter",
    "Preprocess",
    "as_adapter",
    "derive_chain",
    "get_adapter",
    "list_adapters",
    "read_state_dict",
    "referable_models",
]
