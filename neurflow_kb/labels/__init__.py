"""CLIP concept labels for neuron groups (open_clip) and the vocabularies they come from.

``label_circuit(circuit, load_clip(), "broad")`` fills a circuit's `labels` and `group_embeddings`
tables; `docs/labels.md` describes the methods (`LabelMethod`: contrastive by default, or the mean
embedding) and their evaluation on the planted-concept world.
"""

from .clip import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    DEFAULT_TEMPLATES,
    ClipEncoder,
    ClipWeights,
    load_clip,
    resolve_weights,
)
from .labeling import (
    DEFAULT_MAX_IMAGES,
    DEFAULT_METHOD,
    METHOD,
    METHOD_MEAN,
    LabelMethod,
    LabelResult,
    contrast_scores,
    group_embedding,
    group_thumbnail_crops,
    group_thumbnails,
    label_circuit,
    label_images,
    softmax_scores,
    top_labels,
)
from .vocab import BUILTIN_VOCABULARIES, Vocabulary, load_vocabulary, read_vocabulary_file

__all__ = [
    "BUILTIN_VOCABULARIES", "DEFAULT_MAX_IMAGES", "DEFAULT_METHOD", "DEFAULT_MODEL", "DEFAULT_PRETRAINED",
    "DEFAULT_TEMPLATES", "METHOD", "METHOD_MEAN", "ClipEncoder", "ClipWeights", "LabelMethod", "LabelResult",
    "Vocabulary", "contrast_scores", "group_embedding", "group_thumbnail_crops", "group_thumbnails",
    "label_circuit", "label_images", "load_clip", "load_vocabulary", "read_vocabulary_file",
    "resolve_weights", "softmax_scores", "top_labels",
]
