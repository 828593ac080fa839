from __future__ import annotations

import numpy as np
import pytest

from semclust.ops.filtering import filter_neighbours, pair_purity

# Five points, k = 2. Rows list each point's neighbours, nearest first.
A = np.array(
    [
        [1, 2],  # 0
        [0, 3],  # 1
        [3, 0],  # 2
        [2, 4],  # 3
        [3, -1],  # 4: only one neighbour found (faiss pads with -1)
    ]
)
B = np.array([[2, 4, 3], [0, 2, 4], [3, 1, 0], [4, 1, 0], [0, 1, 2]])
LABELS = np.array([0, 0, 1, 1, 1])


def reference(a: np.ndarray, b: np.ndarray | None, labels: np.ndarray | None, rule: str) -> np.ndarray:
    mask = np.zeros(a.shape, dtype=bool)
    for i in range(a.shape[0]):
        for c in range(a.shape[1]):
            j = a[i, c]
            if j < 0:
                continue
            if rule == "none":
                mask[i, c] = True
            elif rule == "mutual":
                mask[i, c] = i in a[j]
            elif rule == "cross":
                mask[i, c] = j in b[i]
            else:
                mask[i, c] = labels[i] == labels[j]
    return mask


def test_hand_computed_masks() -> None:
    mutual = [[True, True], [True, False], [True, True], [True, True], [True, False]]
    # pairs (0,1) (1,0) (0,2)/(2,0) (2,3)/(3,2) (3,4)/(4,3) are mutual; (1,3): 3's list is [2, 4]
    np.testing.assert_array_equal(filter_neighbours(A, rule="mutual"), mutual)
    cross = [[False, True], [True, False], [True, True], [False, True], [False, False]]
    np.testing.assert_array_equal(filter_neighbours(A, neigh_b=B, rule="cross"), cross)
    cluster = [[True, False], [True, False], [True, False], [True, True], [True, False]]
    np.testing.assert_array_equal(filter_neighbours(A, labels_a=LABELS, rule="cluster"), cluster)
    none = [[True, True]] * 4 + [[True, False]]
    np.testing.assert_array_equal(filter_neighbours(A, rule="none"), none)


@pytest.mark.parametrize("rule", ["mutual", "cross", "cluster", "none"])
def test_random_graphs_match_the_loop(rule: str) -> None:
    rng = np.random.default_rng(0)
    n = 40
    a = np.array([rng.choice(np.delete(np.arange(n), i), 6, replace=False) for i in range(n)])
    b = np.array([rng.choice(n, 9, replace=False) for _ in range(n)])
    labels = rng.integers(0, 4, n)
    got = filter_neighbours(a, neigh_b=b, labels_a=labels, rule=rule)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, reference(a, b, labels, rule))


def test_min_keep_restores_the_nearest() -> None:
    mask = filter_neighbours(A, neigh_b=B, rule="cross", min_keep=1)
    # row 4 kept nothing and gets its nearest back; the others already kept one
    np.testing.assert_array_equal(mask[4], [True, False])
    np.testing.assert_array_equal(mask[:4], filter_neighbours(A, neigh_b=B, rule="cross")[:4])


def test_pair_purity_by_hand() -> None:
    mask = filter_neighbours(A, labels_a=LABELS, rule="cluster")
    before, after, kept = pair_purity(A, mask, LABELS)
    # 9 valid pairs; same-label ones: (0,1) (1,0) (2,3) (3,2) (3,4) (4,3)
    assert before == pytest.approx(6 / 9)
    assert after == 1.0 and kept == pytest.approx(6 / 9)
    # an unknown-label row is skipped, an unknown-label neighbour is a mismatch
    labels = np.array([0, 0, 1, 1, -1])
    before, after, kept = pair_purity(A, np.ones(A.shape, bool), labels)
    # rows 0-3: (0,1) (1,0) (2,3) (3,2) agree; (0,2) (1,3) (2,0) (3,4) do not
    assert before == pytest.approx(4 / 8) and after == pytest.approx(4 / 8) and kept == 1.0


def test_errors() -> None:
    with pytest.raises(ValueError, match="neigh_b"):
        filter_neighbours(A, rule="cross")
    with pytest.raises(ValueError, match="labels_a"):
        filter_neighbours(A, rule="cluster")
    with pytest.raises(ValueError, match="rule"):
        filter_neighbours(A, rule="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rows"):
        filter_neighbours(A, neigh_b=B[:3], rule="cross")
    with pytest.raises(ValueError, match="below"):
        filter_neighbours(A + 3, rule="none")
