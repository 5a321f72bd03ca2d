"""Image data: sources (tensors, folders, lists), class filtering, multi-granularity crops, thumbnails."""

from .crops import CropPlan, iter_batches, materialize, plan_crops, thumbnail_png
from .sources import (
    IMAGE_EXTENSIONS,
    UNKNOWN_LABEL,
    Classifier,
    FilterMode,
    ImageSet,
    ImageSpec,
    Preprocessor,
    filter_by_class,
    load_images,
    predict,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "UNKNOWN_LABEL",
    "Classifier",
    "CropPlan",
    "FilterMode",
    "ImageSet",
    "ImageSpec",
    "Preprocessor",
    "filter_by_class",
    "iter_batches",
    "load_images",
    "materialize",
    "plan_crops",
    "predict",
    "thumbnail_png",
]
