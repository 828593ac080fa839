from __future__ import annotations

import numpy as np
import pytest

from semclust.ops.relation import iter_relation_blocks, relation_matrix, relation_rows_normalized


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("m", "d"), [(5, 12), (30, 8)])
def test_ridge_matches_the_normal_equations_and_lstsq(m: int, d: int) -> None:
    rng = np.random.default_rng(0)
    u, s = unit(rng, 20, d), unit(rng, m, d)
    lam = 0.3
    expected = u @ s.T @ np.linalg.inv(s @ s.T + lam * np.eye(m))
    got = relation_matrix(u, s, lam=lam)
    assert got.dtype == np.float32 and got.shape == (20, m)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Ridge as an augmented least-squares problem: [S^T; sqrt(lam) I] c = [u; 0].
    aug = np.vstack([s.T, np.sqrt(lam) * np.eye(m)])
    for i in range(3):
        c, *_ = np.linalg.lstsq(aug, np.concatenate([u[i], np.zeros(m)]), rcond=None)
        np.testing.assert_allclose(got[i], c, atol=1e-4)


def test_rows_reconstruct_the_images_when_lam_is_small() -> None:
    rng = np.random.default_rng(1)
    u, s = unit(rng, 10, 6), unit(rng, 15, 6)
    c = relation_matrix(u, s, lam=1e-6)
    np.testing.assert_allclose(c @ s, u, atol=1e-3)
    # lam = 0 with m > d is the minimum-norm exact reconstruction, pinv(S).
    np.testing.assert_allclose(relation_matrix(u, s, lam=0.0), u @ np.linalg.pinv(s), atol=1e-4)


def test_blocks_equal_one_shot_for_every_mode() -> None:
    rng = np.random.default_rng(2)
    u, s = unit(rng, 23, 7), unit(rng, 9, 7)
    for mode in ("ridge", "similarity", "softmax"):
        whole = relation_matrix(u, s, mode=mode, block_size=100)
        starts, blocks = zip(*iter_relation_blocks(u, s, mode=mode, block_size=5))
        assert starts == (0, 5, 10, 15, 20)
        np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)


def test_similarity_and_softmax() -> None:
    rng = np.random.default_rng(3)
    u, s = unit(rng, 8, 5), unit(rng, 4, 5)
    np.testing.assert_allclose(relation_matrix(u, s, mode="similarity"), u @ s.T, atol=1e-6)
    soft = relation_matrix(u, s, mode="softmax", temperature=0.1)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    logits = u @ s.T / 0.1
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(soft, expected, atol=1e-5)
    # a tiny temperature must not overflow
    assert np.isfinite(relation_matrix(u, s, mode="softmax", temperature=1e-6)).all()


def test_inputs_are_normalised_and_memmaps_stream(tmp_path) -> None:
    rng = np.random.default_rng(4)
    u, s = unit(rng, 6, 4), unit(rng, 3, 4)
    path = tmp_path / "u.npy"
    np.save(path, (u * 5).astype(np.float32))
    mapped = np.load(path, mmap_mode="r")
    np.testing.assert_allclose(relation_matrix(mapped, s * 2, block_size=4), relation_matrix(u, s), atol=1e-5)


def test_normalized_rows_and_errors() -> None:
    rows = relation_rows_normalized(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0]])
    u = np.ones((2, 3))
    with pytest.raises(ValueError, match="mode"):
        relation_matrix(u, u, mode="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lam"):
        relation_matrix(u, u, lam=-1.0)
    with pytest.raises(ValueError, match="dimension"):
        relation_matrix(u, np.ones((2, 4)))
    with pytest.raises(np.linalg.LinAlgError, match="lam > 0"):
        relation_matrix(u, np.ones((2, 3)), lam=0.0)  # two identical nouns: singular Gram
