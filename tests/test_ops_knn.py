from __future__ import annotations

import numpy as np
import pytest

from semclust.ops.knn import knn, neighbour_purity


def brute_force(base: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool):
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ b.T.astype(np.float64)
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize("block_size", [7, 10_000])
def test_self_search_matches_brute_force(block_size: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 16)) * rng.uniform(0.1, 10, size=(120, 1))
    idx, sims = knn(x, 5, block_size=block_size)
    ref_idx, ref_sims = brute_force(x, x, 5, exclude_self=True)
    assert idx.dtype == np.int64 and sims.dtype == np.float32
    assert idx.shape == sims.shape == (120, 5)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-5)


def test_self_included_when_not_excluded() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 8))
    idx, sims = knn(x, 3, exclude_self=False)
    np.testing.assert_array_equal(idx[:, 0], np.arange(50))
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)


def test_external_queries_and_float16() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 12)).astype(np.float16)
    q = rng.normal(size=(33, 12)).astype(np.float16)
    x_before = x.copy()
    idx, sims = knn(x, 4, queries=q, block_size=8)
    ref_idx, ref_sims = brute_force(x.astype(np.float32), q.astype(np.float32), 4, False)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-4)
    np.testing.assert_array_equal(x, x_before)
    # all n rows may be requested when the queries are not part of the base
    assert knn(x, 80, queries=q)[0].shape == (33, 80)


def test_duplicates_never_return_self() -> None:
    rng = np.random.default_rng(3)
    # 6 copies of one point, so self ties with 5 others and may fall out of the top k+1
    point = rng.normal(size=(1, 10))
    x = np.vstack([np.repeat(point, 6, axis=0), rng.normal(size=(30, 10))])
    for k in (1, 2, 5, 8):
        idx, sims = knn(x, k, block_size=4)
        assert not (idx == np.arange(len(x))[:, None]).any()
        assert all(len(set(row)) == k for row in idx)
        _, ref_sims = brute_force(x, x, k, exclude_self=True)
        np.testing.assert_allclose(sims, ref_sims, atol=1e-5)
        dup_neighbours = idx[:6, : min(k, 5)]
        assert np.isin(dup_neighbours, np.arange(6)).all()


def test_validation_names_bad_value() -> None:
    x = np.ones((5, 3))
    with pytest.raises(ValueError, match="k=5 and n=5"):
        knn(x, 5)
    with pytest.raises(ValueError, match="k=6 and n=5"):
        knn(x, 6, exclude_self=False)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        knn(x, 0)
    with pytest.raises(ValueError, match=r"2-D.*\(5,\)"):
        knn(np.ones(5), 1)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="finite.*nan at row 2, column 1"):
        knn(bad, 1)
    with pytest.raises(ValueError, match="dimension 4 but features have 3"):
        knn(x, 1, queries=np.ones((2, 4)))
    with pytest.raises(ValueError, match="block_size"):
        knn(x, 1, block_size=0)


def test_neighbour_purity() -> None:
    labels = np.array([0, 0, 1, 1, -1])
    indices = np.array([[1, 2], [0, 1], [3, 4], [2, 2], [0, 1]])
    # row 4 is unknown and skipped; rows 0-3 score 1/2, 2/2, 1/2 (unknown neighbour), 2/2
    assert neighbour_purity(indices, labels) == pytest.approx((0.5 + 1.0 + 0.5 + 1.0) / 4)
    with pytest.raises(ValueError, match=r"\[0, 5\), got 5"):
        neighbour_purity(np.array([[5]] * 5), labels)


def test_purity_of_real_knn_on_separated_blobs() -> None:
    rng = np.random.default_rng(4)
    centers = rng.normal(size=(3, 20)) * 10
    labels = np.repeat(np.arange(3), 40)
    x = centers[labels] + rng.normal(size=(120, 20))
    idx, _ = knn(x, 10)
    assert neighbour_purity(idx, labels) == 1.0
