"""Two circuits side by side: two classes of one model, or one class of two models, matched groups linked.

Within one model, groups of the same layer are matched by the share of the class both route through
their shared neurons (`neurflow_kb.compare.group_links`); across models by the cosine of their CLIP
embeddings (`RESEMBLES` in a knowledge base; computed the same way for labelled artifacts).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..artifact import Circuit
from ..compare import circuit_members, group_links
from ..errors import UserError
from ..store.links import DEFAULT_RESEMBLANCE, ResemblanceConfig, resemblances
from .data import CircuitView, from_circuit, group_id

SHARED_NEURONS = "share through shared neurons"
COSINE = "CLIP embedding cosine"


@dataclass
class CompareView:
    """Two `CircuitView`s (group ids prefixed 'A:' / 'B:') and the links between their matched groups:
    dicts with `a`, `b` (group ids), `score` and `label`."""

    title: str
    a: CircuitView
    b: CircuitView
    links: list[dict[str, Any]]
    link_kind: str

    def to_json(self) -> dict[str, Any]:
        """The JSON object the HTML page reads (compare mode)."""
        return {"compare": True, "title": self.title, "a": self.a.to_json(), "b": self.b.to_json(),
                "links": self.links, "link_kind": self.link_kind}

    def matched(self, side: str) -> set[str]:
        """Ids of the groups of side 'a' or 'b' that have a match."""
        return {link[side] for link in self.links}


def prefixed(view: CircuitView, prefix: str) -> CircuitView:
    """A copy of `view` whose group and class ids carry `prefix` (two circuits on one page)."""
    v = copy.deepcopy(view)
    ids = {g["id"]: prefix + g["id"] for g in v.groups}
    cls = v.class_node.get("id", "class")
    ids[cls] = prefix + cls
    for g in v.groups:
        g["id"] = ids[g["id"]]
    for e in v.edges:
        e["source"] = ids.get(e["source"], prefix + e["source"])
        e["target"] = ids.get(e["target"], prefix + e["target"])
    v.class_node["id"] = ids[cls]
    return v


def _links(rows: pd.DataFrame, label: str) -> list[dict[str, Any]]:
    return [{"a": "A:" + a, "b": "B:" + b, "score": float(s), "label": label}
            for a, b, s in zip(rows["a"], rows["b"], rows["score"], strict=True)]


def compare_view(a: CircuitView, b: CircuitView, links: pd.DataFrame, link_kind: str) -> CompareView:
    """Assemble a `CompareView` from two views (unprefixed ids) and link rows (a, b, score)."""
    title = f"{a.title}  vs  {b.title}"
    return CompareView(title, prefixed(a, "A:"), prefixed(b, "B:"), _links(links, link_kind), link_kind)


def _embeddings(c: Circuit) -> tuple[list[str], np.ndarray, str | None]:
    emb = c.group_embeddings.sort_values(["depth", "group"])
    if emb.empty:
        return [], np.zeros((0, 0)), None
    ids = [group_id(d, g) for d, g in zip(emb["depth"], emb["group"], strict=True)]
    encs = set(emb["encoder"].astype(str))
    vectors = np.array([list(v) for v in emb["embedding"]], dtype=np.float64)
    return ids, vectors, encs.pop() if len(encs) == 1 else None


def compare_artifacts(a: Circuit, b: Circuit, config: ResemblanceConfig = DEFAULT_RESEMBLANCE) -> CompareView:
    """Side-by-side view of two artifacts: the same model -> shared-neuron links per layer; different
    models -> cosine links between labelled groups (both artifacts labelled with one CLIP encoder)."""
    va, vb = from_circuit(a), from_circuit(b)
    if a.model == b.model and a.manifest.get("weights") == b.manifest.get("weights"):
        rows = group_links(circuit_members(a), circuit_members(b))
        def ids(keys: pd.Series) -> list[str]:
            return [group_id(d, int(k.rsplit("/", 1)[1])) for d, k in zip(rows["depth"], keys, strict=True)]

        rows = rows.assign(a=ids(rows["group_a"]), b=ids(rows["group_b"]))
        return compare_view(va, vb, rows, SHARED_NEURONS)
    ka, ea, enc_a = _embeddings(a)
    kb, eb, enc_b = _embeddings(b)
    if not ka or not kb or enc_a is None or enc_a != enc_b:
        raise UserError("comparing circuits of two models needs both artifacts labelled with the same CLIP "
                        "encoder (`neurflow-kb label`), whose group embeddings are matched")
    rel = resemblances(ka, ea, kb, eb, enc_a, config)
    return compare_view(va, vb, resemblance_pairs(rel, set(ka)), COSINE)


def resemblance_pairs(rel: pd.DataFrame, side_a: set[str]) -> pd.DataFrame:
    """RESEMBLES rows (either direction) -> one row per (a, b) pair with its cosine."""
    best: dict[tuple[str, str], float] = {}
    for s, t, c in zip(rel["src"], rel["dst"], rel["cosine"], strict=True):
        pair = (s, t) if s in side_a else (t, s)
        best[pair] = max(best.get(pair, -2.0), float(c))
    rows = sorted((a, b, c) for (a, b), c in best.items())
    return pd.DataFrame(rows, columns=["a", "b", "score"])


__all__ = ["COSINE", "SHARED_NEURONS", "CompareView", "compare_artifacts", "compare_view", "prefixed",
           "resemblance_pairs"]
