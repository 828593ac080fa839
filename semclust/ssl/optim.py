"""What the semi-supervised trainer optimises with: the learning-rate schedules, weight-decay
groups and the EMA copy of the model every evaluation uses."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

LR_SCHEDULES = ("cosine", "constant")


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """FixMatch's schedule: ``base_lr * cos(7 pi step / (16 total_steps))``."""
    return base_lr * math.cos(7.0 * math.pi * step / (16.0 * total_steps))


def scheduled_lr(schedule: str, base_lr: float, step: int, total_steps: int) -> float:
    """``"cosine"``: :func:`cosine_lr`; ``"constant"``: ``base_lr`` at every step."""
    return cosine_lr(base_lr, step, total_steps) if schedule == "cosine" else float(base_lr)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights (>= 2 dims); none on biases and norm parameters."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class EMA:
    """Exponential moving average of a model's parameters; buffers (BN statistics) are copied.

    ``shadow = d * shadow + (1 - d) * param`` with the constant ``d = decay`` (FixMatch, USB:
    ``ema_m`` 0.999), or, our option, with ``warmup`` (TensorFlow's ``num_updates`` convention)
    ``d = min(decay, (1 + k) / (10 + k))`` at update ``k`` so that short runs are not dominated
    by the initial weights.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = float(decay), bool(warmup)
        self.model = copy.deepcopy(model)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def decay_at(self, k: int) -> float:
        return min(self.decay, (1.0 + k) / (10.0 + k)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, k: int) -> None:
        d = self.decay_at(k)
        shadow: torch.Tensor
        for shadow, p in zip(self.model.parameters(), model.parameters()):
            shadow.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for shadow, b in zip(self.model.buffers(), model.buffers()):
            shadow.copy_(b)
