"""Numerical building blocks shared by the clustering methods: kNN, k-means, feature checks."""

from __future__ import annotations

from semclust.ops.features import as_feature_matrix, check_positive_int, l2_normalize
from semclust.ops.kmeans import KMeansResult, assign_to_centers, spherical_kmeans
from semclust.ops.knn import knn, neighbour_purity

__all__ = [
    "KMeansResult",
    "as_feature_matrix",
    "assign_to_centers",
    "check_positive_int",
    "knn",
    "l2_normalize",
    "neighbour_purity",
    "spherical_kmeans",
]
