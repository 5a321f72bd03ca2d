"""Relationships derived from several runs: `RESEMBLES` between groups of different models.

Runs of different models that explain the same class (same class name, case-insensitive; the same
index where a class has no name) and whose groups carry CLIP embeddings of the same encoder are
matched group by group: a -> b when b is among the `top` groups of b's run with the largest cosine to a,
and the cosine reaches `min_cosine`. The relationships of a run pair depend only on those two runs, so
writing (or labelling) a run rewrites just the pairs it is part of: the result is the same whatever
order runs arrive in, and rewriting changes nothing. Cosines are computed here in float64 from the
stored (float32) embeddings, so both stores write the same values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

RESEMBLES_KEY = ("RESEMBLES", "NeuronGroup", "NeuronGroup")
RESEMBLES_COLUMNS = ["src", "dst", "cosine", "encoder", "rank"]


@dataclass(frozen=True)
class ResemblanceConfig:
    """How many groups of the other run each group links to, and the least cosine that counts."""

    top: int = 3
    min_cosine: float = 0.5


DEFAULT_RESEMBLANCE = ResemblanceConfig()


def resemblances(keys_a: list[str], emb_a: np.ndarray, keys_b: list[str], emb_b: np.ndarray, encoder: str,
                 config: ResemblanceConfig = DEFAULT_RESEMBLANCE) -> pd.DataFrame:
    """RESEMBLES rows both ways between two runs' groups: each group of one run -> its `top` closest
    groups of the other (cosine >= `min_cosine`), rank 1 = closest, ties broken by key."""
    rows: list[tuple[str, str, float, str, int]] = []
    if len(keys_a) and len(keys_b):
        a = _unit(emb_a)
        b = _unit(emb_b)
        cos = a @ b.T
        for src_keys, dst_keys, m in ((keys_a, keys_b, cos), (keys_b, keys_a, cos.T)):
            order_dst = np.argsort(np.asarray(dst_keys, dtype=object), kind="stable")
            for i, src in enumerate(src_keys):
                row = m[i, order_dst]
                best = order_dst[np.argsort(-row, kind="stable")[: config.top]]
                for rank, j in enumerate(best, start=1):
                    if m[i, j] >= config.min_cosine:
                        rows.append((src, dst_keys[j], float(m[i, j]), encoder, rank))
    return pd.DataFrame(rows, columns=RESEMBLES_COLUMNS)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _class_of(name: Any, index: Any) -> str:
    return f"name:{str(name).strip().lower()}" if isinstance(name, str) and name.strip() else f"index:{index}"


def link_runs(store: Any, keys: Iterable[str], config: ResemblanceConfig = DEFAULT_RESEMBLANCE) -> int:
    """Rewrite the RESEMBLES relationships of the run pairs that involve any of `keys` (complete runs);
    returns how many were written. Uses only the store's `_read`, `_write` and `_insert_rels`."""
    keys = sorted(set(keys))
    if not keys:
        return 0
    _, rows = store._read(  # noqa: SLF001
        "MATCH (r:Run)-[:EXPLAINS]->(c:Class) WHERE r.status = 'complete' "
        "RETURN r.key, r.model, c.`index`, coalesce(c.name, r.class_name)")
    runs = {k: (m, _class_of(n, i)) for k, m, i, n in rows}
    changed = [k for k in keys if k in runs]
    pairs = sorted({tuple(sorted((k, o))) for k in changed for o, (m, c) in runs.items()
                    if m != runs[k][0] and c == runs[k][1]})
    for part in _chunks(changed, 500):
        store._write("MATCH (a:NeuronGroup)-[x:RESEMBLES]->(:NeuronGroup) WHERE a.run IN $runs DELETE x",  # noqa: SLF001
                     {"runs": part})
        store._write("MATCH (:NeuronGroup)-[x:RESEMBLES]->(b:NeuronGroup) WHERE b.run IN $runs DELETE x",  # noqa: SLF001
                     {"runs": part})
    if not pairs:
        return 0
    involved = sorted({k for p in pairs for k in p})
    groups: dict[str, list[tuple[str, str, list[float]]]] = {}
    for part in _chunks(involved, 500):
        _, got = store._read(  # noqa: SLF001
            "MATCH (g:NeuronGroup) WHERE g.run IN $runs AND g.embedding IS NOT NULL "
            "RETURN g.run, g.key, g.embedding_encoder, g.embedding", {"runs": part})
        for run, key, enc, emb in got:
            groups.setdefault(run, []).append((str(key), str(enc), list(emb)))
    frames = []
    for ra, rb in pairs:
        a, b = groups.get(ra, []), groups.get(rb, [])
        for enc in sorted({e for _, e, _ in a} & {e for _, e, _ in b}):
            ga = sorted((k, v) for k, e, v in a if e == enc)
            gb = sorted((k, v) for k, e, v in b if e == enc)
            da, db = {len(v) for _, v in ga}, {len(v) for _, v in gb}
            if len(da) != 1 or da != db:
                continue
            frames.append(resemblances([k for k, _ in ga], np.array([v for _, v in ga]),
                                       [k for k, _ in gb], np.array([v for _, v in gb]), enc, config))
    rels = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESEMBLES_COLUMNS)
    if len(rels):
        store._insert_rels(RESEMBLES_KEY, rels.astype({"cosine": float, "rank": "int64"}))  # noqa: SLF001
    return len(rels)


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


__all__ = ["DEFAULT_RESEMBLANCE", "RESEMBLES_KEY", "ResemblanceConfig", "link_runs", "resemblances"]
