"""Checking and normalising feature matrices before they reach faiss."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def as_feature_matrix(x: ArrayLike, *, name: str = "features") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 ``[n, d]`` array, rejecting bad input.

    faiss reads raw float32 buffers and silently produces garbage from NaN, so every problem
    is caught here with a message naming the argument and the offending value.
    """
    array = np.asarray(x)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d], got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(f"{name} must be finite, got {array[row, col]} at row {row}, column {col}")
    return array


def check_positive_int(value: object, name: str) -> int:
    """``value`` as a Python int >= 1: TypeError for a non-integer, ValueError for < 1."""
    # bool is an int subclass, but True as a count is always a mistake
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise unit-norm float32 copy; all-zero rows stay zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, eps), dtype=np.float32)


def cluster_mean_directions(features: ArrayLike, labels: ArrayLike, n_clusters: int) -> np.ndarray:
    """float32[K, d]: the normalised mean of each cluster's L2-normalised rows.

    Rows are normalised before averaging, so a row's norm does not weight it. A cluster with no
    members (or whose members cancel out) gets an all-zero row.
    """
    x = l2_normalize(as_feature_matrix(features, name="features"))
    k = check_positive_int(n_clusters, "n_clusters")
    lab = np.asarray(labels)
    if lab.ndim != 1 or len(lab) != x.shape[0]:
        raise ValueError(f"labels must be 1-D with {x.shape[0]} entries, got shape {lab.shape}")
    if len(lab) and not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    lab = lab.astype(np.int64)
    if len(lab) and (lab.min() < 0 or lab.max() >= k):
        bad = lab.min() if lab.min() < 0 else lab.max()
        raise ValueError(f"labels must lie in [0, {k}), got {bad}")
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(sums, lab, x.astype(np.float64))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    # a cancelled-out sum is numerically noise; treat it like an empty cluster
    out = np.where(norms > 1e-8, sums / np.maximum(norms, 1e-12), 0.0)
    return np.ascontiguousarray(out, dtype=np.float32)
