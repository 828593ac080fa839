"""The ONNX Runtime backend of the offline encoder against the PyTorch reference."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semclust.data.fashion_mnist import DEFAULT_FASHION_MNIST_ROOT, FashionMNISTSource
from semclust.data.folder import FolderSource
from semclust.encoders import runtime
from semclust.encoders.minilm import MiniLMTextTower, length_buckets, pad_batch
from semclust.encoders.offline import OfflineEncoder
from semclust.encoders.preprocess import Preprocessing, images_to_array
from semclust.ops.kmeans import spherical_kmeans

onnxruntime = pytest.importorskip("onnxruntime")

real_data = pytest.mark.skipif(
    not (DEFAULT_FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST not installed at the default location",
)


@pytest.fixture(scope="module")
def encoders() -> tuple[OfflineEncoder, OfflineEncoder]:
    return OfflineEncoder(backend="onnx", threads=1), OfflineEncoder(backend="torch")


def _assert_same_views(onnx_views: dict[str, np.ndarray], torch_views: dict[str, np.ndarray]) -> None:
    assert set(onnx_views) == set(torch_views) == {"joint", "visual"}
    for name in onnx_views:
        np.testing.assert_allclose(onnx_views[name], torch_views[name], atol=1e-4, rtol=0)


@real_data
def test_backends_agree_on_fashion_mnist_and_give_the_same_clusters(encoders) -> None:  # noqa: ANN001
    onnx_encoder, torch_encoder = encoders
    assert onnx_encoder.backend == "onnx" and torch_encoder.backend == "torch"
    source = FashionMNISTSource(split="test")
    images = [source.load(i) for i in range(160)]
    onnx_views, torch_views = onnx_encoder.image_views(images), torch_encoder.image_views(images)
    _assert_same_views(onnx_views, torch_views)
    labels = [spherical_kmeans(v["visual"], 10, random_state=0, n_init=2).labels for v in (onnx_views, torch_views)]
    np.testing.assert_array_equal(labels[0], labels[1])


def test_backends_agree_on_a_folder_of_odd_sized_images(encoders, tmp_path: Path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate([(31, 57), (200, 90), (64, 64), (17, 300)]):
        (tmp_path / f"sub{i % 2}").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"sub{i % 2}" / f"{i}.png")
    source = FolderSource(tmp_path)
    images = [source.load(i) for i in range(len(source))]
    onnx_encoder, torch_encoder = encoders
    _assert_same_views(onnx_encoder.image_views(images), torch_encoder.image_views(images))


def test_text_backends_agree(encoders) -> None:  # noqa: ANN001
    texts = ["a photo of a dog.", "pullover", "a photo of a strapless evening dress with sequins.", "x"]
    onnx_encoder, torch_encoder = encoders
    assert onnx_encoder.text_tower.backend == "onnx"
    np.testing.assert_allclose(onnx_encoder.encode_texts(texts), torch_encoder.encode_texts(texts), atol=1e-5)


def test_length_bucketing_changes_no_embedding() -> None:
    tower = MiniLMTextTower(batch_size=3)
    texts = ["sea", "a very long noun phrase with many many words in it", "cat", "dog house", "ox", "a b c d e f"]
    one_by_one = np.concatenate([tower.encode([t]) for t in texts])
    np.testing.assert_allclose(tower.encode(texts), one_by_one, atol=1e-5)


def test_length_buckets_group_similar_lengths_and_pad_after_each_sequence() -> None:
    token_ids = [[1, 2, 3, 4], [5], [6, 7], [8, 9, 10], [11]]
    buckets = [b.tolist() for b in length_buckets(token_ids, 2)]
    assert buckets == [[1, 4], [2, 3], [0]]
    ids, mask = pad_batch([token_ids[2], token_ids[0]], pad_id=0)
    assert ids.tolist() == [[6, 7, 0, 0], [1, 2, 3, 4]] and mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_images_to_array_matches_the_torch_normalisation() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    prep = Preprocessing(image_size=16, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.2))
    pixels = torch.from_numpy(np.array(image.resize((24, 16), Image.Resampling.BICUBIC).crop((4, 0, 20, 16))))
    expected = (pixels.permute(2, 0, 1).float() / 255 - torch.tensor(prep.mean).view(3, 1, 1)) / torch.tensor(
        prep.std
    ).view(3, 1, 1)
    np.testing.assert_allclose(images_to_array([image], prep)[0], expected.numpy(), atol=1e-5)


def test_greyscale_images_give_the_pixels_of_their_rgb_conversion() -> None:
    """The L-mode shortcut (one channel resized) must equal resizing the RGB conversion, also
    when a batch mixes grey and colour images and when the scale is a downsize."""
    rng = np.random.default_rng(1)
    grey = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode="L") for shape in [(28, 28), (50, 37)]]
    colour = Image.fromarray(rng.integers(0, 256, (33, 21, 3), dtype=np.uint8))
    mixed = [grey[0], colour, grey[1]]
    # Per-channel statistics, and one mean and std for all (where grey channels are copied).
    for prep in (Preprocessing(24, (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)), Preprocessing(24)):
        expected = images_to_array([im.convert("RGB") for im in mixed], prep)
        np.testing.assert_array_equal(images_to_array(mixed, prep), expected)
        np.testing.assert_array_equal(images_to_array(grey, prep), expected[[0, 2]])


def test_array_sources_hand_greyscale_over_as_l_and_colour_as_rgb() -> None:
    from semclust.data.base import ArraySource

    grey = ArraySource(np.full((2, 5, 5), 7, np.uint8))
    colour = ArraySource(np.full((1, 5, 5, 3), 9, np.uint8))
    assert grey.load(1).mode == "L" and np.asarray(grey.load(1)).tolist() == [[7] * 5] * 5
    assert colour.load(0).mode == "RGB"


def test_the_thread_option_reaches_the_sessions() -> None:
    encoder = OfflineEncoder(image_size=64, backend="onnx", threads=1)
    encoder.image_views([Image.new("RGB", (40, 40), "white")])
    assert encoder.visual_tower.session.get_session_options().intra_op_num_threads == 1
    assert encoder.text_tower._session.get_session_options().intra_op_num_threads == 1
    assert encoder.config()["runtime"] == {"backend": "onnx", "threads": 1}
    assert OfflineEncoder(backend="onnx").threads == runtime.default_threads()
    with pytest.raises(ValueError, match="threads"):
        OfflineEncoder(threads=0)


def test_without_onnxruntime_auto_uses_torch_and_onnx_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "_ort_providers", lambda device: None)
    with caplog.at_level(logging.WARNING, logger="semclust"):
        assert runtime.resolve_backend("auto", torch.device("cpu")) == "torch"
        assert not caplog.records
        assert runtime.resolve_backend("onnx", torch.device("cpu")) == "torch"
    assert "using PyTorch" in caplog.records[0].getMessage()
    with pytest.raises(ValueError, match="backend must be one of"):
        runtime.resolve_backend("tensorrt", torch.device("cpu"))


def test_a_failing_onnx_runtime_falls_back_to_torch_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import semclust.encoders.offline as offline

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("InvalidProtobuf: cannot load model")

    monkeypatch.setattr(offline, "OnnxVisualTower", broken)
    monkeypatch.setattr(runtime, "ort_session", broken)
    encoder = OfflineEncoder(image_size=64, backend="onnx", bridge="conse", class_text="name")
    image = Image.new("RGB", (40, 40), "red")
    with caplog.at_level(logging.WARNING, logger="semclust"):
        views = encoder.image_views([image])
    reference = OfflineEncoder(image_size=64, backend="torch", bridge="conse", class_text="name").image_views([image])
    _assert_same_views(views, reference)
    assert encoder.backend == "torch"
    assert any("visual tower" in r.getMessage() and "InvalidProtobuf" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="semclust"):
        text_tower = MiniLMTextTower(backend="onnx")
    assert text_tower.backend == "torch" and "text tower" in caplog.records[0].getMessage()
    expected = MiniLMTextTower(backend="torch").encode(["red"])
    np.testing.assert_allclose(text_tower.encode(["red"]), expected, atol=1e-6)


def test_embed_records_the_rate_and_backend(tmp_path: Path) -> None:
    from semclust import workflow
    from semclust.data.base import ArraySource

    rng = np.random.default_rng(0)
    source = ArraySource(rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), name="tiny")
    result = workflow.embed(source, encoder="offline:image_size=64", out=tmp_path / "store", threads=1)
    record = json.loads((tmp_path / "store" / "run.json").read_text())
    assert record["n_embedded"] == 10 and record["images_per_s"] == result.report.items_per_s > 0
    assert record["encoder"]["runtime"] == {"backend": "onnx", "threads": 1}


def test_classifier_head_is_the_torch_fc_layer_for_either_backend() -> None:
    from semclust.naming.evidence import classifier_head

    onnx_encoder = OfflineEncoder(image_size=64, backend="onnx", threads=1)
    fc = OfflineEncoder(image_size=64, backend="torch").visual_tower.net._fc
    weights, bias = classifier_head(onnx_encoder)
    np.testing.assert_array_equal(weights, fc.weight.detach().numpy())
    np.testing.assert_array_equal(bias, fc.bias.detach().numpy())
    assert onnx_encoder._visual is None  # reading the head loads no tower


def test_the_bridge_runs_with_single_threaded_blas_and_the_limit_is_lifted_after(monkeypatch) -> None:
    """numpy's BLAS threads spin after each call and take the cores from the session's pool."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    encoder = OfflineEncoder(image_size=64, backend="onnx", threads=2)
    encoder.image_views([Image.new("RGB", (40, 40), "white")])
    seen: list[list[int]] = []
    real = encoder.joint_from

    def spy(features, logits):
        seen.append(blas_threads())
        return real(features, logits)

    monkeypatch.setattr(encoder, "joint_from", spy)
    before = blas_threads()
    encoder.image_views([Image.new("RGB", (40, 40), "black")])
    assert seen and all(n == 1 for n in seen[0])
    assert blas_threads() == before
