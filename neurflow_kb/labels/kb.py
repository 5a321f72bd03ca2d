"""Labelling what a knowledge base holds: groups are labelled from the thumbnails stored on them (the
same top-8 exemplar crops an artifact gives; every group of the run with thumbnails is part of the
contrast's reference, as in an artifact), and their labels and embeddings written back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from ..errors import UserError
from .clip import DEFAULT_TEMPLATES, ClipEncoder
from .labeling import DEFAULT_METHOD, METHOD, LabelMethod, label_images
from .vocab import Vocabulary, load_vocabulary


def label_rows(result_labels: pd.DataFrame, vocabulary: str, encoder: str,
               method: str = METHOD) -> pd.DataFrame:
    """`label_images` rows (key = group key) -> LABELED rows for a store: group_key, concept_key, concept,
    vocabulary, score, rank, method, encoder."""
    return pd.DataFrame({
        "group_key": result_labels["key"].astype(str),
        "concept_key": vocabulary + "/" + result_labels["concept"], "concept": result_labels["concept"],
        "vocabulary": vocabulary, "score": result_labels["score"].astype(float),
        "rank": result_labels["rank"].astype("int64"), "method": method, "encoder": encoder})


def label_store(store: Any, clip: ClipEncoder, vocabulary: str | Vocabulary | list[str] = "broad",
                top_n: int = 5, model: str | None = None, cls: str | int | None = None, replace: bool = False,
                templates: tuple[str, ...] = DEFAULT_TEMPLATES,
                progress: Callable[[str, int], None] | None = None, *,
                method: str | LabelMethod = DEFAULT_METHOD) -> str:
    """Label every group of the complete runs (optionally of one model / class) that has thumbnails and
    no labels of this vocabulary, encoder and method yet (all of them with `replace`); returns a summary
    line."""
    from ..queries import run_named
    from ..queries import runs as list_runs

    vocab = load_vocabulary(vocabulary)
    how = LabelMethod.parse(method)
    runs = list_runs(store, model=model, cls=cls)
    if runs.empty:
        raise UserError(f"{store.describe()} has no complete runs to label; add circuits with `neurflow-kb "
                        "ingest` or `neurflow-kb load`")
    labelled = skipped = 0
    recipe = getattr(clip, "recipe", None)
    if recipe is not None:                 # how to load this encoder again (refused if its id is taken)
        store.record_encoders([recipe.to_dict()])
    for run in runs["run"].tolist():
        groups = run_named(store, "label_groups", run=run, vocabulary=vocab.name, encoder=clip.encoder,
                           method=how.name)
        todo = groups if replace else groups[groups["labels"] == 0]
        skipped += len(groups) - len(todo)
        images = {k: list(t or []) for k, t in zip(groups["group_key"], groups["thumbnails"], strict=True)}
        images = {k: v for k, v in images.items() if v}
        wanted = [k for k in todo["group_key"] if k in images]
        if not wanted:
            continue
        layers = dict(zip(groups["group_key"], groups["layer"].astype(str), strict=True))
        result = label_images(images, clip, vocab, top_n, templates, method=how, layers=layers,
                              label_keys=wanted)
        rows = label_rows(result.labels, vocab.name, clip.encoder, result.method)
        emb = pd.DataFrame({"group_key": list(result.embeddings),
                            "embedding": [v.tolist() for v in result.embeddings.values()],
                            "encoder": clip.encoder})
        store.write_labels(rows, emb)
        labelled += len(wanted)
        if progress:
            progress(run, len(wanted))
    return (f"labelled {labelled} groups in {len(runs)} runs with {clip.encoder} ({vocab.name}, "
            f"{len(vocab)} concepts, top {top_n}, {how.name}); {skipped} already labelled"
            + ("" if replace else " (--replace relabels them)"))


__all__ = ["label_store", "label_rows"]
