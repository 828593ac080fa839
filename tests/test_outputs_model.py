"""Saved models: every registry method fits, saves, reloads and predicts exactly as in memory."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from fakes import ColourEncoder, colour_images
from PIL import Image

from semclust.methods.registry import METHODS, FeatureSet, run_method
from semclust.ops.features import l2_normalize
from semclust.outputs.model import load, load_model, model_inputs, save_result

K, PER, DJ, DV = 3, 20, 16, 24
ENCODER_CONFIG = {"name": "colour", "spec": "colour", "dim": DJ}


@pytest.fixture(autouse=True)
def _one_thread():
    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(faiss_threads)


def _views(n_per: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Joint rows near axes 0-2 of R^16, visual rows near axes 0-2 of R^24 (same classes)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), n_per)
    joint = np.eye(DJ, dtype=np.float32)[y] + 0.3 * rng.standard_normal((len(y), DJ)).astype(np.float32)
    visual = np.eye(DV, dtype=np.float32)[y] + 0.3 * rng.standard_normal((len(y), DV)).astype(np.float32)
    return l2_normalize(joint), l2_normalize(visual)


def _features() -> FeatureSet:
    joint, visual = _views(PER, 0)
    rng = np.random.default_rng(1)
    planted = np.repeat(np.eye(DJ, dtype=np.float32)[:K], 2, axis=0) + 0.05 * rng.standard_normal((2 * K, DJ))
    distract = rng.standard_normal((6, DJ))
    nouns = l2_normalize(np.concatenate([planted, distract]).astype(np.float32))
    names = [f"c{c}_{i}" for c in range(K) for i in range(2)] + [f"x{i}" for i in range(6)]

    def encode_texts(texts):
        return l2_normalize(np.stack([np.eye(DJ)[hash(t) % DJ] + 0.1 for t in texts]).astype(np.float32))

    return FeatureSet(joint=joint, visual=visual, encode_texts=encode_texts, nouns=lambda: (names, nouns))


OPTIONS = {
    "kmeans": {},
    "zeroshot": {"class_names": ["a", "b", "c"]},
    "tac-notrain": {"n_centers": K, "nouns_per_center": 2, "n_init": 2},
    "tac": {"n_centers": K, "nouns_per_center": 2, "n_init": 2, "epochs": 3, "batch_size": 32, "hidden_dim": 16},
    "laic-notrain": {"n_centers": K, "nouns_per_center": 2, "n_init": 2},
    "laic": {"n_centers": K, "nouns_per_center": 2, "n_init": 2, "centers": "free", "epochs": 2, "n_neighbours": 5},
    "scan": {"n_heads": 2, "epochs": 3, "batch_size": 32, "hidden_dim": 8, "n_neighbours": 5},
}


def test_every_registry_method_is_covered() -> None:
    assert set(OPTIONS) == set(METHODS) - {"asd"}


@pytest.mark.parametrize("method", sorted(OPTIONS))
def test_saved_model_predicts_like_the_fitted_one(method: str, tmp_path: Path) -> None:
    features = _features()
    result = run_method(method, features, K, 0, **OPTIONS[method])
    save_result(tmp_path / "model", method=method, result=result, encoder_config=ENCODER_CONFIG)
    loaded = load(tmp_path)  # a run directory: RUN_DIR/model
    assert loaded.method == method and type(loaded.estimator) is type(result.estimator)
    assert loaded.estimator.get_params().keys() == result.estimator.get_params().keys()
    assert loaded.cluster_names == result.cluster_names and loaded.encoder_config == ENCODER_CONFIG
    joint, visual = _views(7, seed=5)  # new data
    inputs = model_inputs(method, result.info)
    assert loaded.inputs == inputs
    args = {arg: {"joint": joint, "visual": visual}[view] for arg, view in inputs.items()}
    expected = result.estimator.predict(**args)
    np.testing.assert_array_equal(loaded.predict_features({"joint": joint, "visual": visual}), expected)
    np.testing.assert_array_equal(loaded.estimator.predict(**args), expected)
    np.testing.assert_array_equal(loaded.estimator.labels_, result.labels)
    if method in ("tac", "tac-notrain"):
        assert inputs == {"X": "joint", "image_features": "visual"}
    if method == "scan":
        np.testing.assert_array_equal(loaded.estimator.predict_proba(visual), result.estimator.predict_proba(visual))
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["n_clusters"] == result.n_clusters and manifest["format_version"] == 1


def _saved(tmp_path: Path, method: str = "tac") -> Path:
    result = run_method(method, _features(), K, 0, **OPTIONS[method])
    save_result(tmp_path / "model", method=method, result=result, encoder_config=ENCODER_CONFIG)
    return tmp_path / "model"


def test_tampered_or_missing_files_fail_naming_the_file(tmp_path: Path) -> None:
    model = _saved(tmp_path)
    weights, manifest = model / "model.safetensors", model / "model.json"
    blob, text = weights.read_bytes(), manifest.read_text()

    weights.write_bytes(blob[: len(blob) // 2])  # truncated
    with pytest.raises(ValueError, match=r"model\.safetensors.*checksum"):
        load_model(model)
    weights.write_bytes(b"\xff" * 8 + blob[8:])  # header corrupted
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        load_model(model)
    weights.unlink()
    with pytest.raises(ValueError, match=r"model\.safetensors.*missing"):
        load_model(model)
    weights.write_bytes(blob)

    # a tensor dropped from the manifest's list, a renamed field, broken JSON, unknown method
    data = json.loads(text)
    del data["tensors"]["centers_"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"model\.safetensors.*centers_.*not listed"):
        load_model(model)
    data = json.loads(text)
    data["params"]["not_a_param"] = 1
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"model\.json.*valid TAC"):
        load_model(model)
    manifest.write_text(text[:-20])
    with pytest.raises(ValueError, match=r"model\.json.*not a readable"):
        load_model(model)
    data = json.loads(text)
    data["method"] = "os.system"
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"model\.json.*unknown method"):
        load_model(model)
    manifest.unlink()
    with pytest.raises(ValueError, match="no saved model"):
        load(tmp_path)
    manifest.write_text(text)
    assert load(tmp_path).method == "tac"


def test_a_tensor_missing_from_the_weights_fails(tmp_path: Path) -> None:
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    model = _saved(tmp_path, "kmeans")
    arrays = st_load((model / "model.safetensors").read_bytes())
    del arrays["centers_"]
    blob = st_save(arrays)
    (model / "model.safetensors").write_bytes(blob)
    data = json.loads((model / "model.json").read_text())
    data["weights_sha256"] = __import__("hashlib").sha256(blob).hexdigest()
    (model / "model.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"model\.safetensors.*missing tensor.*centers_"):
        load_model(model)


def test_predict_images_skips_broken_files(tmp_path: Path) -> None:
    from semclust.data.base import ArraySource
    from semclust.methods.kmeans import KMeans
    from semclust.outputs.model import save_model

    encoder = ColourEncoder()
    images, labels = colour_images(30, seed=0)
    views = encoder.image_views([ArraySource(images).load(i) for i in range(len(images))])
    estimator = KMeans(n_clusters=3, n_init=2).fit(views["visual"].astype(np.float16).astype(np.float32))
    save_model(
        tmp_path / "model",
        method="kmeans",
        estimator=estimator,
        inputs={"X": "visual"},
        encoder_config=encoder.config(),
        n_clusters=3,
        cluster_names=[["red"], ["green"], ["blue"]],
        extra={"feature_dtype": "float16"},
    )
    loaded = load(tmp_path)
    folder = tmp_path / "new"
    folder.mkdir()
    new, new_labels = colour_images(6, seed=9)
    for i, image in enumerate(new):
        Image.fromarray(image).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    ids, predicted, skipped = loaded.predict_images(folder, encoder=encoder)
    assert ids == [f"{i}.png" for i in range(6)] and [s.item_id for s in skipped] == ["broken.png"]
    # same colour, same cluster as in training
    by_colour = {int(labels[i]): int(estimator.labels_[i]) for i in range(3)}
    assert predicted.tolist() == [by_colour[int(c)] for c in new_labels]
    # explicit files: ids as given
    ids, again, _ = loaded.predict_images([str(folder / "0.png"), str(folder / "1.png")], encoder=encoder)
    assert ids == [str(folder / "0.png"), str(folder / "1.png")] and again.tolist() == predicted[:2].tolist()
    with pytest.raises(FileNotFoundError):
        loaded.predict_images([str(folder / "nope.png")], encoder=encoder)
    with pytest.raises(ValueError, match="visual view"):
        load(tmp_path).predict_features({"joint": views["joint"]})
