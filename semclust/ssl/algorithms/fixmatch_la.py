"""FixMatch with logit adjustment (Menon et al. 2021) on the labelled loss.

loss = CE(z_lb + tau * log pi, y) + lambda_u * FixMatch consistency on the raw logits, where
``pi`` are the labelled class frequencies (estimated from the labelled set at the start of
training unless ``class_counts`` is given). Prediction uses the raw logits ``z``: training
against ``z + tau log pi`` pushes ``z`` towards the balanced (uniform-prior) classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semclust.ssl.algorithms import register
from semclust.ssl.algorithms.base import SSLAlgorithm, check_pseudo_label_params
from semclust.ssl.algorithms.fixmatch import fixmatch_loss
from semclust.ssl.longtail import class_groups, estimate_class_counts, group_accuracies, log_prior


def logit_adjusted_ce(logits: torch.Tensor, y: torch.Tensor, log_pi: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean ``CE(logits + tau * log_pi, y)``."""
    return F.cross_entropy(logits + float(tau) * log_pi.to(logits), y)


class PriorMixin:
    """Holds the labelled class counts, log prior and head/medium/tail groups of an algorithm."""

    class_counts: list[int] | None
    num_classes: int
    group_split: str = "reference"  # head/medium/tail sizes, see semclust.ssl.longtail.group_sizes

    def _init_prior(self, class_counts: Sequence[int] | None) -> None:
        self.class_counts = None if class_counts is None else [int(c) for c in class_counts]
        if self.class_counts is not None and len(self.class_counts) != self.num_classes:
            raise ValueError(f"class_counts has {len(self.class_counts)} entries for {self.num_classes} classes")
        self._set_prior(self.class_counts or [1] * self.num_classes)

    def _set_prior(self, counts: Sequence[int] | np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=np.int64)
        self.log_pi = torch.as_tensor(log_prior(self.counts), dtype=torch.float32)
        self.groups = class_groups(self.counts, self.group_split)

    def _prior_from_trainer(self, trainer: Any) -> None:
        if self.class_counts is None:  # estimated from the labelled labels
            self._set_prior(estimate_class_counts(trainer._y_lb.numpy(), self.num_classes))


@register("fixmatch-la")
class FixMatchLAAlgorithm(PriorMixin, SSLAlgorithm):
    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        threshold: float = 0.95,
        lambda_u: float = 1.0,
        tau: float = 2.0,
        class_counts: Sequence[int] | None = None,
        **rest: Any,
    ):
        super().__init__(model, num_classes, **rest)
        threshold, lambda_u = check_pseudo_label_params(threshold, lambda_u)
        self.threshold, self.lambda_u, self.tau = float(threshold), float(lambda_u), float(tau)
        self._init_prior(class_counts)

    def hyperparams(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "lambda_u": self.lambda_u, "tau": self.tau,
                "class_counts": self.class_counts}  # fmt: skip

    def on_train_start(self, trainer: Any) -> None:
        self._prior_from_trainer(trainer)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x_lb, x_w, x_s = batch["x_lb"], batch["x_ulb_w"], batch["x_ulb_s"]
        n_lb, n_ulb = len(x_lb), len(x_w)
        logits = self.model(torch.cat([x_lb, x_w, x_s]))
        logits_lb, logits_w, logits_s = logits[:n_lb], logits[n_lb : n_lb + n_ulb], logits[n_lb + n_ulb :]
        adjusted = logits_lb + self.tau * self.log_pi.to(logits_lb)
        loss, parts = fixmatch_loss(adjusted, batch["y_lb"], logits_w, logits_s, self.threshold, self.lambda_u)
        return loss, {
            "loss": float(loss.detach()),
            "sup_loss": float(parts["sup"].detach()),
            "unsup_loss": float(parts["unsup"].detach()),
            "mask_ratio": float(parts["mask"].mean()),
        }

    def eval_metrics(self, outputs: dict[str, Any], y: Any) -> dict[str, Any]:
        return group_accuracies(y, outputs["pred"], self.groups)
