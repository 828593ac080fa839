"""Every registered method, run twice with the same seed on the same features, assigns every
image to the same cluster (CPU). The CLI-level counterpart is tests/test_reliability_determinism.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from fakes import ColourEncoder, colour_images
from PIL import Image

from semclust.methods.registry import METHODS, FeatureSet, run_method

N = 36
CLASS_NAMES = ["red thing", "green thing", "blue thing"]
NOUNS = ["red apple", "green leaf", "blue sky", "cat", "car", "tree", "sea", "fire"]

# Small budgets: determinism does not need converged models. asd trains a tiny network on the
# images themselves, so it gets the fewest steps that still run every stage.
OPTIONS: dict[str, dict[str, Any]] = {
    "kmeans": {"n_init": 2},
    "zeroshot": {"class_names": CLASS_NAMES},
    "tac-notrain": {"n_centers": 3, "n_init": 2},
    "tac": {"n_centers": 3, "n_init": 2, "epochs": 3, "batch_size": 16, "n_neighbours": 5, "hidden_dim": 16},
    "laic-notrain": {"n_centers": 3, "n_init": 2},
    "laic": {"n_centers": 3, "n_init": 2, "epochs": 3, "batch_size": 16, "centers": "free", "temperature": 0.2},
    "scan": {"epochs": 3, "n_heads": 2, "batch_size": 16, "n_neighbours": 5},
    "asd": {
        "n_labelled": 6,
        "instance_steps": 4,
        "ssl_steps": 3,
        "record_every": 1,
        "batch_size": 4,
        "mu": 2,
        "flip": False,
        "backbone": "scratch",
    },
}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_every_method_is_covered() -> None:
    assert set(OPTIONS) == set(METHODS)


def colour_features() -> FeatureSet:
    """A fresh FeatureSet of ColourEncoder embeddings of three colour classes (nothing cached)."""
    images, labels = colour_images(N, seed=7)
    encoder = ColourEncoder(batch_size=N)
    views = encoder.image_views([Image.fromarray(image) for image in images])
    ids = [f"img{i:02d}" for i in range(N)]
    return FeatureSet(
        joint=views["joint"],
        visual=views["visual"],
        labels=labels,
        class_names=CLASS_NAMES,
        encode_texts=encoder.encode_texts,
        nouns=lambda: (list(NOUNS), encoder.encode_texts(NOUNS)),
        encoder=lambda: encoder,
        images=lambda: (images.copy(), list(ids)),
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_same_seed_gives_identical_assignments(method: str) -> None:
    k = None if method == "zeroshot" else 3
    first = run_method(method, colour_features(), k, random_state=13, **OPTIONS[method])
    second = run_method(method, colour_features(), k, random_state=13, **OPTIONS[method])
    assert first.labels.shape == (N,)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.cluster_names == second.cluster_names
