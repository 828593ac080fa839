from __future__ import annotations

import math

import numpy as np
import pytest

from semclust.ops.tac_text import (
    assign_nouns_to_centers,
    default_n_centers,
    select_nouns,
    text_counterparts,
    top_per_center,
)

E1, E2 = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
# Two image clusters sitting exactly on e1 and e2, so the k-means centers are e1 and e2.
IMAGES = np.array([E1] * 5 + [E2] * 5)
NOUNS = np.array(
    [
        E1,  # 0: scores (1, 0)     -> center of e1, confidence e / (e + 1)       = 0.731
        [0.6, 0, 0.8],  # 1: (0.6, 0)  -> e1, e^0.6 / (e^0.6 + 1)              = 0.646
        E2,  # 2: (0, 1)            -> e2, 0.731
        [0, 0.8, 0.6],  # 3: (0, 0.8)  -> e2, 0.690
        E1,  # 4: a copy of noun 0 (WordNet repeats names)
    ]
)


def test_default_n_centers() -> None:
    assert default_n_centers(50_000) == 167  # CIFAR-10 in TAC
    assert default_n_centers(5_000) == 17  # STL-10
    assert default_n_centers(13_000) == 43  # ImageNet-10
    assert default_n_centers(750) == 3  # half rounds up
    assert default_n_centers(10) == 2
    # with K: TAC's k' of filter_nouns.py for CIFAR-10/20, STL-10, ImageNet-10, ImageNet-Dogs,
    # DTD, UCF-101 and ImageNet (3K where N / 300 falls below K)
    sizes = [(50_000, 10), (50_000, 20), (5_000, 10), (13_000, 10), (19_500, 15), (5_640, 47), (9_537, 101),
             (1_281_167, 1000)]  # fmt: skip
    assert [default_n_centers(n, k) for n, k in sizes] == [167, 167, 17, 43, 65, 141, 303, 4271]
    assert default_n_centers(1_797, 10) == 30  # digits: 6 centers would be fewer than K
    assert default_n_centers(20, 10) == 20  # never more centers than images
    with pytest.raises(ValueError):
        default_n_centers(1)


def test_noun_confidences_by_hand() -> None:
    assign, conf = assign_nouns_to_centers(NOUNS, np.array([E1, E2]), block_size=2)
    np.testing.assert_array_equal(assign, [0, 0, 1, 1, 0])
    sig = lambda x: 1 / (1 + math.exp(-x))
    np.testing.assert_allclose(conf, [sig(1), sig(0.6), sig(1), sig(0.8), sig(1)], atol=1e-6)


def test_select_nouns_by_hand() -> None:
    np.testing.assert_array_equal(select_nouns(IMAGES, NOUNS, 2, per_center=1), [0, 2])
    np.testing.assert_array_equal(select_nouns(IMAGES, NOUNS, 2, per_center=2), [0, 1, 2, 3])
    # without dedupe the copy of noun 0 takes noun 1's place
    np.testing.assert_array_equal(select_nouns(IMAGES, NOUNS, 2, per_center=2, dedupe=False), [0, 2, 3, 4])
    # more places than nouns: a center keeps all it has
    np.testing.assert_array_equal(select_nouns(IMAGES, NOUNS, 2, per_center=5), [0, 1, 2, 3])


def test_top_per_center_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    assign = rng.integers(0, 6, 200)
    conf = rng.random(200).round(2)  # rounding creates ties
    expected = []
    for center in range(6):
        members = [i for i in range(200) if assign[i] == center]
        expected += sorted(members, key=lambda i: (-conf[i], i))[:3]
    np.testing.assert_array_equal(top_per_center(assign, conf, 3), sorted(expected))


def test_text_counterparts_match_a_loop() -> None:
    rng = np.random.default_rng(1)
    u = rng.normal(size=(13, 6))
    s = rng.normal(size=(7, 6))
    un = u / np.linalg.norm(u, axis=1, keepdims=True)
    sn = s / np.linalg.norm(s, axis=1, keepdims=True)
    t = 0.05
    expected = np.zeros_like(un)
    for i in range(len(un)):
        logits = [float(un[i] @ sn[j]) / t for j in range(len(sn))]
        top = max(logits)
        weights = [math.exp(z - top) for z in logits]
        total = sum(w * sn[j] for j, w in enumerate(weights)) / sum(weights)
        expected[i] = total / np.linalg.norm(total)
    got = text_counterparts(u, s, temperature=t, block_size=4)
    assert got.dtype == np.float32 and got.shape == (13, 6)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_tiny_temperature_gives_the_nearest_noun() -> None:
    rng = np.random.default_rng(2)
    u = rng.normal(size=(20, 5))
    s = rng.normal(size=(6, 5))
    sn = s / np.linalg.norm(s, axis=1, keepdims=True)
    nearest = (u @ sn.T).argmax(axis=1)
    got = text_counterparts(u, s, temperature=1e-7)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, sn[nearest], atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        text_counterparts(u, s, temperature=0.0)


def test_noun_filter_centers_are_the_normalised_means_of_each_clusters_rows() -> None:
    """TAC's filter_nouns.py rebuilds its image centers from the k-means labels of every image;
    select_nouns does so with cluster_mean_directions (an empty cluster keeps its centroid)."""
    from semclust.ops.features import cluster_mean_directions

    x = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, -5.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    centers = cluster_mean_directions(x, labels, 3)
    s = 2**-0.5
    expected = np.array([[s, s], [s, s - 1.0], [0.0, 0.0]])  # rows normalised first, then averaged
    expected[1] /= np.linalg.norm(expected[1])
    np.testing.assert_allclose(centers, expected, atol=1e-6)


def test_tac_passes_faiss_default_subsample_to_both_kmeans(monkeypatch) -> None:
    import semclust.methods.tac_notrain as tac_notrain
    import semclust.ops.tac_text as tac_text
    from semclust.ops.kmeans import spherical_kmeans

    seen: list[int | None] = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("max_points_per_centroid"))
        return spherical_kmeans(*args, **kwargs)

    monkeypatch.setattr(tac_text, "spherical_kmeans", spy)
    monkeypatch.setattr(tac_notrain, "spherical_kmeans", spy)
    rng = np.random.default_rng(0)
    x, nouns = rng.normal(size=(60, 8)).astype(np.float32), rng.normal(size=(30, 8)).astype(np.float32)
    tac_notrain.TACNoTrain(n_clusters=3, n_centers=4, n_init=1, noun_n_init=1).fit(x, nouns)
    tac_notrain.TACNoTrain(n_clusters=3, n_centers=4, n_init=1, noun_n_init=1, kmeans_max_points_per_centroid=None).fit(
        x, nouns
    )
    assert seen == [256, 256, None, None]
