"""Long-tailed protocols: counts by the formula, seeded reproducible splits, groups by frequency."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semclust.ssl.longtail import (
    class_groups,
    estimate_class_counts,
    group_accuracies,
    group_sizes,
    log_prior,
    longtail_counts,
    make_longtail_split,
    split_from_dict,
)

# floor(1500 * 100^(-c/9)): 1500, 899.2, 539.1, 323.2, 193.7, 116.1, 69.6, 41.7, 25.0, 15
HAND_1500_100 = [1500, 899, 539, 323, 193, 116, 69, 41, 25, 15]


def test_longtail_counts_match_the_formula_by_hand():
    assert longtail_counts(1500, 100, 10) == HAND_1500_100
    assert longtail_counts(3000, 100, 10)[-1] == 30 and longtail_counts(3000, 100, 10)[1] == 1798
    assert longtail_counts(1500, -100, 10) == HAND_1500_100[::-1]  # reversed
    assert longtail_counts(1500, 100, 10, reverse=True) == HAND_1500_100[::-1]
    assert longtail_counts(1500, 1, 10) == [1500] * 10  # uniform
    assert longtail_counts(10, 4, 3) == [10, 5, 2]  # 10 * 4^(-1/2) = 5 exactly, not 4.999...
    with pytest.raises(ValueError, match=">= 1"):
        longtail_counts(10, 0.5, 3)


def _pool(per_class: int = 60, c: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(c), per_class))


def test_split_counts_follow_the_seeded_class_order_and_reproduce_from_json():
    y = _pool()
    s = make_longtail_split(y, 30, 20, 10, 10, seed=3)
    assert sorted(s.class_order) == list(range(10)) and s.class_order != list(range(10))  # permuted, not index
    n_rank, m_rank = longtail_counts(30, 10, 10), longtail_counts(20, 10, 10)
    lab, unl = np.bincount(y[s.labelled], minlength=10), np.bincount(y[s.unlabelled], minlength=10)
    for r, cls in enumerate(s.class_order):
        assert lab[cls] == n_rank[r] and unl[cls] == m_rank[r]
    assert set(s.labelled).isdisjoint(s.unlabelled)
    saved = json.loads(json.dumps(s.to_dict()))
    again = split_from_dict(saved, y)
    assert np.array_equal(again.labelled, s.labelled) and np.array_equal(again.unlabelled, s.unlabelled)
    saved["labelled_indices"][0] += 1
    with pytest.raises(ValueError, match="differ"):
        split_from_dict(saved, y)
    assert make_longtail_split(y, 30, 20, 10, 10, seed=4).class_order != s.class_order
    idx = make_longtail_split(y, 30, 20, 10, 10, seed=3, class_order="index")
    assert np.bincount(y[idx.labelled], minlength=10).tolist() == n_rank


def test_uniform_and_reversed_unlabelled_modes():
    y = _pool()
    uni = make_longtail_split(y, 30, 20, 10, 1, seed=1)
    assert set(np.bincount(y[uni.unlabelled], minlength=10).tolist()) == {20}
    rev = make_longtail_split(y, 30, 20, 10, -10, seed=1)
    lab, unl = np.bincount(y[rev.labelled], minlength=10), np.bincount(y[rev.unlabelled], minlength=10)
    head, tail = rev.class_order[0], rev.class_order[-1]
    assert lab[head] == 30 and unl[head] == 2 and lab[tail] == 3 and unl[tail] == 20
    with pytest.raises(ValueError, match="fewer than"):
        make_longtail_split(y, 50, 20, 10, 10, seed=1)


def test_groups_come_from_frequencies_not_indices():
    counts = [5, 50, 9, 30, 1, 12, 40, 2, 20, 3]  # ranks: 1, 6 | 3, 8 | 5, 2, 0, 9, 7, 4
    g = class_groups(counts)  # the reference's cut points 2 and 4: 2/2/6
    assert np.flatnonzero(g == 0).tolist() == [1, 6]
    assert np.flatnonzero(g == 1).tolist() == [3, 8]
    assert np.flatnonzero(g == 2).tolist() == [0, 2, 4, 5, 7, 9]
    g = class_groups(counts, split="thirds")  # ranks: 1, 6, 3 | 8, 5, 2 | 0, 9, 7, 4
    assert np.flatnonzero(g == 0).tolist() == [1, 3, 6]
    assert np.flatnonzero(g == 1).tolist() == [2, 5, 8]
    assert np.flatnonzero(g == 2).tolist() == [0, 4, 7, 9]
    y = _pool()
    s = make_longtail_split(y, 30, 20, 10, 10, seed=3)
    est = estimate_class_counts(y[s.labelled], 10)
    assert sorted(np.flatnonzero(class_groups(est) == 0)) == sorted(s.class_order[:2])
    assert sorted(np.flatnonzero(s.groups == 2)) == sorted(s.class_order[4:])
    np.testing.assert_allclose(np.exp(log_prior([1, 3])), [0.25, 0.75])


def test_group_sizes_reference_and_thirds():
    assert [group_sizes(c) for c in (2, 3, 5, 10, 20, 100)] == [
        (1, 0, 1), (1, 1, 1), (1, 1, 3), (2, 2, 6), (4, 4, 12), (20, 20, 60)]  # fmt: skip
    assert [group_sizes(c, "thirds") for c in (2, 3, 10)] == [(1, 0, 1), (1, 1, 1), (3, 3, 4)]
    with pytest.raises(ValueError, match="unknown group split"):
        group_sizes(10, "halves")


def test_group_accuracies_by_hand():
    groups = np.array([0, 1, 2])
    y = np.array([0, 0, 1, 2, 2, -1])
    pred = np.array([0, 1, 1, 0, 2, 0])
    assert group_accuracies(y, pred, groups) == {"head_acc": 0.5, "medium_acc": 1.0, "tail_acc": 0.5}
