from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from semclust.ops.kmeans import KMeansResult, assign_to_centers, spherical_kmeans


def blobs(n_per: int, k: int, dim: int = 16, spread: float = 0.05, seed: int = 0):
    """Tight clusters around random unit directions, so the right answer is unambiguous."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(k, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    labels = np.repeat(np.arange(k), n_per)
    x = directions[labels] + spread * rng.normal(size=(len(labels), dim))
    scale = rng.uniform(0.5, 3.0, size=(len(labels), 1))  # spherical k-means ignores norms
    return (x * scale).astype(np.float32), labels


def test_recovers_known_clusters() -> None:
    x, y = blobs(50, 5)
    result = spherical_kmeans(x, 5, random_state=0)
    assert isinstance(result, KMeansResult)
    assert result.labels.dtype == np.int64 and result.labels.shape == (250,)
    assert result.centers.dtype == np.float32 and result.centers.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(result.centers, axis=1), 1.0, atol=1e-5)
    assert adjusted_rand_score(y, result.labels) == 1.0
    assert result.n_train == 250
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = np.sum(xn * result.centers[result.labels], axis=1)
    assert result.objective == pytest.approx(sims.sum(), rel=1e-5)
    assert result.inertia == pytest.approx(np.sum(2 - 2 * sims), rel=1e-3, abs=1e-3)


def test_deterministic_for_fixed_seed() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8)).astype(np.float32)  # no structure: init decides the result
    a = spherical_kmeans(x, 7, random_state=3, n_init=2)
    b = spherical_kmeans(x, 7, random_state=3, n_init=2)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)


def test_euclidean_agrees_with_sklearn() -> None:
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(4, 6)) * 20
    y = np.repeat(np.arange(4), 60)
    x = (centers[y] + rng.normal(size=(240, 6))).astype(np.float32)
    ours = spherical_kmeans(x, 4, spherical=False, random_state=0)
    ref = KMeans(n_clusters=4, n_init=5, random_state=0).fit(x)
    assert adjusted_rand_score(ref.labels_, ours.labels) == 1.0
    assert ours.inertia == pytest.approx(ref.inertia_, rel=1e-3)
    assert ours.objective == ours.inertia


def test_default_trains_on_every_point() -> None:
    # 4 centers * faiss's default 256 points per centroid = 1024 < n, so faiss would subsample.
    # Training on every point makes each center the normalised mean of all its members
    # exactly; centers learned from a subsample do not match the full-data means.
    x, y = blobs(600, 4, spread=0.1, seed=5)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)

    def mean_gap(result: KMeansResult) -> float:
        means = np.stack([xn[result.labels == c].mean(axis=0) for c in range(4)])
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        return float(np.abs(means - result.centers).max())

    full = spherical_kmeans(x, 4, max_iter=30)
    assert full.n_train == 2400
    assert adjusted_rand_score(y, full.labels) == 1.0
    assert mean_gap(full) < 1e-5

    sub = spherical_kmeans(x, 4, max_iter=30, max_points_per_centroid=50)
    assert sub.n_train == 200
    assert sub.labels.shape == (2400,)  # every point is still labelled
    assert mean_gap(sub) > 1e-3


def test_assign_to_centers() -> None:
    centers = np.array([[1.0, 0.0], [0.0, 1.0]])
    x = np.array([[5.0, 1.0], [0.1, 3.0], [2.0, -1.0]])
    labels, scores = assign_to_centers(x, centers)
    np.testing.assert_array_equal(labels, [0, 1, 0])
    np.testing.assert_allclose(scores[0], 5 / np.sqrt(26), rtol=1e-6)
    labels, scores = assign_to_centers(x, centers * 4, spherical=False)
    np.testing.assert_array_equal(labels, [0, 1, 0])
    np.testing.assert_allclose(scores, [2.0, 1.01, 5.0], rtol=1e-5)


def test_validation_names_k_and_n() -> None:
    x = np.ones((5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="n_clusters=6 and n=5"):
        spherical_kmeans(x, 6)
    with pytest.raises(ValueError, match="n_clusters=1 and n=5"):
        spherical_kmeans(x, 1)
    with pytest.raises(ValueError, match="n_init must be a positive integer, got 0"):
        spherical_kmeans(x, 2, n_init=0)
    with pytest.raises(ValueError, match="max_points_per_centroid"):
        spherical_kmeans(x, 2, max_points_per_centroid=0)
    with pytest.raises(ValueError, match="finite"):
        spherical_kmeans(np.full((5, 3), np.inf), 2)
