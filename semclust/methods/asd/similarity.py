"""ASD's similarity between instance classes and their grouping into K clusters.

Transitions (an image predicted ``a`` at one record and ``b != a`` at the next) and
co-predictions (an image's two most probable classes) count how close two instance classes
are; :func:`group_instances` clusters the row-normalised similarity; :func:`confident_members`
keeps the members most firmly inside their group; :func:`align_groups` renames a later round's
groups to agree with the previous model's predictions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SIMILARITIES = ("transitions", "features", "combined")
GROUPINGS = ("spectral", "agglomerative")
FEATURE_TEMPERATURE = 0.1  # cosine / T inside exp(): sharp enough that same-class pairs dominate a row


def count_transitions(records: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """``T[a, b]`` = number of (image, consecutive record pair) predicted ``a`` then ``b != a``."""
    t = np.zeros((n_classes, n_classes), dtype=np.int64)
    for prev, cur in zip(records[:-1], records[1:]):
        prev, cur = np.asarray(prev, dtype=np.int64), np.asarray(cur, dtype=np.int64)
        moved = prev != cur
        np.add.at(t, (prev[moved], cur[moved]), 1)
    return t


def count_co_predictions(top2: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """Symmetric ``C[a, b]``: how often ``a`` and ``b`` were an image's two most probable classes."""
    c = np.zeros((n_classes, n_classes), dtype=np.int64)
    for pairs in top2:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        np.add.at(c, (pairs[:, 0], pairs[:, 1]), 1)
        np.add.at(c, (pairs[:, 1], pairs[:, 0]), 1)
    return c


def _row_normalised_off_diagonal(s: np.ndarray) -> np.ndarray:
    """``s`` with a zero diagonal, each row divided by its sum (rows summing to 0 stay zero)."""
    np.fill_diagonal(s, 0.0)
    sums = s.sum(axis=1, keepdims=True)
    return np.divide(s, sums, out=np.zeros_like(s), where=sums > 0)


def transition_similarity(transitions: np.ndarray, co_predictions: np.ndarray | None = None) -> np.ndarray:
    """``S = T + T^T (+ C)``, each row divided by its sum (rows with no counts stay zero)."""
    t = np.asarray(transitions, dtype=np.float64)
    s = t + t.T
    if co_predictions is not None:
        s = s + np.asarray(co_predictions, dtype=np.float64)
    return _row_normalised_off_diagonal(s)


def feature_similarity(features: np.ndarray, temperature: float = FEATURE_TEMPERATURE) -> np.ndarray:
    """``exp(cos(f_a, f_b) / T)`` off the diagonal, each row divided by its sum."""
    f = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.where(norms > 0, norms, 1.0)
    s = np.exp((f @ f.T - 1.0) / float(temperature))  # shifted by the largest cosine: no overflow
    return _row_normalised_off_diagonal(s)


def confident_members(similarity: np.ndarray, groups: np.ndarray, keep: float) -> np.ndarray:
    """Boolean mask of the ``ceil(keep * size)`` members of every group whose similarity rows put
    the largest share of their mass inside their own group (at least one per group)."""
    s = np.asarray(similarity, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep_confident must be in (0, 1], got {keep}")
    same = groups[:, None] == groups[None, :]
    np.fill_diagonal(same, False)
    totals = s.sum(axis=1)
    own_share = np.divide((s * same).sum(axis=1), totals, out=np.zeros(len(s)), where=totals > 0)
    mask = np.zeros(len(s), dtype=bool)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        ranked = members[np.argsort(-own_share[members], kind="stable")]
        mask[ranked[: max(1, math.ceil(keep * len(members)))]] = True
    return mask


def group_instances(
    similarity: np.ndarray, n_clusters: int, method: str = "spectral", random_state: int = 0
) -> np.ndarray:
    """K groups of the instance classes from a (row-normalised) similarity; int64 [n_l]."""
    s = np.asarray(similarity, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"similarity must be square, got {s.shape}")
    if not 2 <= n_clusters <= len(s):
        raise ValueError(f"cannot group {len(s)} instance classes into {n_clusters} clusters")
    a = (s + s.T) / 2.0
    np.fill_diagonal(a, 0.0)
    a = a + 1e-6
    if method == "spectral":
        import warnings

        from sklearn.cluster import SpectralClustering

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "graph is not fully connected"
            model = SpectralClustering(
                n_clusters=n_clusters, affinity="precomputed", assign_labels="cluster_qr", random_state=random_state
            )
            labels = model.fit_predict(a)
    elif method == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        dist = 1.0 - a / a.max()
        np.fill_diagonal(dist, 0.0)
        labels = AgglomerativeClustering(n_clusters=n_clusters, metric="precomputed", linkage="average").fit_predict(
            dist
        )
    else:
        raise ValueError(f"unknown grouping {method!r}; expected one of {', '.join(GROUPINGS)}")
    # Number groups by their smallest member so the result does not depend on solver numbering.
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty(labels.max() + 1, dtype=np.int64)
    remap[np.unique(labels)[order]] = np.arange(len(order))
    return remap[labels].astype(np.int64)


def align_groups(groups: np.ndarray, predicted: np.ndarray, n_clusters: int) -> np.ndarray:
    """Rename ``groups`` so that they agree best with ``predicted`` (Hungarian matching)."""
    from scipy.optimize import linear_sum_assignment

    overlap = np.zeros((n_clusters, n_clusters), dtype=np.int64)
    np.add.at(overlap, (groups, predicted), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.arange(n_clusters)
    mapping[rows] = cols
    return mapping[groups]
