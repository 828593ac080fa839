"""The paired (image, name) text map: ridge fit, code-point split, cross-fitting never sees a row's own pair."""

from __future__ import annotations

import numpy as np
from PIL import Image

from semclust.encoders.paired_bridge import (
    PairedBridge,
    PairedTextMap,
    paired_matrix,
    render_variants,
    split_by_codepoint,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _linear_pairs(rng: np.random.Generator, n: int, dim: int, text_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit x and unit t with t = normalise(x @ Q) exactly (Q's columns orthonormal, all rows of
    x the same norm along Q), so a linear map can fit them."""
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    t = _unit(rng.normal(size=(n, text_dim)))
    rest = _unit(rng.normal(size=(n, dim - text_dim)))
    x = _unit(t @ q[:, :text_dim].T + rest @ q[:, text_dim:].T)
    return x, t


def test_map_recovers_a_linear_relation() -> None:
    rng = np.random.default_rng(0)
    x, t = _linear_pairs(rng, 200, 12, 5)
    got = PairedTextMap(lam=1e-4).fit(x, t).transform(x)
    np.testing.assert_allclose(got, t, atol=1e-3)


def test_split_is_stable_and_about_half() -> None:
    keys = [f"{c:X}" for c in range(0x1F600, 0x1F700)]
    a = split_by_codepoint(keys)
    assert np.array_equal(a, split_by_codepoint(keys))
    assert 0.35 < a.mean() < 0.65


def test_cross_fitting_maps_each_half_with_the_other_halfs_pairs() -> None:
    rng = np.random.default_rng(1)
    x, texts = _linear_pairs(rng, 120, 10, 4)
    keys = np.array([f"{0x1F300 + i:X}" for i in range(120)])
    in_a = split_by_codepoint(list(keys))
    corrupted = texts.copy()
    corrupted[in_a] = _unit(rng.normal(size=(int(in_a.sum()), 4)))  # half A's own pairs are garbage
    pairs = {"visual": np.stack([x, x], axis=1), "texts": corrupted, "keys": keys}  # two renderings, identical
    view = np.empty_like(texts)
    for half, rows in (("a", in_a), ("b", ~in_a)):  # each half through the map that holds it out
        matrix, _ = paired_matrix(pairs, half, None, None, lam=1e-4)
        view[rows] = PairedBridge(matrix)(x[rows])
    # half A is mapped by the map fitted on B (clean pairs): right; B by A's garbage: wrong
    assert np.min(np.sum(view[in_a] * texts[in_a], axis=1)) > 0.99
    assert np.mean(np.sum(view[~in_a] * texts[~in_a], axis=1)) < 0.6


def test_render_variants() -> None:
    image = Image.new("RGB", (32, 32), (255, 0, 0))
    colour, grey, inverted, low = render_variants(image)
    assert colour is image and grey.mode == "RGB" and low.size == (32, 32)
    assert np.asarray(grey)[0, 0, 0] == np.asarray(grey)[0, 0, 1]
    assert int(np.asarray(inverted)[0, 0, 0]) == 255 - int(np.asarray(grey)[0, 0, 0])
