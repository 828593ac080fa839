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
    # 16-d toy data makes 16-wide heads (hidden_dim=None) that one full batch per epoch trains slowly
    "tac": {"epochs": 40, "batch_size": 64, "n_neighbours": 10, "lr": 1e-2},
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


def test_every_method_gets_scored_names_and_laic_its_center_nouns() -> None:
    features = planted()
    for method in ("kmeans", "laic"):
        result = run_method(method, features, 3, random_state=0, **FAST.get(method, {}))
        assert result.naming is not None and result.naming.source == "csls"
        assert result.cluster_names == result.naming.as_lists()
        summary = result.naming.summary(0)
        assert len(summary["name_scores"]) == len(result.cluster_names[0]) and summary["weak"] in (True, False)
        assert (result.naming.centers is not None) == (method == "laic")
    assert result.naming.centers is not None
    assert all(len(row) == 5 and all(isinstance(n.hub, bool) for n in row) for row in result.naming.centers)


def test_classifier_route_names_from_imagenet_evidence_up_wordnet() -> None:
    from semclust.encoders.imagenet import imagenet_synset_ids
    from semclust.vocab.nouns import load_vocabulary
    from semclust.vocab.wordnet import hypernym_distances, noun_synsets

    ids = list(imagenet_synset_ids())
    features = planted()
    # cluster c's images: the classifier splits them between three related ImageNet classes
    # (retrievers; jersey, sweatshirt, cardigan; orange, lemon, banana), none with half the mass
    pairs = [
        ("n02099601", "n02099712", "n02099849"),
        ("n03595614", "n04370456", "n02963159"),
        ("n07747607", "n07749582", "n07753592"),
    ]
    probs = np.full((120, 1000), 0.1 / 997, dtype=np.float32)
    for c, classes in enumerate(pairs):
        rows = features.labels == c
        probs[np.ix_(rows, [ids.index(i) for i in classes])] = 0.3
    features.class_probabilities = lambda: probs
    vocab = load_vocabulary()
    features.noun_synset_ids = lambda: list(vocab.synset_ids)
    result = run_method("kmeans", features, 3, random_state=0)
    assert result.naming is not None and result.naming.source == "classifier-wordnet"
    synsets = noun_synsets()
    concrete = set(vocab.synset_ids)
    for k in range(3):
        c = int(np.bincount(features.labels[result.labels == k]).argmax())
        first = result.naming.names[k][0]
        assert first.synset_id in concrete and not result.naming.weak(k)
        # no single class (0.3 of 0.9) is near enough the best margin (rho = 0.5): the name is a
        # synset above at least two of the three classes the cluster's evidence went to
        # (sweater covers sweatshirt and cardigan, not the jersey), and above none of another cluster's
        covers = [int(first.synset_id[1:]) in hypernym_distances(int(leaf[1:]), synsets) for leaf in pairs[c]]
        assert sum(covers) >= 2
        others = [leaf for j, p in enumerate(pairs) if j != c for leaf in p]
        assert not any(int(first.synset_id[1:]) in hypernym_distances(int(leaf[1:]), synsets) for leaf in others)
