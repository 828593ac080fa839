from __future__ import annotations

import numpy as np
import pytest

from semclust.methods.naming import name_clusters, text_space_centroids


def loop_names(centers, nouns, names, top):
    out = []
    for c in centers:
        cn = float(np.sqrt(sum(v * v for v in c)))
        if cn == 0.0:
            out.append([])
            continue
        scored = []
        for j, s in enumerate(nouns):
            sn = float(np.sqrt(sum(v * v for v in s)))
            cos = sum(float(a) * float(b) for a, b in zip(c, s)) / (cn * sn)
            scored.append((-round(cos, 6), j))
        chosen = []
        for _, j in sorted(scored):
            if names[j] not in chosen:
                chosen.append(names[j])
            if len(chosen) == top:
                break
        out.append(chosen)
    return out


def test_name_clusters_matches_loop_reference() -> None:
    rng = np.random.default_rng(0)
    nouns = rng.normal(size=(12, 6)).astype(np.float32) * rng.uniform(0.5, 3, size=(12, 1))
    names = ["a", "b", "c", "d", "e", "f", "g", "h", "a", "c", "i", "j"]  # repeated names
    centers = rng.normal(size=(4, 6)).astype(np.float32)
    centers[2] = 0.0  # empty cluster
    for top in (1, 3, 5, 20):
        got = name_clusters(centers, nouns, names, top=top)
        assert got == loop_names(centers, nouns, names, top)
        for row in got:
            assert len(row) == len(set(row))
    assert got[2] == []
    assert len(got[0]) == 10  # only 10 distinct names exist


def test_name_clusters_hand_built() -> None:
    nouns = np.array([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0, 1]], dtype=np.float32)
    names = ["cat", "dog", "kitten", "car"]
    centers = np.array([[2, 0, 0], [0, 0.1, 1]], dtype=np.float32)
    assert name_clusters(centers, nouns, names, top=2) == [["cat", "kitten"], ["car", "dog"]]


def test_name_clusters_errors() -> None:
    with pytest.raises(ValueError, match="noun_names"):
        name_clusters(np.ones((1, 2)), np.ones((2, 2)), ["x"])
    with pytest.raises(ValueError, match="dimension"):
        name_clusters(np.ones((1, 3)), np.ones((2, 2)), ["x", "y"])


def test_text_space_centroids_matches_loop_and_handles_empty() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    labels = rng.choice([0, 1, 3], size=20)  # cluster 2 empty
    got = text_space_centroids(x, labels, 4)
    assert got.dtype == np.float32 and got.shape == (4, 5)
    for k in range(4):
        members = [x[i] / np.linalg.norm(x[i]) for i in range(20) if labels[i] == k]
        if not members:
            np.testing.assert_array_equal(got[k], 0.0)
            continue
        mean = np.sum(members, axis=0)
        np.testing.assert_allclose(got[k], mean / np.linalg.norm(mean), atol=1e-5)
    assert name_clusters(got, x, [str(i) for i in range(20)], top=2)[2] == []
    with pytest.raises(ValueError, match="labels must lie"):
        text_space_centroids(x, np.full(20, 4), 4)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        text_space_centroids(x, labels[:5], 4)
