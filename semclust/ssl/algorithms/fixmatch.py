"""FixMatch (Sohn et al. 2020): consistency between weak-view pseudo-labels and strong views.

loss = CE(labelled) + lambda_u * mean_u 1[max q >= threshold] * CE(strong(u), argmax q),
with q = softmax(model(weak(u))) detached. Labelled, weak and strong inputs go through the
network in one forward pass, so batch norm sees all of them together, as in the paper.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from semclust.ssl.algorithms import register
from semclust.ssl.algorithms.base import SSLAlgorithm, check_pseudo_label_params


def fixmatch_loss(
    logits_lb: torch.Tensor,
    y_lb: torch.Tensor,
    logits_w: torch.Tensor,
    logits_s: torch.Tensor,
    threshold: float = 0.95,
    lambda_u: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The FixMatch loss from logits; returns ``(loss, parts)`` with sup/unsup losses, mask and pseudo-labels."""
    sup = F.cross_entropy(logits_lb, y_lb)
    probs = torch.softmax(logits_w.detach().float(), dim=1)
    max_prob, pseudo = probs.max(dim=1)
    mask = (max_prob >= threshold).float()
    unsup = (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
    return sup + lambda_u * unsup, {"sup": sup, "unsup": unsup, "mask": mask, "pseudo": pseudo}


@register("fixmatch")
class FixMatchAlgorithm(SSLAlgorithm):
    def __init__(self, model: nn.Module, num_classes: int, threshold: float = 0.95, lambda_u: float = 1.0, **rest: Any):
        super().__init__(model, num_classes, **rest)
        threshold, lambda_u = check_pseudo_label_params(threshold, lambda_u)
        self.threshold = float(threshold)
        self.lambda_u = float(lambda_u)

    def hyperparams(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "lambda_u": self.lambda_u}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x_lb, x_w, x_s = batch["x_lb"], batch["x_ulb_w"], batch["x_ulb_s"]
        n_lb, n_ulb = len(x_lb), len(x_w)
        logits = self.model(torch.cat([x_lb, x_w, x_s]))
        logits_lb, logits_w, logits_s = logits[:n_lb], logits[n_lb : n_lb + n_ulb], logits[n_lb + n_ulb :]
        loss, parts = fixmatch_loss(logits_lb, batch["y_lb"], logits_w, logits_s, self.threshold, self.lambda_u)
        mask = parts["mask"]
        logs = {
            "loss": float(loss.detach()),
            "sup_loss": float(parts["sup"].detach()),
            "unsup_loss": float(parts["unsup"].detach()),
            "mask_ratio": float(mask.mean()),
        }
        y_ulb = batch.get("y_ulb")
        if y_ulb is not None:
            known = y_ulb >= 0
            if bool(known.any()):
                correct = (parts["pseudo"] == y_ulb).float()
                logs["pseudo_acc"] = float(correct[known].mean())
                masked = known & (mask > 0)
                if bool(masked.any()):
                    logs["pseudo_acc_masked"] = float(correct[masked].mean())
        return loss, logs
