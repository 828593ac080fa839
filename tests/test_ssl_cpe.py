"""FixMatch-LA and CPE: logit-adjusted CE and routed consistency by hand, shapes and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semclust.ssl.algorithms import get_algorithm
from semclust.ssl.algorithms.cpe import routed_consistency
from semclust.ssl.algorithms.fixmatch_la import logit_adjusted_ce
from semclust.ssl.nets import SmallCNN


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ce(logits, y):
    return -(logits[y] - math.log(sum(math.exp(v) for v in logits)))


def test_logit_adjusted_ce_by_hand():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    y = torch.tensor([2, 0])
    pi = [0.7, 0.2, 0.1]
    log_pi = torch.tensor([math.log(p) for p in pi])
    tau = 2.0
    hand = []
    for row, t in zip(logits.tolist(), y.tolist()):
        hand.append(_ce([v + tau * math.log(p) for v, p in zip(row, pi)], t))
    assert float(logit_adjusted_ce(logits, y, log_pi, tau)) == pytest.approx(sum(hand) / 2, rel=1e-6)
    assert float(logit_adjusted_ce(logits, y, log_pi, 0.0)) == pytest.approx(
        (_ce([1.0, 0.0, -1.0], 2) + _ce([0.5, 0.5, 2.0], 0)) / 2, rel=1e-6
    )


def test_routed_consistency_by_hand():
    group = torch.tensor([0, 1, 2])  # class c is in group c
    logits_w = torch.tensor([[0.0, 0.0, 20.0], [20.0, 0.0, 0.0], [0.0, 0.1, 0.0]])  # tail, head, unsure
    branch_s = torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(0))
    loss, mask, pseudo = routed_consistency(logits_w, branch_s, group, 0.95)
    assert mask.tolist() == [1.0, 1.0, 0.0] and pseudo[:2].tolist() == [2, 0]
    b = branch_s.tolist()
    hand = (_ce(b[0][0], 2) + _ce(b[0][1], 2) + _ce(b[0][2], 2) + _ce(b[1][0], 0)) / 4  # tail: 3 branches, head: 1
    assert float(loss) == pytest.approx(hand, rel=1e-5)


def _batch(c: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {
        "x_lb": torch.randn(6, 1, 8, 8, generator=g),
        "y_lb": torch.tensor([0, 1, 2, 3, 4, 0]),
        "x_ulb_w": torch.randn(8, 1, 8, 8, generator=g),
        "x_ulb_s": torch.randn(8, 1, 8, 8, generator=g),
    }


def test_fixmatch_la_loss_is_the_adjusted_ce_when_nothing_is_confident():
    torch.manual_seed(0)
    algo = get_algorithm("fixmatch-la")(SmallCNN(5, 1, width=4), 5, tau=1.5, threshold=1.0,
                                        class_counts=[40, 20, 10, 5, 5])  # fmt: skip
    batch = _batch()
    algo.model.eval()  # BN in eval: the logits of the labelled part do not depend on the rest of the batch
    loss, logs = algo.train_step(batch, 0)
    loss = loss.detach()
    log_pi = torch.log(torch.tensor([40, 20, 10, 5, 5.0]) / 80)
    expected = logit_adjusted_ce(algo.model(batch["x_lb"]), batch["y_lb"], log_pi, 1.5)
    assert float(loss) == pytest.approx(float(expected.detach()), rel=1e-5) and logs["mask_ratio"] == 0.0


def test_cpe_shapes_loss_and_gradients():
    torch.manual_seed(0)
    algo = get_algorithm("cpe")(SmallCNN(5, 1, width=4), 5, class_counts=[40, 20, 10, 5, 2])
    net = algo.model
    assert net.class_group.tolist() == [0, 1, 2, 2, 2]
    out = net.heads(torch.randn(4, 1, 8, 8))
    assert out["branch_logits"].shape == (4, 3, 3, 5) and out["z"].shape == (4, 3, 5)
    assert torch.allclose(out["z"], out["branch_logits"].mean(dim=2))
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 5)
    loss, logs = algo.train_step(_batch(), 0)
    assert torch.isfinite(loss) and {"sup_loss", "unsup_loss", "mask_ratio"} <= set(logs)
    loss.backward()
    for module in (*net.experts, *net.group_bns):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    metrics = algo.eval_metrics(
        {"pred": np.array([0, 1, 2]), "expert_pred": np.array([[0, 0, 1], [1, 1, 1], [0, 2, 2]])}, np.array([0, 1, 2])
    )
    assert metrics["expert1_acc"] == pytest.approx(2 / 3) and metrics["expert3_acc"] == pytest.approx(2 / 3)
    assert metrics["head_acc"] == 1.0 and metrics["expert1_tail_acc"] == 0.0


def test_group_bns_normalise_the_feature_map_before_pooling_unless_vector():
    torch.manual_seed(0)
    x = torch.randn(5, 1, 8, 8)
    for mode in ("map", "vector"):
        algo = get_algorithm("cpe")(SmallCNN(4, 1, width=4), 4, group_bn=mode)
        net = algo.model
        out = net.heads(x)
        feats = net.backbone.forward_features(x)
        h = feats["feature_map"]  # [B, D, H, W]
        for b in range(3):
            bn = net.group_bns[b]
            if mode == "map":  # statistics over batch and positions, then pooling
                mean, var = h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3), unbiased=False)
                normed = (h - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + bn.eps)
                branch = normed.mean(dim=(2, 3))
            else:  # statistics of the pooled vector over the batch
                f = feats["features"]
                branch = (f - f.mean(0)) / torch.sqrt(f.var(0, unbiased=False) + bn.eps)
            for k in range(3):
                expected = branch @ net.experts[k].weight.T + net.experts[k].bias
                assert torch.allclose(out["branch_logits"][:, k, b], expected, atol=1e-5)
