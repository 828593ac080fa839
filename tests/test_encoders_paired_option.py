"""``offline:bridge=paired``: the map fitted on rendered emoji pairs, a half left out on request,
the pairs cached once per encoder setting, and a clear error without the font."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFont

from semclust.data.base import SourceError
from semclust.encoders import paired_bridge
from semclust.encoders.paired_bridge import (
    PairedTextMap,
    fit_rows,
    holdout_of,
    paired_matrix,
    split_by_codepoint,
)
from semclust.encoders.registry import encoder_from_config, get_encoder

# Letters stand in for emoji (Pillow's bundled font draws them); the space has no glyph.
FAKE_TEST = """# group: Smileys & Emotion
# subgroup: face-smiling
0041 ; fully-qualified # A E1.0 grinning face
0042 ; fully-qualified # B E1.0 smiling face
0048 ; fully-qualified # H E1.0 winking face
# group: Animals & Nature
# subgroup: animal-mammal
0043 ; fully-qualified # C E1.0 dog face
0044 ; fully-qualified # D E1.0 cat face
0020 ; fully-qualified # (space) E1.0 blank
# group: Food & Drink
# subgroup: food-fruit
0046 ; fully-qualified # F E1.0 grapes
0047 ; fully-qualified # G E1.0 melon
"""


def _pairs(rng: np.random.Generator, n: int = 40, renderings: int = 3, dim: int = 12, text_dim: int = 5) -> dict:
    keys = np.array([f"{0x1F600 + i:X}" for i in range(n)])
    visual = rng.normal(size=(n, renderings, dim)).astype(np.float32)
    visual /= np.linalg.norm(visual, axis=2, keepdims=True)
    texts = rng.normal(size=(n, text_dim)).astype(np.float32)
    return {"visual": visual, "texts": texts / np.linalg.norm(texts, axis=1, keepdims=True), "keys": keys}


def test_holdout_half_is_left_out_of_the_fit() -> None:
    rng = np.random.default_rng(0)
    pairs = _pairs(rng)
    weights, class_texts = rng.normal(size=(6, 12)), rng.normal(size=(6, 5))
    in_a = split_by_codepoint(list(pairs["keys"]))
    assert 0 < in_a.sum() < len(in_a)
    matrix, n_fit = paired_matrix(pairs, "a", weights, class_texts, lam=0.5)
    assert n_fit == int((~in_a).sum())
    # the same ridge fit by hand on half B's renderings (each paired with its emoji's text)
    x = pairs["visual"][~in_a].reshape(-1, 12)
    t = np.repeat(pairs["texts"][~in_a], 3, axis=0)
    expected = PairedTextMap(0.5).fit(x, t, weights, class_texts).matrix_
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-6)
    # half A's own pairs do not move the map that holds it out; they move the full map
    corrupted = {**pairs, "texts": pairs["texts"].copy()}
    corrupted["texts"][in_a] = -corrupted["texts"][in_a]
    np.testing.assert_array_equal(paired_matrix(corrupted, "a", weights, class_texts, 0.5)[0], matrix)
    full, n_all = paired_matrix(pairs, "none", weights, class_texts, 0.5)
    assert n_all == len(in_a)
    assert not np.allclose(paired_matrix(corrupted, "none", weights, class_texts, 0.5)[0], full)


def test_holdout_of_names_each_keys_own_half() -> None:
    keys = [f"{0x1F300 + i:X}" for i in range(30)]
    halves = holdout_of(keys)
    for key, half in zip(keys, halves):
        # the map that scores a key honestly is the one whose fit leaves that key out
        assert not fit_rows([key], half)[0]
    with pytest.raises(ValueError, match="paired_holdout"):
        fit_rows(keys, "c")


@pytest.fixture
def fake_emoji(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    font = tmp_path / "fake.ttf"
    font.write_bytes(ImageFont.load_default(size=20).font_bytes)
    test = tmp_path / "emoji-test.txt"
    test.write_text(FAKE_TEST, encoding="utf-8")
    monkeypatch.setenv("SEMCLUST_EMOJI_FONT", str(font))
    monkeypatch.setenv("SEMCLUST_EMOJI_TEST", str(test))
    monkeypatch.setenv("SEMCLUST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paired_bridge, "CLDR_ANNOTATIONS", tmp_path / "no-cldr.xml")
    paired_bridge.cldr_keywords.cache_clear()
    return tmp_path


def test_paired_encoder_fits_on_the_font_caches_pairs_and_records_its_setting(fake_emoji, monkeypatch) -> None:
    from PIL import Image

    encoder = get_encoder("offline:bridge=paired,paired_holdout=b,image_size=64", batch_size=4)
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    views = encoder.image_views([image])
    raw, _ = encoder.visual_and_logits([image])
    # the joint view is the paired map applied to the visual features
    pairs = paired_bridge.cached_emoji_pairs(encoder)
    assert list(pairs["keys"]) == ["41", "42", "48", "43", "44", "46", "47"]  # the blank one has no glyph
    assert pairs["visual"].shape == (7, 4, 1280)
    matrix, n_fit = paired_matrix(
        pairs, "b", encoder.classifier_weights(), encoder.class_text_embeddings(), encoder.bridge_lambda
    )
    expected = raw @ matrix
    np.testing.assert_allclose(views["joint"][0], expected[0] / np.linalg.norm(expected[0]), atol=1e-5)
    config = encoder.config()
    assert config["options"]["bridge"] == "paired" and config["options"]["paired_holdout"] == "b"
    assert n_fit == int(split_by_codepoint(list(pairs["keys"])).sum())  # half "b" left out: half A fitted
    assert encoder.config() == get_encoder("offline:bridge=paired,paired_holdout=b,image_size=64").config()
    # a second encoder of the same setting reads the cached pairs instead of rendering again
    monkeypatch.setattr(paired_bridge, "emoji_pair_features", lambda *a, **k: pytest.fail("pairs recomputed"))
    again = encoder_from_config(config)
    np.testing.assert_allclose(again.image_views([image])["joint"], views["joint"], atol=1e-5)
    # the other half's encoder shares the cached pairs but not the map
    other = encoder.with_bridge(paired_holdout="a")
    assert not np.allclose(other.image_views([image])["joint"], views["joint"], atol=1e-3)


def test_default_encoder_config_does_not_grow_the_paired_option() -> None:
    assert "paired_holdout" not in get_encoder("offline").config()["options"]
    with pytest.raises(ValueError, match="paired_holdout"):
        get_encoder("offline:bridge=paired,paired_holdout=both")


def test_paired_bridge_without_the_font_names_the_package(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEMCLUST_EMOJI_FONT", str(tmp_path / "missing.ttf"))
    monkeypatch.setenv("SEMCLUST_CACHE", str(tmp_path / "cache"))
    encoder = get_encoder("offline:bridge=paired,image_size=64")
    with pytest.raises(SourceError, match="fonts-noto-color-emoji"):
        _ = encoder.bridge


def test_held_out_view_maps_each_emoji_with_the_map_that_left_it_out() -> None:
    from semclust.encoders.paired_bridge import held_out_joint_view

    class Recorder:
        """Stands in for the encoder: the 'map' of holdout h writes h's code into every row."""

        def with_bridge(self, bridge: str, paired_holdout: str):
            assert bridge == "paired"
            code = {"a": 1.0, "b": 2.0}[paired_holdout]

            class Bridge:
                def embed(self, visual, logits):
                    return np.full((len(visual), 3), code, dtype=np.float32)

            return type("Copy", (), {"bridge": Bridge()})()

    keys = [f"{0x1F400 + i:X}" for i in range(25)]
    view = held_out_joint_view(Recorder(), np.zeros((25, 4), np.float32), keys)
    in_a = split_by_codepoint(keys)
    np.testing.assert_array_equal(view[:, 0], np.where(in_a, 1.0, 2.0))


def test_embedding_emoji_with_the_paired_bridge_warns_that_they_are_not_held_out(caplog) -> None:
    from types import SimpleNamespace

    from semclust.encoders.paired_bridge import warn_if_fitted_on

    emoji = SimpleNamespace(name="emoji")
    with caplog.at_level("WARNING", logger="semclust"):
        assert warn_if_fitted_on(emoji, SimpleNamespace(bridge_kind="paired", paired_holdout="none"))
    assert "not held out" in caplog.text
    assert not warn_if_fitted_on(emoji, SimpleNamespace(bridge_kind="procrustes"))
    assert not warn_if_fitted_on(SimpleNamespace(name="fashion-mnist"), SimpleNamespace(bridge_kind="paired"))


def test_procrustes_paired_map_is_orthogonal_and_fits_a_rotation() -> None:
    rng = np.random.default_rng(4)
    pairs = _pairs(rng, n=60, renderings=2, dim=8, text_dim=3)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    rotation = q[:, :3]  # orthonormal columns
    # unit visual rows inside the rotation's span, so texts = visual @ rotation are unit too and
    # a Procrustes fit must recover the rotation itself
    texts = rng.normal(size=(60, 3))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    pairs["texts"] = texts
    pairs["visual"] = np.stack([texts @ rotation.T] * 2, axis=1).astype(np.float32)
    class_texts = rng.normal(size=(5, 3))
    class_texts /= np.linalg.norm(class_texts, axis=1, keepdims=True)
    weights = class_texts @ rotation.T
    matrix, _ = paired_matrix(pairs, "none", weights, class_texts, method="procrustes")
    np.testing.assert_allclose(matrix.T @ matrix, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(matrix, rotation, atol=1e-4)
    with pytest.raises(ValueError, match="paired_method"):
        paired_matrix(pairs, "none", weights, class_texts, method="cca")
    with pytest.raises(ValueError, match="paired_method"):
        get_encoder("offline:bridge=paired,paired_method=cca")
