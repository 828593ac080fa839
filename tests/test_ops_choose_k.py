from __future__ import annotations

import numpy as np
import pytest

from semclust.ops.choose_k import estimate_n_clusters, knn_affinity


def blobs(k: int, n_per: int = 60, d: int = 20, spread: float = 0.15, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return np.concatenate([m + rng.normal(0, spread, (n_per, d)) for m in means]).astype(np.float32)


@pytest.mark.parametrize("k", [3, 5, 8])
def test_recovers_known_number_of_clusters(k: int) -> None:
    estimate = estimate_n_clusters(blobs(k, seed=k), k_max=15)
    assert estimate.k == k
    assert max(estimate.gaps, key=estimate.gaps.get) == k
    # K eigenvalues of the normalised adjacency sit near 1 for K separated groups
    assert np.all(estimate.eigenvalues[:k] > 0.9) and estimate.eigenvalues[k] < 0.9


def test_affinity_is_symmetric_and_nonnegative() -> None:
    graph = knn_affinity(blobs(2, n_per=20), n_neighbours=5)
    assert (graph != graph.T).nnz == 0 and graph.min() >= 0
    assert np.all(np.asarray((graph > 0).sum(axis=1)).ravel() >= 5)


def test_deterministic_and_validated() -> None:
    x = blobs(4, seed=1)
    assert estimate_n_clusters(x, k_max=10).gaps == estimate_n_clusters(x, k_max=10).gaps
    with pytest.raises(ValueError, match="k_min"):
        estimate_n_clusters(x, k_min=1)
    with pytest.raises(ValueError, match="more items"):
        estimate_n_clusters(x[:10], k_max=10)
