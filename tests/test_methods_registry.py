"""Every registered method runs through the one entry point the CLI and API use."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.methods.registry import METHODS, FeatureSet, run_method
from semclust.metrics import evaluate


def planted(n_per: int = 40, k: int = 3, d: int = 16, seed: int = 0):
    """k clusters on the sphere, a noun planted on each cluster mean, and distractor nouns."""
    rng = np.random.default_rng(seed)
    means = np.linalg.qr(rng.normal(size=(d, d)))[0][:k] * 3
    labels = np.repeat(np.arange(k), n_per)
    joint = means[labels] + rng.normal(0, 0.35, (len(labels), d))
    joint /= np.linalg.norm(joint, axis=1, keepdims=True)
    visual = np.concatenate([joint, rng.normal(0, 0.05, (len(labels), 8))], axis=1)
    nouns = np.concatenate([means, rng.normal(size=(12, d))])
    nouns /= np.linalg.norm(nouns, axis=1, keepdims=True)
    names = [f"planted{c}" for c in range(k)] + [f"distractor{j}" for j in range(12)]
    return FeatureSet(
        joint=joint.astype(np.float32),
        visual=(visual / np.linalg.norm(visual, axis=1, keepdims=True)).astype(np.float32),
        labels=labels,
        class_names=[f"class{c}" for c in range(k)],
        # a prompt "a photo of a planted1." embeds as the noun it names
        encode_texts=lambda texts: nouns[[next(i for i, n in enumerate(names) if n in t) for t in texts]],
        nouns=lambda: (names, nouns.astype(np.float32)),
    )


FAST = {
    "tac": {"epochs": 5, "batch_size": 64, "n_neighbours": 10},
    "laic": {"epochs": 5, "batch_size": 64, "centers": "free", "temperature": 0.2},
    "scan": {"epochs": 40, "n_heads": 2, "lr": 3e-2, "batch_size": 32, "n_neighbours": 10},
}


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"zeroshot", "asd"}))
def test_each_method_clusters_planted_data_and_names_clusters(method: str) -> None:
    features = planted()
    result = run_method(method, features, 3, random_state=0, **FAST.get(method, {}))
    assert result.labels.shape == (120,) and result.n_clusters == 3
    assert evaluate(features.labels, result.labels)["ari"] > 0.8
    assert result.cluster_names is not None and len(result.cluster_names) == 3
    # each cluster's first name is the noun planted on its mean
    for k in range(3):
        members = features.labels[result.labels == k]
        majority = np.bincount(members, minlength=3).argmax()
        assert result.cluster_names[k][0] == f"planted{majority}"


def test_same_seed_same_labels_for_every_method() -> None:
    for method in sorted(set(METHODS) - {"zeroshot", "asd"}):
        a = run_method(method, planted(), 3, random_state=3, **FAST.get(method, {})).labels
        b = run_method(method, planted(), 3, random_state=3, **FAST.get(method, {})).labels
        np.testing.assert_array_equal(a, b, err_msg=method)


def test_zeroshot_uses_dataset_class_names() -> None:
    features = planted()
    result = run_method("zeroshot", features, None, class_names=["planted0", "planted1", "planted2"])
    assert evaluate(features.labels, result.labels)["acc"] > 0.9
    assert result.cluster_names == [["planted0"], ["planted1"], ["planted2"]]


def test_unknown_method_and_missing_k() -> None:
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        run_method("nope", planted(), 3)
    with pytest.raises(ValueError, match="needs the number of clusters"):
        run_method("kmeans", planted(), None)


def test_unknown_parameter_names_it() -> None:
    with pytest.raises(ValueError, match="method laic has no parameter 'epochz'"):
        run_method("laic", planted(), 3, epochz=3)


def test_invalid_training_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got inf"):
        run_method("laic", planted(), 3, centers="free", lr=float("inf"))
    with pytest.raises(ValueError, match="epochs"):
        run_method("laic", planted(), 3, centers="free", epochs=-1)
    with pytest.raises(ValueError, match="at least 2 class names"):
        run_method("zeroshot", planted(), None, class_names=["planted0"])
