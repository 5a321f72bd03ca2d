"""Writes that annotate runs already in the store: concept labels with their embeddings, and the
activations of a debugged image."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from .checks import check_rows
from .core import StoreCore
from .encoders import record_encoders, recorded_encoders
from .graph import GraphRows, conform


class LabelWriter(StoreCore):
    """`record_encoders`, `write_labels` and `write_activations`."""

    # label encoders (`store.encoders`) ------------------------------------------------------------
    def record_encoders(self, recipes: Iterable[dict[str, Any]]) -> int:
        """Record how to load label encoders again (`Encoder` nodes; a known id with other weights is
        refused); returns how many were new."""
        recipes = list(recipes)
        if not recipes:
            return 0
        self._check_writable()
        self.init_schema()
        return record_encoders(self, recipes)

    def encoders(self) -> pd.DataFrame:
        """The recorded encoder recipes (key = encoder id, kind, model, pretrained, checkpoint, digest)."""
        return recorded_encoders(self)

    # labels and image activations (written to complete runs after the fact) ---------------------
    def write_labels(self, labels: pd.DataFrame, embeddings: pd.DataFrame | None = None) -> int:
        """Label groups: `labels` rows (group_key, concept_key, concept, vocabulary, score, rank, method,
        encoder) become Concept nodes and LABELED relationships, replacing the labels those groups had
        from the same vocabulary, encoder and method; `embeddings` rows (group_key, embedding, encoder)
        set NeuronGroup.embedding (stored as float32 on both stores). Returns the LABELED count written."""
        self._check_writable()
        self.init_schema()
        emb = embeddings if embeddings is not None else pd.DataFrame(columns=["group_key", "embedding",
                                                                               "encoder"])
        wanted = sorted(set(labels["group_key"].astype(str)) | set(emb["group_key"].astype(str)))
        if not wanted:
            return 0
        _, got = self._read("MATCH (g:NeuronGroup) WHERE g.key IN $keys RETURN g.key", {"keys": wanted})
        missing = sorted(set(wanted) - {r[0] for r in got})
        if missing:
            raise UserError(f"{len(missing)} groups to label are not in {self.describe()} "
                            f"(e.g. {missing[0]!r}); write their runs first")
        rkey = ("LABELED", "NeuronGroup", "Concept")
        concepts = pd.DataFrame({"key": labels["concept_key"].astype(str),
                                 "text": labels["concept"].astype(str),
                                 "vocabulary": labels["vocabulary"].astype(str)}).drop_duplicates("key")
        rel = pd.DataFrame({"src": labels["group_key"].astype(str), "dst": labels["concept_key"].astype(str),
                            "score": labels["score"].astype(float), "rank": labels["rank"].astype("int64"),
                            "method": labels["method"].astype(str), "encoder": labels["encoder"].astype(str)})
        check_rows(GraphRows(nodes={"Concept": concepts}, rels={rkey: rel}), "the labels to write")
        combos = labels[["vocabulary", "encoder", "method"]].drop_duplicates()
        for voc, enc, method in combos.itertuples(index=False):
            keys = sorted(set(labels[(labels["vocabulary"] == voc) & (labels["encoder"] == enc)
                                     & (labels["method"] == method)]["group_key"].astype(str)))
            self._write("MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept) WHERE g.key IN $keys AND "
                        "k.vocabulary = $voc AND l.encoder = $enc AND l.method = $method DELETE l",
                        {"keys": keys, "voc": voc, "enc": enc, "method": method})
        if len(labels):
            self._insert_missing("Concept", concepts)
            self._insert_rels(rkey, conform(GraphRows(rels={rkey: rel})).rels[rkey])
        for key, vec, enc in zip(emb["group_key"], emb["embedding"], emb["encoder"], strict=True):
            values = np.asarray(vec, dtype=np.float32).astype(float).tolist()
            self._write("MATCH (g:NeuronGroup) WHERE g.key = $k SET g.embedding = $e, "
                        "g.embedding_encoder = $enc", {"k": str(key), "e": values, "enc": str(enc)})
        if len(emb):
            self.link_runs({str(k).split("/", 1)[0] for k in emb["group_key"]})
        return len(labels)

    def write_activations(self, image: dict[str, Any], rels: pd.DataFrame, run: str) -> int:
        """An Image node (key, uri, label, predicted) and its ACTIVATES {score, crop} relationships to
        groups of run `run`, replacing what an earlier write of that image gave the same run."""
        self._check_writable()
        self.init_schema()
        key = str(image["key"])
        rel = pd.DataFrame({"src": key, "dst": rels["dst"].astype(str),
                            "score": rels["score"].astype(float), "crop": rels["crop"].astype("int64")})
        _, have = self._read("MATCH (g:NeuronGroup) WHERE g.run = $run RETURN g.key", {"run": run})
        unknown = sorted(set(rel["dst"]) - {r[0] for r in have})
        if unknown:
            raise UserError(f"{unknown[0]!r} is not a group of run {run!r}; activations go to its own groups")
        node = pd.DataFrame({"key": [key], "uri": [image.get("uri")], "label": [image.get("label")],
                             "predicted": [image.get("predicted")]})
        _, got = self._read("MATCH (i:Image) WHERE i.key = $k RETURN i.key", {"k": key})
        if got:
            self._write("MATCH (i:Image) WHERE i.key = $k SET i.uri = $uri, i.label = $label, "
                        "i.predicted = $predicted", {"k": key, "uri": image.get("uri"),
                                                     "label": image.get("label"),
                                                     "predicted": image.get("predicted")})
        else:
            self._insert_nodes("Image", conform(GraphRows(nodes={"Image": node})).nodes["Image"], merge=True)
        self._write("MATCH (i:Image)-[a:ACTIVATES]->(g:NeuronGroup) WHERE i.key = $k AND g.run = $run "
                    "DELETE a", {"k": key, "run": run})
        if len(rel):
            self._insert_rels(("ACTIVATES", "Image", "NeuronGroup"), rel)
        return len(rel)


__all__ = ["LabelWriter"]
