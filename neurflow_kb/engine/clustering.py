"""Ward clustering with the number of clusters chosen by silhouette (sub-concepts and neuron groups).

One Ward linkage is computed and cut at every K (Ward hierarchies are nested), and silhouettes come from
one precomputed distance matrix (NEURFLOW.md section 8, recipe 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform
from sklearn.metrics import silhouette_samples


@dataclass
class Clustering:
    """Labels 0..K-1 in order of first appearance, K, the mean silhouette and per-point silhouettes."""

    labels: np.ndarray
    k: int
    silhouette: float
    samples: np.ndarray


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters by first appearance so equal partitions get equal labels."""
    mapping: dict[int, int] = {}
    for lab in labels:
        mapping.setdefault(int(lab), len(mapping))
    return np.array([mapping[int(lab)] for lab in labels], dtype=np.int64)


def ward_silhouette(
    points: np.ndarray,
    k_max: int,
    *,
    k_min: int = 2,
    min_silhouette: float | None = None,
) -> Clustering:
    """Ward + Euclidean clustering of `points` [P, D], K in k_min..min(k_max, P-1) by best silhouette.

    The first maximum wins (ties keep the smaller K), as in the official code. With `min_silhouette`
    set, a best silhouette below it yields a single cluster (NEURFLOW.md section 11, item 7). With fewer
    than three points every point is its own cluster (or one cluster if `min_silhouette` is set).
    """
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    nan_samples = np.full(n, np.nan)
    if n == 0:
        return Clustering(np.zeros(0, dtype=np.int64), 0, float("nan"), nan_samples)
    if n < 3:
        if min_silhouette is not None or n == 1:
            return Clustering(np.zeros(n, dtype=np.int64), 1, float("nan"), nan_samples)
        return Clustering(np.arange(n, dtype=np.int64), n, float("nan"), nan_samples)
    tree = linkage(pts, method="ward", metric="euclidean")
    dist = squareform(pdist(pts))
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for k in range(k_min, min(k_max, n - 1) + 1):
        labels = fcluster(tree, t=k, criterion="maxclust")
        if len(np.unique(labels)) < 2:
            continue
        samples = silhouette_samples(dist, labels, metric="precomputed")
        score = float(samples.mean())
        if best is None or score > best[0]:
            best = (score, labels, samples)
    if best is None:
        return Clustering(np.zeros(n, dtype=np.int64), 1, float("nan"), nan_samples)
    score, labels, samples = best
    if min_silhouette is not None and score < min_silhouette:
        return Clustering(np.zeros(n, dtype=np.int64), 1, score, nan_samples)
    canon = _canonical(labels)
    return Clustering(canon, int(canon.max()) + 1, score, samples)
