"""Concept labels for neuron groups from CLIP (docs/labels.md has the method and its reasoning).

A group is seen through its exemplar thumbnails (representative crops of its member nodes). Its image
embedding is the renormalised mean of the thumbnails' unit CLIP embeddings; every concept's text
embedding is the renormalised mean over prompt templates. The cosine similarity ranks the concepts, and
the score is the softmax over the whole vocabulary at the model's own temperature (`logit_scale`): the
probability CLIP's zero-shot classifier gives the concept for that group, comparable across groups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import Circuit
from ..errors import UserError
from .clip import DEFAULT_TEMPLATES, ClipEncoder
from .vocab import Vocabulary, load_vocabulary

METHOD = "clip-mean-softmax"
#: Thumbnails per group used for labelling; the stores keep the same top 8 (by activation) per group, so
#: labelling an artifact and labelling what a store holds give the same labels.
DEFAULT_MAX_IMAGES = 8


@dataclass
class LabelResult:
    """Labels of many groups: `labels` has one row per (key, concept) with score, rank (1 = best) and
    cosine similarity; `embeddings` maps each labelled key to its unit image embedding."""

    labels: pd.DataFrame
    embeddings: dict[Hashable, np.ndarray]
    encoder: str
    vocabulary: str
    method: str = METHOD


def softmax_scores(similarity: np.ndarray, scale: float) -> np.ndarray:
    """Row-wise softmax of `scale * similarity` (the zero-shot probabilities over the vocabulary)."""
    z = scale * similarity.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def group_embedding(image_embeddings: np.ndarray) -> np.ndarray:
    """The renormalised mean of unit image embeddings ([N, D] -> [D])."""
    mean = image_embeddings.astype(np.float64).mean(0)
    norm = float(np.linalg.norm(mean))
    if norm == 0.0:
        raise UserError("a group's exemplar embeddings cancel out exactly; it cannot be labelled")
    return (mean / norm).astype(np.float32)


def label_images(images: Mapping[Hashable, Sequence[Any]], clip: ClipEncoder,
                 vocabulary: str | Vocabulary | list[str] = "broad", top_n: int = 5,
                 templates: Sequence[str] = DEFAULT_TEMPLATES) -> LabelResult:
    """Label groups given as {key: exemplar images (PNG bytes, base64 or PIL)}; keys without images are
    left out."""
    vocab = load_vocabulary(vocabulary)
    if top_n < 1:
        raise UserError(f"top_n must be >= 1 (got {top_n})")
    keys = [k for k, ims in images.items() if len(ims)]
    columns = ["key", "concept", "score", "rank", "similarity"]
    if not keys:
        return LabelResult(pd.DataFrame(columns=columns), {}, clip.encoder, vocab.name)
    flat = [im for k in keys for im in images[k]]
    counts = [len(images[k]) for k in keys]
    emb = clip.encode_images(flat)
    bounds = np.cumsum([0, *counts])
    groups = np.stack([group_embedding(emb[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    text = clip.encode_concepts(list(vocab.concepts), templates)
    sim = groups.astype(np.float64) @ text.T.astype(np.float64)
    prob = softmax_scores(sim, clip.logit_scale)
    n = min(top_n, len(vocab))
    rows = []
    for i, key in enumerate(keys):
        order = np.argsort(-sim[i], kind="stable")[:n]
        for rank, j in enumerate(order, start=1):
            rows.append((key, vocab.concepts[j], float(prob[i, j]), rank, float(sim[i, j])))
    labels = pd.DataFrame(rows, columns=columns)
    return LabelResult(labels, {k: groups[i] for i, k in enumerate(keys)}, clip.encoder, vocab.name)


def group_thumbnails(circuit: Circuit,
                     max_images: int = DEFAULT_MAX_IMAGES) -> dict[tuple[int, int], list[bytes]]:
    """PNG thumbnails of each group's representative exemplar crops, strongest activation first,
    each crop once, at most `max_images` per group: {(depth, group): [png, ...]}."""
    ex = circuit.exemplars
    ex = ex[ex["representative"].astype(bool)]
    nodes = circuit.nodes[["depth", "neuron", "subconcept", "group"]]
    ex = ex.merge(nodes, on=["depth", "neuron", "subconcept"], how="inner")
    ex = ex.merge(circuit.thumbnails[["crop", "png"]], on="crop", how="inner")
    ex = ex.sort_values(["depth", "group", "activation", "crop"], ascending=[True, True, False, True])
    ex = ex.drop_duplicates(["depth", "group", "crop"])
    ex = ex.groupby(["depth", "group"], sort=False).head(max_images)
    out: dict[tuple[int, int], list[bytes]] = {}
    for d, g, png in zip(ex["depth"].tolist(), ex["group"].tolist(), ex["png"].tolist(), strict=True):
        out.setdefault((int(d), int(g)), []).append(bytes(png))
    return out


def label_circuit(circuit: Circuit, clip: ClipEncoder, vocabulary: str | Vocabulary | list[str] = "broad",
                  top_n: int = 5, templates: Sequence[str] = DEFAULT_TEMPLATES,
                  max_images: int = DEFAULT_MAX_IMAGES) -> Circuit:
    """A copy of `circuit` whose `labels` and `group_embeddings` tables hold the top `top_n` concepts of
    every group (from its exemplar thumbnails) and its CLIP image embedding."""
    vocab = load_vocabulary(vocabulary)
    thumbs = group_thumbnails(circuit, max_images)
    result = label_images(thumbs, clip, vocab, top_n, templates)
    layer_of = {(int(d), int(g)): str(layer) for d, g, layer in
                zip(circuit.groups["depth"], circuit.groups["group"], circuit.groups["layer"], strict=True)}
    lab = result.labels
    labels = pd.DataFrame({
        "depth": [k[0] for k in lab["key"]], "group": [k[1] for k in lab["key"]],
        "layer": [layer_of.get(k, "") for k in lab["key"]], "concept": lab["concept"],
        "vocabulary": result.vocabulary, "score": lab["score"], "rank": lab["rank"],
        "method": result.method, "encoder": result.encoder})
    keys = sorted(result.embeddings)
    embeddings = pd.DataFrame({
        "depth": [k[0] for k in keys], "layer": [layer_of.get(k, "") for k in keys],
        "group": [k[1] for k in keys], "embedding": [result.embeddings[k].tolist() for k in keys],
        "encoder": result.encoder})
    tables = dict(circuit.tables)
    tables["labels"] = labels.sort_values(["depth", "group", "rank"], ascending=[False, True, True])
    tables["group_embeddings"] = embeddings
    manifest = dict(circuit.manifest)
    manifest["labels"] = {"encoder": result.encoder, "vocabulary": result.vocabulary, "method": result.method,
                          "top_n": int(top_n), "templates": list(templates), "max_images": int(max_images),
                          "vocabulary_size": len(vocab)}
    return dataclasses.replace(circuit, manifest=manifest, tables=tables)


def top_labels(circuit: Circuit, per_group: int = 3) -> dict[tuple[int, int], list[tuple[str, float]]]:
    """{(depth, group): [(concept, score), ...]} from a labelled circuit, best first."""
    lab = circuit.labels.sort_values(["depth", "group", "rank"])
    out: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for d, g, c, s in zip(lab["depth"], lab["group"], lab["concept"], lab["score"], strict=True):
        items = out.setdefault((int(d), int(g)), [])
        if len(items) < per_group:
            items.append((str(c), float(s)))
    return out


__all__ = ["METHOD", "DEFAULT_MAX_IMAGES", "LabelResult", "label_images", "label_circuit", "group_thumbnails",
           "group_embedding", "softmax_scores", "top_labels"]
