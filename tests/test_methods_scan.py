"""SCAN heads on synthetic spherical clusters: recovery, head selection, loss references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from semclust.methods.base import NotFittedError
from semclust.methods.scan import SCAN, scan_loss, selection_loss, self_label_loss
from semclust.ops.features import l2_normalize

K, PER, D = 4, 50, 32


def _blobs(seed: int = 0, noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = l2_normalize(rng.standard_normal((K, D)).astype(np.float32))
    y = np.repeat(np.arange(K), PER)
    x = means[y] + noise * rng.standard_normal((len(y), D)) / np.sqrt(D)
    return l2_normalize(x.astype(np.float32)), y


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    x, y = _blobs()
    return {"x": x, "y": y}


def _model(**kw: Any) -> SCAN:
    # few rows, so fewer steps than a real fit: a larger lr and smaller batches compensate;
    # five heads so that head selection has something to choose
    params = dict(n_clusters=K, batch_size=64, lr=1e-2, epochs=30, n_heads=5)
    params.update(kw)
    return SCAN(**params)


@pytest.fixture(scope="module")
def fitted(data: dict[str, Any]) -> SCAN:
    return _model().fit(data["x"])


def test_recovers_clusters_and_attributes(fitted: SCAN, data: dict[str, Any]) -> None:
    n = len(data["y"])
    assert adjusted_rand_score(data["y"], fitted.labels_) > 0.9
    assert fitted.labels_.dtype == np.int64 and fitted.labels_.shape == (n,)
    assert fitted.probabilities_.shape == (n, K)
    np.testing.assert_allclose(fitted.probabilities_.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(fitted.probabilities_.argmax(axis=1), fitted.labels_)
    assert fitted.head_losses_.shape == (5,) and len(fitted.heads_) == 5
    assert len(fitted.loss_history_) == 30 and fitted.head_loss_history_.shape == (30, 5)
    assert fitted.loss_history_[-1] < fitted.loss_history_[0]
    assert fitted.neighbours_.shape == (n, 20)
    assert fitted.centers_.shape == (K, D) and fitted.n_features_in_ == D
    assert fitted.cluster_names_ is None


def test_mlp_head_recovers_clusters(data: dict[str, Any]) -> None:
    model = _model(hidden_dim=32, n_heads=2, epochs=15).fit(data["x"])
    assert adjusted_rand_score(data["y"], model.labels_) > 0.9


def test_selected_head_is_argmin_of_recomputed_losses(
    fitted: SCAN, data: dict[str, Any]
) -> None:
    assert fitted.best_head_ == int(np.argmin(fitted.head_losses_))
    nb = fitted.neighbours_
    recomputed = []
    for head in fitted.heads_:
        with torch.no_grad():
            p = torch.softmax(head(torch.from_numpy(data["x"])), dim=1).double().numpy()
        cons = np.mean([-np.log(max(p[i] @ p[j], 1e-8)) for i in range(len(p)) for j in nb[i]])
        pm = p.mean(axis=0)
        recomputed.append(cons - 1.0 * float(-(pm * np.log(pm)).sum()))  # scan_evaluate: entropy weight 1
    np.testing.assert_allclose(fitted.head_losses_, recomputed, rtol=1e-5, atol=1e-5)
    # without self-labelling the kept head is the selected one, unchanged
    best = fitted.heads_[fitted.best_head_]
    for a, b in zip(best.parameters(), fitted.head_.parameters()):
        torch.testing.assert_close(a, b)


def test_scan_loss_matches_hand_loop() -> None:
    rng = np.random.default_rng(3)
    pa = rng.dirichlet(np.ones(3), size=4)
    pb = rng.dirichlet(np.ones(3), size=4)
    total, cons, ent = scan_loss(torch.from_numpy(pa), torch.from_numpy(pb), entropy_weight=2.0)
    hand_cons = -sum(np.log(sum(pa[i, c] * pb[i, c] for c in range(3))) for i in range(4)) / 4
    mean = [sum(pa[i, c] for i in range(4)) / 4 for c in range(3)]
    hand_ent = -sum(m * np.log(m) for m in mean)
    assert float(cons) == pytest.approx(hand_cons, rel=1e-12)
    assert float(ent) == pytest.approx(hand_ent, rel=1e-12)
    assert float(total) == pytest.approx(hand_cons - 2.0 * hand_ent, rel=1e-12)
    # a one-hot pair that agrees costs nothing; one that disagrees is clamped at -log 1e-8
    one = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert float(scan_loss(one, one)[1]) == pytest.approx(0.0, abs=1e-12)
    assert float(scan_loss(one, one.flip(1))[1]) == pytest.approx(-np.log(1e-8))


def test_selection_loss_matches_hand_loop() -> None:
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(3), size=5)
    nb = np.array([[1, 2], [0, 3], [4, 0], [2, 1], [3, 2]])
    total, cons, ent = selection_loss(p, nb, entropy_weight=5.0)
    pairs = [-np.log(p[i] @ p[j]) for i in range(5) for j in nb[i]]
    pm = p.mean(axis=0)
    assert cons == pytest.approx(np.mean(pairs), rel=1e-12)
    assert ent == pytest.approx(-(pm * np.log(pm)).sum(), rel=1e-12)
    assert total == pytest.approx(cons - 5.0 * ent, rel=1e-12)


def test_self_label_loss_is_confident_class_balanced_ce() -> None:
    logits = torch.tensor(
        [[5.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 7.0, 0.0], [0.3, 0.2, 0.1]], dtype=torch.float64
    )
    loss, n_conf = self_label_loss(logits, threshold=0.9)
    assert n_conf == 3  # the last row is not confident
    logp = torch.log_softmax(logits, dim=1)
    # class 0 has 2 confident rows (weight 3/2 each), class 1 has 1 (weight 3)
    ce = [-logp[0, 0], -logp[1, 0], -logp[2, 1]]
    w = [1.5, 1.5, 3.0]
    hand = sum(wi * ci for wi, ci in zip(w, ce)) / sum(w)
    assert float(loss) == pytest.approx(float(hand), rel=1e-12)
    assert self_label_loss(torch.zeros(2, 3), threshold=0.5) == (None, 0)


def test_deterministic_and_leaves_torch_state(data: dict[str, Any]) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    a = _model(epochs=5, n_heads=2).fit(data["x"])
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    b = _model(epochs=5, n_heads=2).fit(data["x"])
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.probabilities_, b.probabilities_)
    assert a.loss_history_ == b.loss_history_
    c = _model(epochs=5, n_heads=2, random_state=1).fit(data["x"])
    assert c.loss_history_ != a.loss_history_


def test_predict_equals_labels_on_training_data(fitted: SCAN, data: dict[str, Any]) -> None:
    np.testing.assert_array_equal(fitted.predict(data["x"]), fitted.labels_)
    np.testing.assert_array_equal(fitted.predict_proba(data["x"]), fitted.probabilities_)
    # inputs are L2-normalised internally: the scale of a row does not matter
    np.testing.assert_array_equal(fitted.predict(3.0 * data["x"][:7]), fitted.labels_[:7])


def test_self_label_runs_and_keeps_ari(data: dict[str, Any]) -> None:
    base = _model(n_heads=2).fit(data["x"])
    seen: list[int] = []
    model = _model(n_heads=2, self_label=True, self_label_threshold=0.9, self_label_epochs=5).fit(
        data["x"], on_epoch=lambda epoch, loss: seen.append(epoch)
    )
    assert seen == list(range(1, 36))
    assert len(model.self_label_history_) == 5 and np.isfinite(model.self_label_history_).all()
    assert min(model.self_label_confident_) > 0
    assert model.best_head_ == base.best_head_
    changed = any(
        not torch.equal(a, b)
        for a, b in zip(model.heads_[model.best_head_].parameters(), model.head_.parameters())
    )
    assert changed
    ari_base = adjusted_rand_score(data["y"], base.labels_)
    ari_sl = adjusted_rand_score(data["y"], model.labels_)
    assert ari_sl >= ari_base - 1e-9 and ari_sl > 0.9
    assert model.probabilities_.max(axis=1).mean() >= base.probabilities_.max(axis=1).mean()


def test_self_label_without_confident_rows_warns(data: dict[str, Any]) -> None:
    with pytest.warns(RuntimeWarning, match="self_label_threshold"):
        model = _model(n_heads=1, epochs=1, lr=1e-4, self_label=True, self_label_epochs=1).fit(data["x"])
    assert model.self_label_confident_ == [0.0]


@pytest.mark.parametrize("k, match", [(1, "n_clusters=1"), (300, "n_clusters=300")])
def test_bad_n_clusters(data: dict[str, Any], k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SCAN(n_clusters=k).fit(data["x"])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 1}, "batch_size=1"),
        ({"lr": 0.0}, "lr"),
        ({"self_label_threshold": 1.0}, "self_label_threshold"),
        ({"entropy_weight": -1.0}, "entropy_weight"),
        ({"n_heads": 0}, "n_heads"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_bad_parameters(data: dict[str, Any], kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _model(**kw).fit(data["x"])


def test_predict_checks(fitted: SCAN, data: dict[str, Any]) -> None:
    with pytest.raises(NotFittedError):
        SCAN().predict(data["x"])
    with pytest.raises(ValueError, match="features"):
        fitted.predict(data["x"][:, :5])
    clone_ = clone(fitted)
    assert clone_.get_params() == fitted.get_params() and not hasattr(clone_, "labels_")


def test_defaults_are_scans_cifar10_configuration() -> None:
    model = SCAN()
    assert (model.n_heads, model.lr, model.weight_decay, model.entropy_weight) == (1, 1e-4, 1e-4, 5.0)
    assert (model.batch_size, model.epochs, model.n_neighbours, model.selection_entropy_weight) == (128, 50, 20, 1.0)


def _training_batch_sizes(data: dict[str, Any], joint: bool) -> list[int]:
    sizes: list[int] = []
    original = torch.nn.Linear.forward

    def recording(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            sizes.append(len(x))
        return original(self, x)

    torch.nn.Linear.forward = recording  # type: ignore[method-assign]
    try:
        _model(n_heads=1, epochs=1, batch_size=64, joint_batch_norm=joint).fit(data["x"])
    finally:
        torch.nn.Linear.forward = original  # type: ignore[method-assign]
    return sizes


def test_anchor_and_neighbour_passes_are_separate_unless_joint(data: dict[str, Any]) -> None:
    assert _training_batch_sizes(data, joint=False)[:2] == [64, 64]
    assert _training_batch_sizes(data, joint=True)[:1] == [128]
