"""Clustering quality against ground truth: accuracy under the best matching, NMI and ARI."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _paired_labels(labels_true: ArrayLike, labels_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(labels_true)
    pred = np.asarray(labels_pred)
    if true.ndim != 1 or pred.ndim != 1:
        raise ValueError(f"labels must be 1-D, got labels_true shape {true.shape} and labels_pred shape {pred.shape}")
    if len(true) != len(pred):
        raise ValueError(f"labels_true has {len(true)} items but labels_pred has {len(pred)}")
    return true, pred


def contingency(labels_true: ArrayLike, labels_pred: ArrayLike) -> np.ndarray:
    """int64[C, K] counts of items with true class ``c`` in predicted cluster ``k``.

    Rows follow ``np.unique(labels_true)`` and columns ``np.unique(labels_pred)``, so label
    values need not be contiguous or start at zero.
    """
    true, pred = _paired_labels(labels_true, labels_pred)
    _, true_idx = np.unique(true, return_inverse=True)
    _, pred_idx = np.unique(pred, return_inverse=True)
    n_true = int(true_idx.max()) + 1 if len(true_idx) else 0
    n_pred = int(pred_idx.max()) + 1 if len(pred_idx) else 0
    table = np.zeros((n_true, n_pred), dtype=np.int64)
    np.add.at(table, (true_idx.ravel(), pred_idx.ravel()), 1)
    return table


def cluster_acc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of items correct under the best one-to-one cluster-to-class matching.

    The matching is rectangular when the number of clusters differs from the number of
    classes: at most ``min(C, K)`` pairs are matched and items in unmatched clusters (or of
    unmatched classes) count as wrong, so over-clustering cannot inflate the score.
    """
    table = contingency(y_true, y_pred)
    total = int(table.sum())
    if total == 0:
        raise ValueError("cluster_acc needs at least one item, got 0")
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / total)


def nmi(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Normalised mutual information (arithmetic normalisation, sklearn's default)."""
    true, pred = _paired_labels(y_true, y_pred)
    return float(normalized_mutual_info_score(true, pred))


def ari(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Adjusted Rand index."""
    true, pred = _paired_labels(y_true, y_pred)
    return float(adjusted_rand_score(true, pred))


def evaluate(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, Any]:
    """``{"acc", "nmi", "ari", "n", "k"}`` as plain Python numbers, ready for JSON.

    Items whose true label is negative are unknown and left out of every number; ``n`` is
    how many items were scored and ``k`` how many distinct clusters those items fall in.
    """
    true, pred = _paired_labels(y_true, y_pred)
    known = true >= 0
    true, pred = true[known], pred[known]
    if len(true) == 0:
        raise ValueError("evaluate needs at least one item with a non-negative true label, got 0")
    return {
        "acc": cluster_acc(true, pred),
        "nmi": nmi(true, pred),
        "ari": ari(true, pred),
        "n": len(true),
        "k": len(np.unique(pred)),
    }
