from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from semclust.methods.base import NotFittedError
from semclust.methods.kmeans import KMeans


def directional_blobs(seed: int = 0):
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(4, 12))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    y = np.repeat(np.arange(4), 40)
    x = directions[y] + 0.05 * rng.normal(size=(160, 12))
    return (x * rng.uniform(0.5, 4.0, size=(160, 1))).astype(np.float32), y, directions


def test_fit_recovers_clusters_and_predict_is_consistent() -> None:
    x, y, directions = directional_blobs()
    model = KMeans(n_clusters=4)
    labels = model.fit_predict(x)
    assert adjusted_rand_score(y, labels) == 1.0
    assert model.centers_.shape == (4, 12) and model.labels_.dtype == np.int64
    np.testing.assert_array_equal(model.predict(x), labels)
    # a scaled copy of a direction belongs to that direction's cluster under cosine assignment
    for c in range(4):
        expected = labels[y == c][0]
        assert model.predict(directions[c : c + 1] * 100.0)[0] == expected


def test_euclidean_predict_uses_distance() -> None:
    x = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], dtype=np.float32)
    model = KMeans(n_clusters=2, spherical=False).fit(x)
    near_origin, near_ten = model.predict(np.array([[1.0, 0.5], [9.0, 0.5]]))
    assert near_origin == model.labels_[0] and near_ten == model.labels_[2]
    assert model.inertia_ == pytest.approx(1.0)


def test_deterministic_and_params() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6))
    a = KMeans(n_clusters=5, random_state=7).fit(x)
    b = clone(a).fit(x)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.get_params() == {
        "max_iter": 100,
        "max_points_per_centroid": None,
        "n_clusters": 5,
        "n_init": 5,
        "random_state": 7,
        "spherical": True,
    }


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        KMeans().predict(np.ones((2, 3)))
    with pytest.raises(ValueError, match="n_clusters=10 is larger than the number of samples n=4"):
        KMeans().fit(np.random.default_rng(0).normal(size=(4, 3)))
    model = KMeans(n_clusters=2).fit(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="X has 4 features"):
        model.predict(np.ones((1, 4)))
