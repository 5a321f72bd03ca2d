"""Ward clustering with the number of clusters chosen by silhouette (sub-concepts and neuron groups).

One Ward linkage is computed and cut at every K (Ward hierarchies are nested), and silhouettes come from
one precomputed distance matrix (NEURFLOW.md section 8, recipe 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform


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


def silhouette_samples(dist: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-point silhouette from a precomputed distance matrix (scikit-learn's definition: 0 for points
    alone in their cluster), as one matrix product instead of a loop over clusters."""
    _, inverse = np.unique(labels, return_inverse=True)
    onehot = np.eye(int(inverse.max()) + 1)[inverse]              # [P, K]
    sizes = onehot.sum(0)
    sums = dist @ onehot                                           # distance of each point to each cluster
    own = sizes[inverse]
    a = sums[np.arange(len(labels)), inverse] / np.maximum(own - 1, 1)
    mean_other = sums / sizes
    mean_other[np.arange(len(labels)), inverse] = np.inf
    b = mean_other.min(1)
    denom = np.maximum(a, b)
    s = np.divide(b - a, denom, out=np.zeros_like(a), where=denom > 0)
    return np.where(own > 1, s, 0.0)


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
    condensed = pdist(pts)
    tree = linkage(condensed, method="ward")      # Ward on Euclidean distances, computed once
    dist = squareform(condensed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for k in range(k_min, min(k_max, n - 1) + 1):
        labels = fcluster(tree, t=k, criterion="maxclust")
        if len(np.unique(labels)) < 2:
            continue
        samples = silhouette_samples(dist, labels)
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
