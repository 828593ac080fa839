"""The bridge variants: closed forms on the real classifier weights, mixing, normalisation, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semclust.encoders.bridge import ConSEBridge, LinearBridge, MixBridge, procrustes_map, ridge_map
from semclust.encoders.offline import OfflineEncoder, imagenet_class_texts
from semclust.encoders.registry import encoder_from_config, get_encoder


@pytest.fixture(scope="module")
def encoder() -> OfflineEncoder:
    return OfflineEncoder(image_size=64, top_t=5, batch_size=4, bridge="linear", bridge_lambda=0.5)


@pytest.fixture(scope="module")
def tower_outputs(encoder: OfflineEncoder) -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(0)
    batch = torch.tensor(rng.normal(size=(6, 3, 64, 64)), dtype=torch.float32)
    features, logits = encoder.visual_tower.run(batch.numpy())
    return features, torch.from_numpy(logits)


def test_ridge_map_primal_equals_dual() -> None:
    rng = np.random.default_rng(0)
    for c, d in ((8, 5), (5, 8)):
        w, t = rng.normal(size=(c, d)), rng.normal(size=(c, 3))
        primal = np.linalg.solve(w.T @ w + 0.3 * np.eye(d), w.T @ t)
        np.testing.assert_allclose(ridge_map(w, t, 0.3), primal, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="bridge_lambda"):
        ridge_map(w, t, 0.0)


def test_linear_bridge_is_closed_form_ridge_on_the_real_fc_weights(
    encoder: OfflineEncoder, tower_outputs: tuple[np.ndarray, torch.Tensor]
) -> None:
    features, logits = tower_outputs
    w = encoder.classifier_weights().astype(np.float64)
    assert w.shape == (1000, 1280)
    t = encoder.class_text_embeddings().astype(np.float64)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    m = np.linalg.solve(w.T @ w + 0.5 * np.eye(1280), w.T @ t)  # primal closed form
    expected = features.astype(np.float64) @ m
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = encoder.joint_from(features, logits)
    assert got.shape == (6, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-4)
    # No bias: scaling or normalising the input features changes nothing.
    np.testing.assert_allclose(encoder.joint_from(3.0 * features, logits), got, atol=1e-5)


def test_procrustes_is_semi_orthogonal_and_beats_a_random_rotation() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(50, 12))
    q_true = np.linalg.qr(rng.normal(size=(12, 4)))[0]
    t = w @ q_true
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    q = procrustes_map(w, t)
    assert q.shape == (12, 4)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    q_rand = np.linalg.qr(rng.normal(size=(12, 4)))[0]
    assert np.linalg.norm(wn @ q - t) < np.linalg.norm(wn @ q_rand - t)
    with pytest.raises(ValueError, match="visual dim"):
        procrustes_map(rng.normal(size=(5, 3)), rng.normal(size=(5, 4)))


def test_mix_endpoints_are_conse_and_linear() -> None:
    rng = np.random.default_rng(2)
    class_text = rng.normal(size=(7, 4)).astype(np.float32)
    weights = rng.normal(size=(7, 9)).astype(np.float32)
    features = rng.normal(size=(5, 9)).astype(np.float32)
    logits = torch.tensor(rng.normal(size=(5, 7)), dtype=torch.float32)
    conse, linear = ConSEBridge(class_text, top_t=3), LinearBridge(weights, class_text, lam=0.7)
    np.testing.assert_allclose(MixBridge(conse, linear, 1.0).embed(features, logits), conse(logits), atol=1e-6)
    np.testing.assert_allclose(MixBridge(conse, linear, 0.0).embed(features, logits), linear(features), atol=1e-6)
    half = MixBridge(conse, linear, 0.5).embed(features, logits)
    np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="bridge_alpha"):
        MixBridge(conse, linear, 1.5)


def test_offline_variants_share_towers_and_are_normalised(
    encoder: OfflineEncoder, tower_outputs: tuple[np.ndarray, torch.Tensor]
) -> None:
    features, logits = tower_outputs
    conse = encoder.with_bridge(bridge="conse")
    assert conse.visual_tower is encoder.visual_tower and conse.text_tower is encoder.text_tower
    for options in (
        {"bridge": "conse", "top_t": 3},
        {"bridge": "procrustes"},
        {"bridge": "mix", "bridge_alpha": 0.3},
    ):
        joint = encoder.with_bridge(**options).joint_from(features, logits)
        assert joint.shape == (6, 384)
        np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1.0, rtol=1e-5)
    mix1 = encoder.with_bridge(bridge="mix", bridge_alpha=1.0).joint_from(features, logits)
    np.testing.assert_allclose(mix1, conse.joint_from(features, logits), atol=1e-6)
    mix0 = encoder.with_bridge(bridge="mix", bridge_alpha=0.0).joint_from(features, logits)
    np.testing.assert_allclose(mix0, encoder.joint_from(features, logits), atol=1e-6)
    with pytest.raises(ValueError, match="with_bridge cannot change"):
        encoder.with_bridge(image_size=96)


def test_class_texts_name_gloss_hypernym() -> None:
    names, glosses, hypers = (imagenet_class_texts(t) for t in ("name", "gloss", "hypernym"))
    assert len(glosses) == len(hypers) == 1000
    assert names[0] == "tench" and glosses[0].startswith("tench: freshwater dace-like game fish")
    assert hypers[0] == "tench, a kind of cyprinid"
    assert not any('"' in g for g in glosses)  # example sentences are dropped
    with pytest.raises(ValueError, match="class_text"):
        imagenet_class_texts("nosuch")


def test_bridge_options_round_trip_through_the_config() -> None:
    enc = get_encoder("offline:image_size=64,bridge=mix,class_text=gloss,bridge_lambda=0.25,bridge_alpha=0.3")
    assert (enc.bridge_kind, enc.class_text, enc.bridge_lambda, enc.bridge_alpha) == ("mix", "gloss", 0.25, 0.3)
    config = enc.config()
    assert config["options"]["bridge"] == "mix" and config["bridge"]["alpha"] == 0.3
    assert config["bridge"]["lambda"] == 0.25 and config["bridge"]["class_text"] == "gloss"
    rebuilt = encoder_from_config(config)
    assert rebuilt.config()["options"] == config["options"]
    assert rebuilt.config()["bridge"] == config["bridge"]
    # Different bridges never share a config (so feature stores are never mixed).
    assert get_encoder("offline:bridge=linear").config() != get_encoder("offline").config()
    for bad, match in (("bridge=nosuch", "bridge must"), ("class_text=x", "class_text"), ("bridge_lambda=0", "lambda")):
        with pytest.raises(ValueError, match=match):
            get_encoder(f"offline:{bad}")
