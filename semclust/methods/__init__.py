"""Clustering methods with a shared scikit-learn-style interface."""

from __future__ import annotations

from semclust.methods.base import (
    BaseClusterer,
    NotFittedError,
    check_is_fitted,
    check_n_clusters,
)
from semclust.methods.kmeans import KMeans
from semclust.methods.zeroshot import ZeroShot, build_class_embeddings

__all__ = [
    "BaseClusterer",
    "KMeans",
    "NotFittedError",
    "ZeroShot",
    "build_class_embeddings",
    "check_is_fitted",
    "check_n_clusters",
]
