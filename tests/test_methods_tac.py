from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from semclust.methods.base import NotFittedError
from semclust.methods.tac import TAC, cluster_infonce, make_head, tac_loss
from semclust.methods.tac_notrain import TACNoTrain

K, D, PER = 4, 16, 60


@pytest.fixture(autouse=True)
def _one_thread():
    """On a shared 2-core machine, torch's and faiss's thread pools contend badly (seconds
    instead of milliseconds); one thread each keeps these tests fast."""
    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(faiss_threads)


def synthetic(seed: int = 0, noise: float = 0.15):
    """4 directional clusters on axes 0-3 of R^16; 2 planted nouns per cluster near its
    mean, 12 distractor nouns in the span of axes 8-15 (far from every cluster)."""
    rng = np.random.default_rng(seed)
    means = np.eye(D, dtype=np.float32)[:K]
    y = np.repeat(np.arange(K), PER)
    x = means[y] + noise * rng.normal(size=(K * PER, D))
    x *= rng.uniform(0.5, 2.0, size=(len(x), 1))
    planted = np.repeat(means, 2, axis=0) + 0.05 * rng.normal(size=(2 * K, D))
    distract = np.zeros((12, D))
    distract[:, 8:] = rng.normal(size=(12, 8))
    nouns = np.concatenate([planted, distract]).astype(np.float32)
    names = [f"c{c}_{i}" for c in range(K) for i in range(2)] + [f"x{i}" for i in range(12)]
    return x.astype(np.float32), y, nouns, names


def small_tac(**kw) -> TAC:
    params = dict(
        n_clusters=K, n_centers=K, nouns_per_center=2, epochs=15, batch_size=64,
        n_neighbours=10, hidden_dim=32, lr=3e-3,
    )
    params.update(kw)
    return TAC(**params)


def test_no_train_recovers_clusters_and_planted_nouns() -> None:
    x, y, nouns, names = synthetic()
    model = TACNoTrain(n_clusters=K, n_centers=K, nouns_per_center=2)
    labels = model.fit_predict(x, noun_embeddings=nouns, noun_names=names)
    assert adjusted_rand_score(y, labels) > 0.9
    np.testing.assert_array_equal(model.selected_nouns_, np.arange(2 * K))
    assert model.centers_.shape == (K, 2 * D) and labels.dtype == np.int64
    assert model.text_counterparts_.shape == x.shape
    np.testing.assert_array_equal(model.predict(x), labels)
    # each cluster is named after its own planted nouns
    for c in range(K):
        cluster = np.bincount(labels[y == c]).argmax()
        assert set(model.cluster_nouns_[cluster][:2]) == {f"c{c}_0", f"c{c}_1"}
        assert model.cluster_names_[cluster].startswith(f"c{c}_")
    np.testing.assert_allclose(model.text_counterparts_for(x[:5]), model.text_counterparts_[:5], atol=1e-6)


def test_no_train_default_centers_and_errors() -> None:
    x, _, nouns, _ = synthetic()
    model = TACNoTrain(n_clusters=K).fit(x, nouns)
    # 240 / 300 rounds to 1 center, fewer than K = 4 clusters: TAC's 3K rule gives 12
    assert model.n_centers_ == 3 * K and model.cluster_names_ is None
    with pytest.raises(NotFittedError):
        TACNoTrain().predict(x)
    with pytest.raises(ValueError, match="noun_embeddings"):
        TACNoTrain(n_clusters=K).fit(x)
    with pytest.raises(ValueError, match="dimension"):
        TACNoTrain(n_clusters=K).fit(x, nouns[:, :8])
    with pytest.raises(ValueError, match="noun_names"):
        TACNoTrain(n_clusters=K).fit(x, nouns, noun_names=["a"])


def loop_cluster_infonce(p: np.ndarray, q: np.ndarray, tau: float) -> float:
    k = p.shape[1]
    cols = [p[:, j] for j in range(k)] + [q[:, j] for j in range(k)]
    cols = [c / np.linalg.norm(c) for c in cols]
    total = 0.0
    for a in range(2 * k):
        pos = (a + k) % (2 * k)
        denom = sum(np.exp(cols[a] @ cols[b] / tau) for b in range(2 * k) if b != a)
        total += -np.log(np.exp(cols[a] @ cols[pos] / tau) / denom)
    return total / (2 * k)


def test_loss_matches_loop_computation() -> None:
    rng = np.random.default_rng(0)

    def probs(b, k):
        z = rng.normal(size=(b, k))
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    pi, pt, pin, ptn = (probs(5, 3) for _ in range(4))
    tau, w = 0.5, 5.0
    total, parts = tac_loss(
        *(torch.tensor(a) for a in (pi, pt, pin, ptn)), tau=tau, entropy_weight=w
    )
    distill = loop_cluster_infonce(pt, pin, tau) + loop_cluster_infonce(pi, ptn, tau)
    # TAC's consistency: one term, the text and image heads on the same sample
    cons = -np.mean([np.log(pt[i] @ pi[i]) for i in range(5)])
    _, cross = tac_loss(*(torch.tensor(a) for a in (pi, pt, pin, ptn)), tau=tau, consistency="cross")
    cross_cons = -np.mean([np.log(pt[i] @ pin[i]) for i in range(5)]) - np.mean(
        [np.log(pi[i] @ ptn[i]) for i in range(5)]
    )
    assert cross["consistency"] == pytest.approx(cross_cons, rel=1e-6)

    def h(p):
        m = p.mean(axis=0)
        return -sum(v * np.log(v) for v in m)

    ent = h(pt) + h(pi)
    assert parts["distillation"] == pytest.approx(distill, rel=1e-6)
    assert parts["consistency"] == pytest.approx(cons, rel=1e-6)
    assert parts["entropy"] == pytest.approx(ent, rel=1e-6)
    assert float(total) == pytest.approx(distill + cons - w * ent, rel=1e-6)
    # symmetric in its two arguments
    a, b = torch.tensor(pi), torch.tensor(pt)
    assert float(cluster_infonce(a, b, tau)) == pytest.approx(float(cluster_infonce(b, a, tau)))


def test_head_shape() -> None:
    head = make_head(6, 8, 3).eval()
    out = head(torch.randn(4, 6))
    assert out.shape == (4, 3)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(4))


def test_heads_are_as_wide_as_their_input_by_default_as_in_tacs_models_py() -> None:
    x, _, nouns, names = synthetic()
    image = np.concatenate([x, x[:, :8]], axis=1)  # a 24-d image view beside the 16-d joint one
    default = small_tac(hidden_dim=None, epochs=1).fit(x, nouns, noun_names=names, image_features=image)
    assert default.image_head_[0].weight.shape == (24, 24) and default.text_head_[0].weight.shape == (16, 16)
    fixed = small_tac(hidden_dim=32, epochs=1).fit(x, nouns, noun_names=names, image_features=image)
    assert fixed.image_head_[0].weight.shape == (32, 24) and fixed.text_head_[0].weight.shape == (32, 16)
    assert TAC().hidden_dim is None
    assert make_head(6, None, 3)[0].weight.shape == (6, 6)


def test_every_noun_competes_unless_dedupe_nouns() -> None:
    """TAC's code keeps repeated noun embeddings as candidates; dedupe_nouns=True (ours) drops
    all but the first copy, so a center's places go to distinct embeddings."""
    x, _, nouns, names = synthetic()
    repeated = np.concatenate([nouns[:1], nouns])  # row 0 and row 1 are the same embedding
    dup_names = ["copy"] + names
    plain = TACNoTrain(n_clusters=K, n_centers=K, nouns_per_center=2).fit(x, repeated, noun_names=dup_names)
    deduped = TACNoTrain(n_clusters=K, n_centers=K, nouns_per_center=2, dedupe_nouns=True).fit(
        x, repeated, noun_names=dup_names
    )
    assert {0, 1} <= set(plain.selected_nouns_.tolist())
    assert 0 in deduped.selected_nouns_ and 1 not in deduped.selected_nouns_
    assert TACNoTrain().dedupe_nouns is False and TAC().dedupe_nouns is False


def test_head_init_is_truncated_normal_with_std_002() -> None:
    torch.manual_seed(0)
    head = make_head(400, 300, 200)
    for layer in (head[0], head[3]):
        w = layer.weight.detach()
        assert float(w.std()) == pytest.approx(0.02, rel=0.05) and float(w.abs().max()) < 0.2
    torch.manual_seed(0)
    default = make_head(400, 300, 200, init="default")[0].weight.detach()
    assert float(default.abs().max()) <= 1 / 400**0.5 + 1e-6  # PyTorch's uniform(+-1/sqrt(fan_in))


def test_training_batches_are_full_and_anchor_and_neighbour_passes_separate() -> None:
    x, _, nouns, _ = synthetic()  # 240 images
    sizes: list[int] = []

    def fit(**options: object) -> list[int]:
        sizes.clear()
        model = small_tac(epochs=1, batch_size=100, **options)
        original = make_head

        def recording_head(*args: object, **kwargs: object) -> torch.nn.Sequential:
            head = original(*args, **kwargs)  # type: ignore[arg-type]
            head.register_forward_hook(lambda m, inp, out: sizes.append(len(inp[0])) if m.training else None)
            return head

        import semclust.methods.tac as tac_module

        tac_module.make_head, saved = recording_head, tac_module.make_head
        try:
            model.fit(x, nouns)
        finally:
            tac_module.make_head = saved
        return list(sizes)

    # drop_last: 240 = 2 full batches of 100; separate passes: anchors and neighbours, per head
    assert fit() == [100] * 8
    assert fit(drop_last=False, joint_batch_norm=True) == [200, 200, 200, 200, 80, 80]


def test_tac_trains_deterministically_and_clusters() -> None:
    x, y, nouns, names = synthetic()
    seen: list[tuple[int, float]] = []
    state = torch.get_rng_state()
    model = small_tac(device="cpu").fit(
        x, nouns, noun_names=names, on_epoch=lambda e, loss: seen.append((e, loss))
    )
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    assert [e for e, _ in seen] == list(range(1, 16))
    assert [v for _, v in seen] == model.loss_history_
    assert model.loss_history_[-1] < model.loss_history_[0]
    assert adjusted_rand_score(y, model.labels_) > 0.9
    np.testing.assert_array_equal(model.predict(x), model.labels_)
    assert model.predict_proba(x, head="text").shape == (len(x), K)
    assert model.centers_.shape == (K, D)
    assert sorted(model.cluster_names_)[0].startswith("c0_")

    again = clone(model).fit(x, nouns)
    np.testing.assert_array_equal(again.labels_, model.labels_)
    assert again.loss_history_ == model.loss_history_
    other = small_tac(random_state=1).fit(x, nouns)
    assert other.loss_history_ != model.loss_history_


def test_tac_errors() -> None:
    x, _, nouns, _ = synthetic()
    with pytest.raises(NotFittedError):
        TAC().predict(x)
    with pytest.raises(ValueError, match="head"):
        small_tac(epochs=1).fit(x, nouns).predict_proba(x, head="both")
    with pytest.raises(ValueError, match="tau"):
        small_tac(tau=0.0).fit(x, nouns)
