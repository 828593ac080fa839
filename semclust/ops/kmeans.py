"""(Spherical) k-means with faiss, configured so it never quietly trains on a subsample."""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np
from numpy.typing import ArrayLike

from semclust.ops.features import as_feature_matrix, check_positive_int, l2_normalize


@dataclass(frozen=True)
class KMeansResult:
    """Outcome of one k-means run.

    ``labels`` int64[n]; ``centers`` float32[K, d] (unit-norm when spherical); ``inertia`` is
    the sum of squared Euclidean distances from each (normalised, when spherical) point to
    its center; ``objective`` is what the run optimised: the summed cosine similarity to the
    assigned center when spherical (higher is better), otherwise the inertia (lower is
    better); ``n_train`` is how many points faiss trained on.
    """

    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    objective: float
    n_train: int


def assign_to_centers(
    features: ArrayLike, centers: ArrayLike, *, spherical: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest center for each row: ``(labels int64[n], scores float32[n])``.

    Spherical assignment L2-normalises both sides and maximises cosine similarity (the score
    is that similarity); otherwise it minimises Euclidean distance on the raw rows (the score
    is the squared distance).
    """
    x = as_feature_matrix(features, name="features")
    c = as_feature_matrix(centers, name="centers")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"features have dimension {x.shape[1]} but centers have {c.shape[1]}")
    if spherical:
        x, c = l2_normalize(x), l2_normalize(c)
        index: faiss.Index = faiss.IndexFlatIP(c.shape[1])
    else:
        index = faiss.IndexFlatL2(c.shape[1])
    index.add(c)
    scores, labels = index.search(x, 1)
    return labels[:, 0].astype(np.int64), scores[:, 0].astype(np.float32)


def _inertia(x: np.ndarray, centers: np.ndarray, labels: np.ndarray, block_size: int = 65536) -> float:
    """Sum of squared distances to the assigned centers, in row blocks: a float64 copy of the
    whole ``[n, d]`` difference would be 4 GB at n = 1e6, d = 512."""
    total = 0.0
    for start in range(0, x.shape[0], block_size):
        diff = (x[start : start + block_size] - centers[labels[start : start + block_size]]).astype(np.float64)
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


def spherical_kmeans(
    features: ArrayLike,
    n_clusters: int,
    *,
    n_init: int = 5,
    max_iter: int = 100,
    random_state: int = 0,
    max_points_per_centroid: int | None = None,
    spherical: bool = True,
) -> KMeansResult:
    """Cluster ``features`` into ``n_clusters`` groups with faiss k-means.

    When ``spherical`` (the default) rows are L2-normalised, centers are kept unit-norm and
    points go to the most cosine-similar center; otherwise this is plain Euclidean k-means
    on the rows as given.

    ``n_init`` is faiss's ``nredo``: independent restarts, keeping the best objective.
    ``max_iter`` is faiss's ``niter``; faiss always runs all of them.

    faiss trains on a random subsample of ``n_clusters * max_points_per_centroid`` points
    whenever there are more points than that (its own default is 256 per centroid). The
    default here, ``ceil(n / n_clusters) + 1``, is large enough that every point is used.
    Pass a smaller number to subsample deliberately for speed on very large inputs; the
    final labels still cover every point, by assignment to the trained centers.

    The same ``random_state`` gives the same labels on the same input.
    """
    x = as_feature_matrix(features, name="features")
    n, dim = x.shape
    k = check_positive_int(n_clusters, "n_clusters")
    if k < 2 or k > n:
        raise ValueError(f"need 2 <= n_clusters <= n, got n_clusters={k} and n={n}")
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    if max_points_per_centroid is None:
        max_points_per_centroid = math.ceil(n / k) + 1
    max_points_per_centroid = check_positive_int(max_points_per_centroid, "max_points_per_centroid")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(f"random_state must be an integer, got {random_state!r}")
    if spherical:
        x = l2_normalize(x)

    kmeans = faiss.Kmeans(
        dim,
        k,
        niter=max_iter,
        nredo=n_init,
        seed=int(random_state),
        spherical=spherical,
        max_points_per_centroid=max_points_per_centroid,
        # faiss's "please provide at least 39 points per centroid" is advisory and is
        # printed straight to C stderr, where callers cannot filter it.
        min_points_per_centroid=1,
        verbose=False,
    )
    kmeans.train(x)
    centers = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    if spherical:
        centers = l2_normalize(centers)
    labels, scores = assign_to_centers(x, centers, spherical=spherical)

    # faiss's own objective trace mixes every restart, so report the chosen run's value.
    if spherical:
        objective = float(scores.astype(np.float64).sum())
        inertia = _inertia(x, centers, labels)
    else:
        inertia = float(scores.astype(np.float64).sum())
        objective = inertia
    return KMeansResult(
        labels=labels,
        centers=centers,
        inertia=inertia,
        objective=objective,
        n_train=min(n, k * max_points_per_centroid),
    )
