"""Estimate the number of clusters from the eigengap of the kNN graph.

A graph with K well-separated groups has K eigenvalues of its normalised adjacency near 1
(K near-zero eigenvalues of the normalised Laplacian) and then a drop. The estimate is the K
in ``[k_min, k_max]`` with the largest gap ``mu_K - mu_{K+1}`` between consecutive
eigenvalues (von Luxburg, "A tutorial on spectral clustering", 2007, section 8.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.sparse.linalg import eigsh

from semclust.ops.features import as_feature_matrix
from semclust.ops.knn import knn


@dataclass(frozen=True)
class KEstimate:
    k: int
    eigenvalues: np.ndarray  # of the normalised adjacency, decreasing
    gaps: dict[int, float]  # candidate K -> mu_K - mu_{K+1}


def knn_affinity(features: ArrayLike, n_neighbours: int = 10) -> sp.csr_matrix:
    """Symmetric kNN graph with cosine-similarity weights clipped at 0."""
    x = as_feature_matrix(features)
    indices, similarities = knn(x, n_neighbours)
    n = x.shape[0]
    rows = np.repeat(np.arange(n), indices.shape[1])
    weights = np.clip(similarities.ravel(), 0.0, None) + 1e-6  # keep every edge, even at cosine 0
    graph = sp.csr_matrix((weights, (rows, indices.ravel())), shape=(n, n))
    return graph.maximum(graph.T).tocsr()


def estimate_n_clusters(
    features: ArrayLike, *, k_min: int = 2, k_max: int = 30, n_neighbours: int = 10, random_state: int = 0
) -> KEstimate:
    """The eigengap estimate of K on the kNN graph of ``features`` (rows are items)."""
    x = as_feature_matrix(features)
    n = x.shape[0]
    if k_min < 2 or k_max < k_min:
        raise ValueError(f"need 2 <= k_min <= k_max, got k_min={k_min}, k_max={k_max}")
    if n <= k_max + 1:
        raise ValueError(f"--k auto needs more items than k_max + 1 = {k_max + 1}, got {n}")
    # On tiny inputs a 10-neighbour list would reach across groups; sqrt(n)/2 keeps it inside one.
    affinity = knn_affinity(x, int(min(n_neighbours, max(3, round(np.sqrt(n) / 2)))))
    degree = np.asarray(affinity.sum(axis=1)).ravel()
    scale = sp.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
    normalised = scale @ affinity @ scale
    # eigsh's start vector is random; seed it so the same data gives the same estimate.
    v0 = np.random.default_rng(random_state).random(n)
    values = eigsh(normalised, k=k_max + 1, which="LA", v0=v0, return_eigenvectors=False)
    values = np.sort(values)[::-1]
    gaps = {k: float(values[k - 1] - values[k]) for k in range(k_min, k_max + 1)}
    best = max(gaps, key=lambda k: (gaps[k], -k))
    return KEstimate(k=best, eigenvalues=values, gaps=gaps)
