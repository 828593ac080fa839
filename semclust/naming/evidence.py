"""The offline encoder's ImageNet classifier probabilities, recovered from the feature store.

The store keeps the visual view L2-normalised, so the logits ``f W^T + b`` of a feature ``f``
are recovered up to its norm: ``||f|| (v W^T) + b`` with ``v`` the stored unit vector. The
norm is replaced by :data:`TYPICAL_FEATURE_NORM`, the median EfficientNet-Lite0 feature norm
measured on Fashion-MNIST test (30.7; 5th-95th percentile 22-38); class rankings per image are
unchanged by it, only the softmax temperature differs slightly. A store with a ``logits`` view
(not written today) gives the exact probabilities instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TYPICAL_FEATURE_NORM = 30.7
# The classifier is over-confident on images unlike ImageNet photos (grey 28 px clothes,
# cartoons): one wrong class ("hatchet" for boots) takes most of the mass. Softening its logits
# lets the related classes it also ranks high ("cowboy boot", "Loafer") add up in the hierarchy.
# Chosen on a seeded 2,000-image subset of Fashion-MNIST *train* (benchmarks/naming.py --choose-temperature).
DEFAULT_TEMPERATURE = 6.0


def classifier_head(encoder: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(W float32[C, D], b float32[C]) of an encoder with an ImageNet classifier, else ``None``."""
    if not hasattr(encoder, "classifier_weights"):
        return None
    weights = np.asarray(encoder.classifier_weights(), dtype=np.float32)
    bias = None
    if hasattr(encoder, "classifier_bias"):
        bias = encoder.classifier_bias()
    else:  # EfficientNet-Lite's fc layer has a bias; OfflineEncoder exposes only the weights
        fc = getattr(getattr(getattr(encoder, "visual_tower", None), "net", None), "_fc", None)
        if fc is not None and getattr(fc, "bias", None) is not None:
            bias = fc.bias.detach().float().cpu().numpy()
    b = np.zeros(weights.shape[0], np.float32) if bias is None else np.asarray(bias, dtype=np.float32)
    return weights, b


def class_probabilities(
    visual_unit: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    scale: float = TYPICAL_FEATURE_NORM,
    temperature: float = DEFAULT_TEMPERATURE,
    block: int = 4096,
) -> np.ndarray:
    """float32[n, C] softmax of ``(scale * visual_unit @ W^T + b) / temperature``, in row blocks."""
    v = np.asarray(visual_unit, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != weights.shape[1]:
        raise ValueError(f"visual features must be [n, {weights.shape[1]}], got shape {v.shape}")
    out = np.empty((v.shape[0], weights.shape[0]), dtype=np.float32)
    for start in range(0, v.shape[0], block):
        z = (scale * (v[start : start + block] @ weights.T) + bias) / temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out[start : start + block] = e / e.sum(axis=1, keepdims=True)
    return out


def softmax_logits(logits: np.ndarray, temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float32) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def cluster_means(values: np.ndarray, labels: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """(float64[K, C] mean row per cluster (0 for an empty one), int64[K] sizes)."""
    lab = np.asarray(labels, dtype=np.int64)
    members = np.zeros((n_clusters, len(lab)), dtype=np.float64)
    members[lab, np.arange(len(lab))] = 1.0
    sums = members @ np.asarray(values, dtype=np.float64)
    sizes = np.bincount(lab, minlength=n_clusters)
    return sums / np.maximum(sizes, 1)[:, None], sizes
