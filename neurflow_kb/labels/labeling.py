"""Concept labels for neuron groups from CLIP (docs/labels.md: the methods, their reasoning and evaluation).

A group is seen through its exemplar thumbnails (representative crops of its member nodes). Every
thumbnail gets CLIP's zero-shot distribution over the vocabulary (softmax at the model's own temperature).
Two ways to rank concepts:

- ``contrast`` (default): what the group's crops all show *and* the rest of its run does not. The group's
  distribution ``p_g`` is the normalised geometric mean of its crops' distributions, the reference ``p_R``
  the mean distribution of the other groups' crops (of the run, or of the same layer); concepts rank by
  ``p_g(c) * (w * log(p_g(c) / p_R(c)) + 1 - w)``: at w = 1 the concept's term in the KL divergence of the
  group from its reference, at w = 0 the group's own probability. The stored score is ``p_g(c)``.
- ``mean``: the cosine between the renormalised mean image embedding and the concept, scored by the
  softmax over the vocabulary (what the crops show, whatever the other groups show).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import Circuit
from ..errors import UserError
from .clip import DEFAULT_TEMPLATES, ClipEncoder
from .vocab import Vocabulary, load_vocabulary

METHOD_MEAN = "clip-mean-softmax"
#: Thumbnails per group used for labelling; the stores keep the same top 8 (by activation) per group, so
#: labelling an artifact and labelling what a store holds give the same labels.
DEFAULT_MAX_IMAGES = 8
KINDS = ("contrast", "mean")
REFERENCES = ("run", "layer")


@dataclass(frozen=True)
class LabelMethod:
    """How a group's concepts are ranked (docs/labels.md).

    kind: 'contrast' (what sets the group apart from its reference) or 'mean' (mean embedding, the
    method before contrast); reference: 'run' (the other groups of the run) or 'layer' (the other groups
    of its layer, the run's when the layer has no other group); weight: in [0, 1], how much the contrast
    counts against what the crops show (1: only the contrast, 0: only the group's own probability).
    """

    kind: str = "contrast"
    reference: str = "run"
    weight: float = 0.75

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"unknown label method {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.reference not in REFERENCES:
            raise UserError(f"unknown reference {self.reference!r}; use one of {', '.join(REFERENCES)}")
        if not 0.0 <= float(self.weight) <= 1.0:
            raise UserError(f"contrast weight must be between 0 and 1 (got {self.weight})")

    @property
    def name(self) -> str:
        """The id stored as `LABELED.method`, e.g. 'clip-contrast-run-0.75' or 'clip-mean-softmax'."""
        if self.kind == "mean":
            return METHOD_MEAN
        return f"clip-contrast-{self.reference}-{float(self.weight):g}"

    @classmethod
    def parse(cls, spec: str | LabelMethod) -> LabelMethod:
        """A `LabelMethod` from itself, 'contrast', 'mean' or a stored name ('clip-contrast-layer-0.5')."""
        if isinstance(spec, LabelMethod):
            return spec
        text = str(spec).strip()
        if text in ("mean", METHOD_MEAN):
            return cls("mean")
        if text in ("contrast", "clip-contrast"):
            return cls()
        parts = text.split("-")
        if len(parts) == 4 and parts[:2] == ["clip", "contrast"]:
            try:
                return cls("contrast", parts[2], float(parts[3]))
            except ValueError:
                pass
        raise UserError(f"unknown label method {text!r}; use 'contrast', 'mean' or a stored name such as "
                        "'clip-contrast-run-0.75'")


DEFAULT_METHOD = LabelMethod()
#: The stored name of the default method.
METHOD = DEFAULT_METHOD.name


@dataclass
class LabelResult:
    """Labels of many groups: `labels` has one row per (key, concept) with score, rank (1 = best), the
    cosine similarity with the group embedding and the contrast the concepts were ranked by (NaN for the
    mean method); `embeddings` maps each labelled key to its unit image embedding."""

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


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def contrast_scores(crop_similarity: Sequence[np.ndarray], scale: float,
                    contexts: Sequence[Sequence[Hashable]],
                    weight: float = DEFAULT_METHOD.weight) -> tuple[np.ndarray, np.ndarray]:
    """(p_g [G, V], contrast [G, V]) of G groups from their crops' cosine similarities ([n_g, V] each).

    p_g: the normalised geometric mean of the crops' zero-shot distributions softmax(scale * cos) (what
    all of a group's crops show). Reference of group g: the mean distribution over the crops of the
    other groups sharing its first context in `contexts[g]` that has any (e.g. (layer, run)); none
    left: the uniform distribution. contrast = p_g * (weight * log(p_g / p_ref) + 1 - weight).
    """
    n_groups = len(crop_similarity)
    if n_groups == 0:
        return np.zeros((0, 0)), np.zeros((0, 0))
    vocab = crop_similarity[0].shape[1]
    p_g = np.empty((n_groups, vocab))
    sums = np.empty((n_groups, vocab))
    counts = np.empty(n_groups)
    for i, sim in enumerate(crop_similarity):
        logp = _log_softmax(scale * np.asarray(sim, dtype=np.float64))
        mean_log = logp.mean(0)
        q = np.exp(mean_log - mean_log.max())
        p_g[i] = q / q.sum()
        sums[i] = np.exp(logp).sum(0)
        counts[i] = logp.shape[0]
    totals: dict[Hashable, tuple[np.ndarray, float]] = {}
    for i, ctx in enumerate(contexts):
        for c in ctx:
            s, n = totals.get(c, (np.zeros(vocab), 0.0))
            totals[c] = (s + sums[i], n + counts[i])
    contrast = np.empty_like(p_g)
    tiny = np.finfo(np.float64).tiny
    for i, ctx in enumerate(contexts):
        ref = np.full(vocab, 1.0 / vocab)
        for c in ctx:
            s, n = totals[c]
            if n - counts[i] > 0:
                ref = np.maximum((s - sums[i]) / (n - counts[i]), tiny)
                break
        p = np.maximum(p_g[i], tiny)
        contrast[i] = p_g[i] * (weight * np.log(p / ref) + (1.0 - weight))
    return p_g, contrast


def label_images(images: Mapping[Hashable, Sequence[Any]], clip: ClipEncoder,
                 vocabulary: str | Vocabulary | list[str] = "broad", top_n: int = 5,
                 templates: Sequence[str] = DEFAULT_TEMPLATES, *, method: str | LabelMethod = DEFAULT_METHOD,
                 layers: Mapping[Hashable, str] | None = None,
                 label_keys: Collection[Hashable] | None = None) -> LabelResult:
    """Label the groups of one run given as {key: exemplar images (PNG bytes, base64 or PIL)}.

    The groups are each other's reference for the contrast method (`layers` maps keys to layer names,
    needed for reference 'layer'); `label_keys` limits which groups get labels and embeddings (the others
    only serve as reference). Keys without images are left out.
    """
    vocab = load_vocabulary(vocabulary)
    how = LabelMethod.parse(method)
    if top_n < 1:
        raise UserError(f"top_n must be >= 1 (got {top_n})")
    keys = [k for k, ims in images.items() if len(ims)]
    wanted = set(keys) if label_keys is None else set(label_keys) & set(keys)
    columns = ["key", "concept", "score", "rank", "similarity", "contrast"]
    if not wanted:
        return LabelResult(pd.DataFrame(columns=columns), {}, clip.encoder, vocab.name, how.name)
    if how.kind == "mean":
        keys = [k for k in keys if k in wanted]      # no reference needed: embed only what is labelled
    if how.kind == "contrast" and how.reference == "layer":
        missing = [k for k in keys if layers is None or k not in layers]
        if missing:
            raise UserError(f"reference 'layer' needs the layer of every group (none for {missing[0]!r})")
    flat = [im for k in keys for im in images[k]]
    bounds = np.cumsum([0, *(len(images[k]) for k in keys)])
    emb = clip.encode_images(flat).astype(np.float64)
    text = clip.encode_concepts(list(vocab.concepts), templates).astype(np.float64)
    groups = np.stack([group_embedding(emb[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    sim = groups.astype(np.float64) @ text.T
    if how.kind == "mean":
        score, order_by = softmax_scores(sim, clip.logit_scale), sim
        contrast = np.full_like(sim, np.nan)
    else:
        crops = [emb[a:b] @ text.T for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        contexts = [(("layer", layers[k]), "run") if how.reference == "layer" and layers is not None
                    else ("run",) for k in keys]
        score, contrast = contrast_scores(crops, clip.logit_scale, contexts, how.weight)
        order_by = contrast
    n = min(top_n, len(vocab))
    rows = []
    for i, key in enumerate(keys):
        if key not in wanted:
            continue
        order = np.argsort(-order_by[i], kind="stable")[:n]
        for rank, j in enumerate(order, start=1):
            rows.append((key, vocab.concepts[j], float(score[i, j]), rank, float(sim[i, j]),
                         float(contrast[i, j])))
    labels = pd.DataFrame(rows, columns=columns)
    embeddings = {k: groups[i] for i, k in enumerate(keys) if k in wanted}
    return LabelResult(labels, embeddings, clip.encoder, vocab.name, how.name)


def group_thumbnail_crops(circuit: Circuit, max_images: int = DEFAULT_MAX_IMAGES) -> pd.DataFrame:
    """The thumbnails labelling uses: each group's representative exemplar crops, each crop once,
    strongest activation first, at most `max_images` per group (columns depth, group, crop, png)."""
    ex = circuit.exemplars
    ex = ex[ex["representative"].astype(bool)]
    nodes = circuit.nodes[["depth", "neuron", "subconcept", "group"]]
    ex = ex.merge(nodes, on=["depth", "neuron", "subconcept"], how="inner")
    ex = ex.merge(circuit.thumbnails[["crop", "png"]], on="crop", how="inner")
    ex = ex.sort_values(["depth", "group", "activation", "crop"], ascending=[True, True, False, True])
    ex = ex.drop_duplicates(["depth", "group", "crop"])
    ex = ex.groupby(["depth", "group"], sort=False).head(max_images)
    return ex[["depth", "group", "crop", "png"]].reset_index(drop=True)


def group_thumbnails(circuit: Circuit,
                     max_images: int = DEFAULT_MAX_IMAGES) -> dict[tuple[int, int], list[bytes]]:
    """PNG thumbnails of each group's representative exemplar crops, strongest activation first,
    each crop once, at most `max_images` per group: {(depth, group): [png, ...]}."""
    ex = group_thumbnail_crops(circuit, max_images)
    out: dict[tuple[int, int], list[bytes]] = {}
    for d, g, png in zip(ex["depth"].tolist(), ex["group"].tolist(), ex["png"].tolist(), strict=True):
        out.setdefault((int(d), int(g)), []).append(bytes(png))
    return out


def label_circuit(circuit: Circuit, clip: ClipEncoder, vocabulary: str | Vocabulary | list[str] = "broad",
                  top_n: int = 5, templates: Sequence[str] = DEFAULT_TEMPLATES,
                  max_images: int = DEFAULT_MAX_IMAGES, *,
                  method: str | LabelMethod = DEFAULT_METHOD) -> Circuit:
    """A copy of `circuit` whose `labels` and `group_embeddings` tables hold the top `top_n` concepts of
    every group (from its exemplar thumbnails; the run's other groups are the contrast's reference) and
    its CLIP image embedding."""
    vocab = load_vocabulary(vocabulary)
    how = LabelMethod.parse(method)
    thumbs = group_thumbnails(circuit, max_images)
    layer_of = {(int(d), int(g)): str(layer) for d, g, layer in
                zip(circuit.groups["depth"], circuit.groups["group"], circuit.groups["layer"], strict=True)}
    layers = {k: layer_of.get(k, str(k[0])) for k in thumbs}
    result = label_images(thumbs, clip, vocab, top_n, templates, method=how, layers=layers)
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
                          "vocabulary_size": len(vocab), **dataclasses.asdict(how)}
    recipe = getattr(clip, "recipe", None)
    if recipe is not None:              # how to load the encoder again (recorded by the stores)
        manifest["labels"]["recipe"] = recipe.to_dict()
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


__all__ = ["METHOD", "METHOD_MEAN", "DEFAULT_METHOD", "DEFAULT_MAX_IMAGES", "KINDS", "REFERENCES",
           "LabelMethod", "LabelResult", "label_images", "label_circuit", "group_thumbnails",
           "group_thumbnail_crops", "group_embedding", "softmax_scores", "contrast_scores", "top_labels"]
