"""CLIP concept labels for neuron groups (open_clip) and the vocabularies they come from.

``label_circuit(circuit, load_clip(), "broad")`` fills a circuit's `labels` and `group_embeddings`
tables; `docs/labels.md` describes the method.
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
    METHOD,
    LabelResult,
    group_embedding,
    group_thumbnails,
    label_circuit,
    label_images,
    softmax_scores,
    top_labels,
)
from .vocab import BUILTIN_VOCABULARIES, Vocabulary, load_vocabulary, read_vocabulary_file

__all__ = [
    "BUILTIN_VOCABULARIES", "DEFAULT_MAX_IMAGES", "DEFAULT_MODEL", "DEFAULT_PRETRAINED", "DEFAULT_TEMPLATES",
    "METHOD", "ClipEncoder", "ClipWeights", "LabelResult", "Vocabulary", "group_embedding",
    "group_thumbnails", "label_circuit", "label_images", "load_clip", "load_vocabulary",
    "read_vocabulary_file", "resolve_weights", "softmax_scores", "top_labels",
]
