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
