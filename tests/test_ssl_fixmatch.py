"""FixMatch's loss against a hand computation on a tiny batch, and the algorithm registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from semclust.ssl.algorithms import ALGORITHMS, get_algorithm
from semclust.ssl.algorithms.fixmatch import FixMatchAlgorithm


class LogitsAreInputs(nn.Module):
    """A fixed 'network': the input [N,K,1,1] is its own logits; counts forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x.flatten(1)


def _ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def _softmax(logits: list[float]) -> list[float]:
    z = sum(math.exp(v) for v in logits)
    return [math.exp(v) / z for v in logits]


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).view(len(rows), -1, 1, 1)


def test_fixmatch_loss_equals_hand_computation():
    lb = [[2.0, 0.0, -1.0], [0.5, 0.2, 0.1]]
    y_lb = [0, 2]
    weak = [[5.0, 0.0, 0.0], [1.0, 0.9, 0.0], [0.0, 0.0, 3.0], [0.0, 4.0, 0.0]]  # max p: .987, .45, .905, .965
    strong = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.3, 0.1, 2.0], [0.0, -1.0, 1.0]]
    y_ulb = [0, 1, 2, 2]
    threshold, lambda_u = 0.95, 0.7
    model = LogitsAreInputs()
    algo = FixMatchAlgorithm(model, 3, threshold=threshold, lambda_u=lambda_u)
    batch = {"x_lb": _t(lb), "y_lb": torch.tensor(y_lb), "x_ulb_w": _t(weak), "x_ulb_s": _t(strong),
             "y_ulb": torch.tensor(y_ulb)}  # fmt: skip
    loss, logs = algo.train_step(batch, step=0)

    sup = sum(_ce(r, t) for r, t in zip(lb, y_lb)) / len(lb)
    terms = []
    for w, s in zip(weak, strong):
        p = _softmax(w)
        pseudo = max(range(3), key=lambda c: p[c])
        terms.append(_ce(s, pseudo) if max(p) >= threshold else 0.0)
    unsup = sum(terms) / len(weak)
    assert [t != 0.0 for t in terms] == [True, False, False, True]  # 0.905 < 0.95 is masked out
    assert float(loss) == pytest.approx(sup + lambda_u * unsup, rel=1e-9)
    assert logs["sup_loss"] == pytest.approx(sup) and logs["unsup_loss"] == pytest.approx(unsup)
    assert logs["mask_ratio"] == 0.5
    assert logs["pseudo_acc"] == pytest.approx(0.5)  # pseudo-labels 0,0,2,1 vs 0,1,2,2
    assert logs["pseudo_acc_masked"] == pytest.approx(0.5)  # kept: sample 0 (right), 3 (wrong)
    assert model.calls == 1  # labelled, weak and strong in one forward pass


def test_pseudo_labels_carry_no_gradient_and_threshold_zero_keeps_all():
    weak = _t([[1.0, 0.0], [0.0, 1.0]]).requires_grad_(True)
    strong = _t([[0.0, 0.0], [0.0, 0.0]]).requires_grad_(True)
    algo = FixMatchAlgorithm(LogitsAreInputs(), 2, threshold=0.0)
    batch = {"x_lb": _t([[1.0, 0.0]]), "y_lb": torch.tensor([0]), "x_ulb_w": weak, "x_ulb_s": strong}
    loss, logs = algo.train_step(batch, step=0)
    loss.backward()
    assert logs["mask_ratio"] == 1.0 and "pseudo_acc" not in logs
    assert weak.grad is None or torch.all(weak.grad == 0)
    assert logs["unsup_loss"] == pytest.approx(math.log(2))


def test_registry():
    assert get_algorithm("fixmatch") is FixMatchAlgorithm and ALGORITHMS["fixmatch"] is FixMatchAlgorithm
    with pytest.raises(ValueError, match="valid names: .*fixmatch"):
        get_algorithm("mixmatch")
    with pytest.raises(ValueError, match="threshold"):
        FixMatchAlgorithm(LogitsAreInputs(), 3, threshold=1.5)
