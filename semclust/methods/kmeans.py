"""k-means on image features, the baseline every other method is compared with."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from semclust.deprecated import renamed
from semclust.methods.base import BaseClusterer, check_n_clusters
from semclust.methods.spec import FeatureSet, MethodResult, MethodSpec, view_input
from semclust.ops.kmeans import assign_to_centers, spherical_kmeans


class KMeans(BaseClusterer):
    """(Spherical) k-means via :func:`semclust.ops.kmeans.spherical_kmeans`.

    Learned: ``labels_``, ``centers_`` (unit-norm when ``spherical``), ``inertia_``,
    ``objective_`` and ``n_features_in_``. ``predict`` sends rows to the most cosine-similar
    center when ``spherical``, otherwise to the nearest in Euclidean distance. See
    ``spherical_kmeans`` for ``max_points_per_centroid`` (``None`` trains on every point).
    """

    _state_values = ("n_features_in_", "cluster_names_", "inertia_", "objective_")

    def __init__(
        self,
        n_clusters: int = 10,
        n_init: int = 5,
        max_iter: int = 100,
        spherical: bool = True,
        random_state: int = 0,
        max_points_per_centroid: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.spherical = spherical
        self.random_state = random_state
        self.max_points_per_centroid = max_points_per_centroid

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> KMeans:
        x = self._validate_fit_input(X)
        n_clusters = check_n_clusters(self.n_clusters, x.shape[0])
        result = spherical_kmeans(
            x,
            n_clusters,
            n_init=self.n_init,
            max_iter=self.max_iter,
            random_state=self.random_state,
            max_points_per_centroid=self.max_points_per_centroid,
            spherical=self.spherical,
        )
        self.labels_ = result.labels
        self.centers_ = result.centers
        self.inertia_ = result.inertia
        self.objective_ = result.objective
        self.n_features_in_ = x.shape[1]
        self.cluster_names_ = None
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        x = self._validate_predict_input(X)
        labels, _ = assign_to_centers(x, self.centers_, spherical=self.spherical)
        return labels


def fit_kmeans(
    features: FeatureSet, n_clusters: int, random_state: int, view: str | None = None, n_init: int = 5
) -> MethodResult:
    """k-means on ``view`` (default: the visual view when the encoder has one)."""
    view, rows = features.image_view(view)
    estimator = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
    labels = estimator.fit_predict(rows)
    return MethodResult(estimator, labels, n_clusters, info={"view": view, "n_init": n_init})


SPEC = MethodSpec(
    name="kmeans",
    estimator=KMeans,
    fit=fit_kmeans,
    former_estimators=("KMeansClusterer",),
    summary="spherical k-means on the image features (the baseline)",
    predict_inputs=view_input,
)
METHOD_SPECS = (SPEC,)
__getattr__ = renamed(__name__, {"KMeansClusterer": "KMeans"}, globals())
