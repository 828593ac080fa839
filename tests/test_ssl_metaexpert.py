"""Meta-Expert: shapes, the DEA weight formula by hand, and MFF/DEA actually being trained."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fakes import band_images

from semclust.ssl.algorithms import get_algorithm
from semclust.ssl.algorithms.metaexpert import MFF, dea_weights
from semclust.ssl.nets import SmallCNN
from semclust.ssl.trainer import Trainer


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def test_dea_weights_by_hand():
    group = torch.tensor([0, 1, 2, 2])  # class 0 head, 1 medium, 2-3 tail
    u = torch.tensor([[1.0, 0.0, -1.0]])
    z = torch.tensor([[[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 1.5]]])
    out = dea_weights(u, z, group)
    w_hat = _softmax([1.0, 0.0, -1.0])
    p = [_softmax(z[0, 0].tolist())[0], _softmax(z[0, 1].tolist())[1], max(_softmax(z[0, 2].tolist())[2:])]
    w = _softmax([pk * wk for pk, wk in zip(p, w_hat)])
    np.testing.assert_allclose(out["w_hat"][0].tolist(), w_hat, rtol=1e-6)
    np.testing.assert_allclose(out["p"][0].tolist(), p, rtol=1e-6)
    np.testing.assert_allclose(out["w"][0].tolist(), w, rtol=1e-6)


def test_mff_ladder_shapes():
    mff = MFF([16, 32, 64, 128], 256)
    v = mff([torch.randn(2, d) for d in (16, 32, 64, 128)])
    assert v.shape == (2, 256)
    assert [m[0].weight.shape[::-1] for m in mff.row2] == [(32, 64), (64, 128), (128, 256), (256, 256)]


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {
        "x_lb": torch.randn(6, 1, 8, 8, generator=g),
        "y_lb": torch.tensor([0, 1, 2, 3, 4, 0]),
        "x_ulb_w": torch.randn(8, 1, 8, 8, generator=g),
        "x_ulb_s": torch.randn(8, 1, 8, 8, generator=g),
    }


@pytest.mark.parametrize("frozen", [False, True])
def test_forward_shapes_loss_and_gradients_reach_mff_and_dea(frozen):
    torch.manual_seed(0)
    algo = get_algorithm("metaexpert")(SmallCNN(5, 1, width=4), 5, class_counts=[2, 40, 5, 20, 10],
                                       freeze_assignment=frozen)  # fmt: skip
    net = algo.model
    assert net.class_group.tolist() == [2, 0, 2, 1, 2]  # by frequency, not index
    out = net.heads(torch.randn(4, 1, 8, 8))
    assert out["u"].shape == (4, 3) and out["w"].shape == (4, 3) and out["fused"].shape == (4, 5)
    assert torch.allclose(out["fused"], (out["w"].unsqueeze(2) * out["z"]).sum(1))
    loss, logs = algo.train_step(_batch(), 0)
    assert torch.isfinite(loss) and "dea_sup_loss" in logs and "dea_unsup_loss" in logs
    loss.backward()
    for module in (net.mff, net.dea):
        for p in module.parameters():
            if frozen:
                assert not p.requires_grad and p.grad is None
            else:
                assert p.grad is not None and p.grad.abs().sum() > 0
    _, logs = get_algorithm("metaexpert")(SmallCNN(5, 1, width=4), 5, fuse_warmup=3).train_step(_batch(), 2)
    assert "dea_sup_loss" not in logs  # fused losses only from the warm-up step on


def _data(n: int = 60):
    return band_images(n)


@pytest.mark.parametrize("frozen", [False, True])
def test_trainer_optimises_mff_and_dea_unless_frozen(frozen):
    x, y = _data()
    lb = np.r_[np.flatnonzero(y == 0)[:1], np.flatnonzero(y == 1)[:6], np.flatnonzero(y == 2)[:3]]
    trainer = Trainer("metaexpert", network=lambda c, i: SmallCNN(c, i, width=4), num_classes=3, in_channels=1,
                      total_steps=2, batch_size=4, mu=2, seed=1, freeze_assignment=frozen)  # fmt: skip
    before = {k: v.clone() for k, v in trainer.model.state_dict().items() if k.startswith(("mff.", "dea."))}
    metrics = trainer.fit(x[lb], y[lb], x, x_eval=x[:30], y_eval=y[:30])
    after = trainer.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert (changed == []) if frozen else (len(changed) == len(before))
    assert trainer.model.class_group.tolist() == [2, 0, 1]  # estimated: class 1 has most labels, class 0 fewest
    assert {"head_acc", "medium_acc", "tail_acc", "expert1_acc", "expert3_tail_acc", "assign_acc"} <= set(metrics)
    assert torch.equal(trainer.ema_model.class_group, trainer.model.class_group)


# ---------------------------------------------------------------- the released code's fused losses
def _ce(logits, target, weights=None):
    """Mean (or class-weighted mean) cross-entropy by hand, as F.cross_entropy defines it."""
    num = den = 0.0
    for row, t in zip(logits, target):
        log_p = row[t] - math.log(sum(math.exp(v) for v in row))
        w = 1.0 if weights is None else weights[t]
        num, den = num - w * log_p, den + w
    return num / den


def test_class_balanced_weights_by_hand():
    from semclust.ssl.algorithms.metaexpert import class_balanced_weights

    counts = [100, 10, 1]
    raw = [(1 - 0.99) / (1 - 0.99**n) for n in counts]
    expected = [r / sum(raw) * 3 for r in raw]
    np.testing.assert_allclose(class_balanced_weights(counts).tolist(), expected, rtol=1e-6)


def test_mixture_weights_pick_consistent_uniform_or_reversed():
    from semclust.ssl.algorithms.metaexpert import mixture_weights

    rank = [3, 2, 1, 0]  # class 3 has the most labels
    consistent = [0.05, 0.1, 0.25, 0.6]  # same order as the labelled counts
    assert mixture_weights(consistent, rank).tolist() == [1.0, 0.0, 0.0]
    assert mixture_weights([0.2, 0.25, 0.3, 0.25], rank).tolist() == [0.0, 1.0, 0.0]  # max/min 1.5 < 2
    assert mixture_weights(consistent[::-1], rank).tolist() == [0.0, 0.0, 1.0]
    # a class never predicted: max/min is infinite, so neither uniform nor reversed holds
    assert mixture_weights([0.0, 0.3, 0.3, 0.4], rank).tolist() == [1.0, 0.0, 0.0]


def test_fused_logits_by_hand():
    torch.manual_seed(0)
    algo = get_algorithm("metaexpert")(SmallCNN(3, 1, width=4), 3, class_counts=[6, 3, 1])
    out = algo.model.heads(torch.randn(4, 1, 8, 8))
    z, bl, w = out["z"][1].tolist(), out["branch_logits"][1].tolist(), out["w"][1].tolist()
    log_pi = [math.log(c / 10) for c in (6, 3, 1)]
    taus = (0.0, 2.0, 4.0)
    adjusted = [[z[k][c] + taus[k] * log_pi[c] for c in range(3)] for k in range(3)]
    expected = [sum(w[k] * (adjusted[k][c] - min(adjusted[k])) for k in range(3)) for c in range(3)]
    np.testing.assert_allclose(out["fused_adjusted"][1].tolist(), expected, rtol=1e-5, atol=1e-6)
    for j in range(3):  # expert j: branch b weighted by the assignment of group b
        expected = [sum(w[b] * (bl[j][b][c] - min(bl[j][b])) for b in range(3)) for c in range(3)]
        np.testing.assert_allclose(out["fused_branches"][1, j].tolist(), expected, rtol=1e-5, atol=1e-6)


def test_four_fused_losses_by_hand_on_known_logits():
    algo = get_algorithm("metaexpert")(SmallCNN(3, 1, width=4), 3, class_counts=[8, 4, 2])
    assert algo.groups.tolist() == [0, 1, 2]
    algo.mixture = torch.tensor([0.2, 0.3, 0.5])
    g = torch.Generator().manual_seed(3)
    n_lb, n_ulb = 2, 2
    out = {"u": torch.randn(6, 3, generator=g), "fused_adjusted": torch.randn(6, 3, generator=g),
           "fused_branches": torch.randn(6, 3, 3, generator=g)}  # fmt: skip
    y = torch.tensor([0, 2])
    terms = algo.fused_terms(out, y, n_lb, n_ulb)
    raw = [(1 - 0.99) / (1 - 0.99**n) for n in (8, 4, 2)]
    cw = [r / sum(raw) * 3 for r in raw]  # classes and groups coincide here: group counts 8, 4, 2
    u, fa, fb = out["u"].tolist(), out["fused_adjusted"].tolist(), out["fused_branches"]
    assert terms["fused_sup_loss"].item() == pytest.approx(_ce(fa[:2], [0, 2], cw), rel=1e-5)
    assert terms["dea_sup_loss"].item() == pytest.approx(_ce(u[:2], [0, 2], cw), rel=1e-5)
    pseudo_u = [int(np.argmax(r)) for r in u[2:4]]
    assert terms["dea_unsup_loss"].item() == pytest.approx(_ce(u[4:], pseudo_u), rel=1e-5)
    expected = 0.0
    for j, m in enumerate((0.2, 0.3, 0.5)):
        weak, strong = fb[2:4, j].tolist(), fb[4:, j].tolist()
        expected += m * _ce(strong, [int(np.argmax(r)) for r in weak])  # no confidence mask
    assert terms["fused_unsup_loss"].item() == pytest.approx(expected, rel=1e-5)
    only_assignment = get_algorithm("metaexpert")(SmallCNN(3, 1, width=4), 3, class_counts=[8, 4, 2],
                                                  fused_losses=False).fused_terms(out, y, n_lb, n_ulb)  # fmt: skip
    assert set(only_assignment) == {"dea_sup_loss", "dea_unsup_loss"}


def test_mixture_is_estimated_from_e2_pseudo_labels_before_the_fused_losses_start():
    torch.manual_seed(0)
    algo = get_algorithm("metaexpert")(SmallCNN(5, 1, width=4), 5, class_counts=[2, 40, 5, 20, 10],
                                       threshold=0.0, fuse_warmup=2, estimate_steps=1)  # fmt: skip
    batch = _batch()
    _, logs = algo.train_step(batch, 0)  # before the estimation window
    assert "fused_sup_loss" not in logs and float(algo.pseudo_counts.sum()) == 0
    torch.manual_seed(1)
    x = torch.cat([batch["x_lb"], batch["x_ulb_w"], batch["x_ulb_s"]])
    with torch.no_grad():
        expected = torch.bincount(algo.model.heads(x)["z"][6:14, 1].argmax(dim=1), minlength=5)
    algo.train_step(batch, 1)  # in the window: every weak view is confident at threshold 0
    assert algo.pseudo_counts.tolist() == expected.double().tolist() and not algo.mixture_set
    _, logs = algo.train_step(batch, 2)
    assert algo.mixture_set and {"fused_sup_loss", "fused_unsup_loss", "dea_sup_loss"} <= set(logs)
    dist = (expected.double() / expected.sum()).numpy()
    from semclust.ssl.algorithms.metaexpert import mixture_weights

    rank = np.argsort(-np.array([2, 40, 5, 20, 10]), kind="stable")
    assert algo.mixture.tolist() == mixture_weights(dist, rank).tolist()


def test_default_warmup_is_the_released_schedule():
    x, y = _data()
    trainer = Trainer("metaexpert", network=lambda c, i: SmallCNN(c, i, width=4), num_classes=3, in_channels=1,
                      total_steps=512, batch_size=4, mu=2, seed=1)  # fmt: skip
    trainer.algorithm.on_train_start(type("T", (), {"total_steps": 512, "_y_lb": torch.tensor(y[:9]),
                                                    "ema": trainer.ema})())  # fmt: skip
    assert trainer.algorithm._warmup_steps == 40 and trainer.algorithm._estimate_steps == 2  # 20/256 and 1/256
