from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from semclust.metrics import ari, cluster_acc, contingency, evaluate, nmi


def brute_force_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Best accuracy over every injective map between the smaller and larger label sets."""
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    if len(clusters) <= len(classes):
        for image in itertools.permutations(classes, len(clusters)):
            mapping = dict(zip(clusters, image))
            best = max(best, sum(mapping[p] == t for t, p in zip(y_true, y_pred)))
    else:
        for image in itertools.permutations(clusters, len(classes)):
            mapping = dict(zip(classes, image))
            best = max(best, sum(mapping[t] == p for t, p in zip(y_true, y_pred)))
    return best / len(y_true)


def test_contingency_counts_with_non_contiguous_labels() -> None:
    table = contingency([5, 5, 7, 7, 7], [2, -1, 2, 2, 9])
    # rows: classes 5, 7; columns: clusters -1, 2, 9
    np.testing.assert_array_equal(table, [[1, 1, 0], [0, 2, 1]])
    assert table.dtype == np.int64


def test_acc_hand_computed() -> None:
    assert cluster_acc([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert cluster_acc([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]) == pytest.approx(5 / 6)
    # one cluster for two classes: only one class can be matched
    assert cluster_acc([0, 0, 1, 1, 1], [3, 3, 3, 3, 3]) == pytest.approx(3 / 5)
    # every item its own cluster: unmatched clusters count as wrong
    assert cluster_acc([0, 0, 1, 1], [0, 1, 2, 3]) == pytest.approx(2 / 4)


@pytest.mark.parametrize("n_classes,n_clusters", [(3, 3), (2, 4), (4, 2), (5, 3), (3, 5), (1, 3)])
def test_acc_matches_brute_force(n_classes: int, n_clusters: int) -> None:
    rng = np.random.default_rng(n_classes * 10 + n_clusters)
    for _ in range(25):
        n = int(rng.integers(1, 20))
        y_true = rng.integers(0, n_classes, size=n)
        y_pred = rng.integers(0, n_clusters, size=n) * 3 - 2  # arbitrary label values
        assert cluster_acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred))


def test_nmi_ari_perfect_and_permuted() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    assert nmi(y, (y + 1) % 3) == pytest.approx(1.0)
    assert ari(y, (y + 1) % 3) == pytest.approx(1.0)
    assert ari([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


def test_evaluate_ignores_unknown_and_returns_plain_types() -> None:
    y_true = np.array([0, 0, 1, 1, -1, -1])
    y_pred = np.array([4, 4, 2, 2, 9, 4])
    result = evaluate(y_true, y_pred)
    assert result == {"acc": 1.0, "nmi": 1.0, "ari": 1.0, "n": 4, "k": 2}
    assert all(type(result[key]) is float for key in ("acc", "nmi", "ari"))
    assert all(type(result[key]) is int for key in ("n", "k"))
    json.dumps(result)


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="3 items.*2"):
        cluster_acc([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        evaluate(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        evaluate([-1, -1], [0, 1])
    with pytest.raises(ValueError, match="at least one"):
        cluster_acc([], [])
