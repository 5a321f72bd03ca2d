"""Image data: records of files (folders, ImageNet-val layouts, lists), the streamed and cached prediction
pass, per-class selection, in-memory image sets, multi-granularity crops and thumbnails."""

from .crops import CropPlan, iter_batches, materialize, plan_crops, thumbnail_png
from .predictions import DatasetPredictions, FileHashes, model_identity, predict_dataset
from .records import IMAGE_EXTENSIONS, UNKNOWN_LABEL, ImageRecords, scan_images
from .selection import (
    empty_selection_message,
    load_selection,
    select_class,
    select_images,
    selection_fingerprint,
)
from .sources import (
    Classifier,
    FilterMode,
    ImageSet,
    ImageSpec,
    Preprocessor,
    filter_by_class,
    load_images,
    predict,
)
from .stream import DecodedBatch, decode_bytes, open_rgb, read_image, stream_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "UNKNOWN_LABEL",
    "Classifier",
    "CropPlan",
    "DatasetPredictions",
    "DecodedBatch",
    "FileHashes",
    "FilterMode",
    "ImageRecords",
    "ImageSet",
    "ImageSpec",
    "Preprocessor",
    "decode_bytes",
    "empty_selection_message",
    "filter_by_class",
    "iter_batches",
    "load_images",
    "load_selection",
    "materialize",
    "model_identity",
    "open_rgb",
    "plan_crops",
    "predict",
    "predict_dataset",
    "read_image",
    "scan_images",
    "select_class",
    "select_images",
    "selection_fingerprint",
    "stream_images",
    "thumbnail_png",
]
