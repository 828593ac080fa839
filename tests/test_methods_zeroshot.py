from __future__ import annotations

import zlib

import numpy as np
import pytest

from semclust.methods.base import NotFittedError
from semclust.methods.zeroshot import ZeroShot, build_class_embeddings


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def fake_encode_texts(texts: list[str]) -> np.ndarray:
    """Deterministic, non-normalised embedding per text, seeded by the text itself."""
    rows = [
        np.random.default_rng(zlib.crc32(t.encode())).normal(size=8) * (1 + len(t))
        for t in texts
    ]
    return np.stack(rows)


def test_build_class_embeddings_matches_loop_reference() -> None:
    names = ["cat", "dog", "tree"]
    templates = ["a photo of a {}.", "{}", "a {} in {{braces}}"]
    out = build_class_embeddings(fake_encode_texts, names, templates)
    assert out.shape == (3, 8) and out.dtype == np.float32
    for i, name in enumerate(names):
        per_template = [unit(fake_encode_texts([t.replace("{}", name)])[0]) for t in templates]
        np.testing.assert_allclose(out[i], unit(np.mean(per_template, axis=0)), atol=1e-6)


def test_build_class_embeddings_validation() -> None:
    with pytest.raises(ValueError, match="'a photo'"):
        build_class_embeddings(fake_encode_texts, ["cat"], ["a photo"])
    with pytest.raises(ValueError, match="returned 1 embeddings for 2 texts"):
        build_class_embeddings(lambda texts: np.ones((1, 4)), ["a", "b"], ["{}"])
    with pytest.raises(ValueError, match="class_names"):
        build_class_embeddings(fake_encode_texts, [], ["{}"])


def test_known_assignment_and_loop_reference() -> None:
    rng = np.random.default_rng(0)
    classes = unit(rng.normal(size=(5, 16)))
    y = rng.integers(0, 5, size=200)
    images = unit(classes[y] + 0.1 * rng.normal(size=(200, 16)))
    model = ZeroShot(class_embeddings=classes * 3.0)  # norms must not matter
    labels = model.fit_predict(images)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_allclose(model.centers_, classes, atol=1e-6)
    assert model.n_clusters_ == 5 and model.cluster_names_ is None

    noisy = unit(rng.normal(size=(50, 16)))
    reference = [int(np.argmax([img @ c for c in classes])) for img in noisy]
    np.testing.assert_array_equal(model.predict(noisy), reference)
    np.testing.assert_allclose(
        model.scores_, np.max(images @ classes.T, axis=1), atol=1e-5
    )


def test_fit_argument_wins_and_names() -> None:
    a = np.eye(3, dtype=np.float32)
    b = a[::-1].copy()
    x = np.array([[1.0, 0.1, 0.0], [0.0, 0.1, 1.0]])
    model = ZeroShot(class_embeddings=a, class_names=["x", "y", "z"])
    np.testing.assert_array_equal(model.fit(x).labels_, [0, 2])
    np.testing.assert_array_equal(model.fit(x, class_embeddings=b).labels_, [2, 0])
    assert model.class_embeddings is a  # the constructor argument is left untouched
    assert model.cluster_names_ == ["x", "y", "z"]


def test_errors() -> None:
    x = np.eye(3)
    with pytest.raises(ValueError, match="needs class_embeddings"):
        ZeroShot().fit(x)
    with pytest.raises(ValueError, match="dimension 4 but X has 3"):
        ZeroShot(np.ones((2, 4))).fit(x)
    with pytest.raises(ValueError, match="class_names has 1 entries for 3"):
        ZeroShot(np.eye(3), class_names=["a"]).fit(x)
    with pytest.raises(NotFittedError):
        ZeroShot(np.eye(3)).predict(x)
