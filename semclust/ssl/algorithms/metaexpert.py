"""Meta-Expert (Hou & Jia, ICML 2025): CPE's three experts plus a trained dynamic expert assignment.

* MFF (multi-depth feature fusion): two ladders of ``Linear + SiLU`` over the pooled taps
  ``v1..vL`` of the backbone. Row one ``a_1 = f(v_1)``, ``a_i = f(v_i + a_{i-1})``; row two
  ``b_1 = g(a_1)``, ``b_i = g(a_i + b_{i-1})``; each layer maps to the next tap's width and the
  last ones to ``fusion_dim`` (256), giving ``v = b_L``.
* DEA (dynamic expert assignment): ``u = MLP([v; softmax(z_k + tau_k log pi), k = 1..3])``
  (``fusion_dim + 3C -> 128 -> 64 -> 3``, SiLU), ``w_hat = softmax(u)``, ``p_k`` = the largest
  probability ``softmax(z_k)`` gives to a class of expert ``k``'s own group, and
  ``w = softmax(p * w_hat)``. Prediction: ``argmax sum_k w_k z_k``.
* Losses: CPE's (per-expert logit-adjusted CE and routed FixMatch consistency) plus, from step
  ``fuse_warmup`` on, ``CE(u, group(y))`` on labelled and ``CE(u(strong), argmax u(weak))`` on
  unlabelled images.

Unlike the released code, the MFF and DEA layers are part of the optimised module; pass
``freeze_assignment=True`` to reproduce the released behaviour (they stay at their random
initialisation). Groups come from the labelled class frequencies, not class indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semclust.ssl.algorithms import register
from semclust.ssl.algorithms.cpe import CPE, N_GROUPS, GroupExpertNet

DEFAULT_FUSION_DIM = 256


class MFF(nn.Module):
    """Multi-depth feature fusion of pooled taps ``[v1..vL]`` into one ``out_dim`` vector."""

    def __init__(self, tap_dims: Sequence[int], out_dim: int = DEFAULT_FUSION_DIM) -> None:
        super().__init__()
        dims = [int(d) for d in tap_dims]
        if not dims:
            raise ValueError("MFF needs at least one tap")
        # widths of a_1..a_L: the next tap's width, the last one out_dim
        a_dims = dims[1:] + [int(out_dim)]
        self.row1 = nn.ModuleList([nn.Sequential(nn.Linear(dims[i], a_dims[i]), nn.SiLU()) for i in range(len(dims))])
        b_out = a_dims[1:] + [int(out_dim)]
        self.row2 = nn.ModuleList([nn.Sequential(nn.Linear(a_dims[i], b_out[i]), nn.SiLU()) for i in range(len(dims))])
        self.out_dim = int(out_dim)

    def forward(self, taps: Sequence[torch.Tensor]) -> torch.Tensor:
        a, prev = [], None
        for v, layer in zip(taps, self.row1):
            prev = layer(v if prev is None else v + prev)
            a.append(prev)
        prev = None
        for ai, layer in zip(a, self.row2):
            prev = layer(ai if prev is None else ai + prev)
        return cast(torch.Tensor, prev)


class DEA(nn.Module):
    """Assignment MLP ``in_dim -> 128 -> 64 -> 3`` (SiLU) giving the logits ``u``."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (128, 64), n_experts: int = N_GROUPS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = int(in_dim)
        for h in hidden:
            layers += [nn.Linear(d, int(h)), nn.SiLU()]
            d = int(h)
        layers.append(nn.Linear(d, n_experts))
        self.mlp = nn.Sequential(*layers)

    def forward(self, v: torch.Tensor, adjusted_probs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.mlp(torch.cat([v, *adjusted_probs], dim=1))


def dea_weights(u: torch.Tensor, z: torch.Tensor, class_group: torch.Tensor) -> dict[str, torch.Tensor]:
    """``w_hat = softmax(u)``, ``p_k = max_{c in group k} softmax(z_k)_c``, ``w = softmax(p * w_hat)``.

    ``u`` [B, K], ``z`` [B, K, C] raw expert logits, ``class_group`` [C] (0..K-1).
    """
    w_hat = torch.softmax(u, dim=1)
    probs = torch.softmax(z, dim=2)
    k = z.shape[1]
    in_group = class_group.unsqueeze(0) == torch.arange(k, device=z.device).unsqueeze(1)  # [K, C]
    masked = probs.masked_fill(~in_group.unsqueeze(0), float("-inf"))
    p = masked.max(dim=2).values
    p = torch.where(torch.isfinite(p), p, torch.zeros_like(p))  # an empty group gives no confidence
    w = torch.softmax(p * w_hat, dim=1)
    return {"w_hat": w_hat, "p": p, "w": w}


class MetaExpertNet(GroupExpertNet):
    """:class:`GroupExpertNet` plus MFF and DEA; ``forward`` returns the fused logits ``sum_k w_k z_k``."""

    def __init__(self, backbone: nn.Module, num_classes: int, taus: Sequence[float] = (0.0, 2.0, 4.0),
                 predict_expert: int = 1, fusion_dim: int = DEFAULT_FUSION_DIM,
                 freeze_assignment: bool = False) -> None:  # fmt: skip
        super().__init__(backbone, num_classes, taus=taus, predict_expert=predict_expert)
        tap_dims = getattr(backbone, "tap_dims", None)
        if not tap_dims:
            raise ValueError("Meta-Expert needs a backbone with tap_dims (cnn, wrn-28-2)")
        self.mff = MFF(tap_dims, fusion_dim)
        self.dea = DEA(fusion_dim + N_GROUPS * self.num_classes)
        self.freeze_assignment = bool(freeze_assignment)
        if self.freeze_assignment:  # the released code's behaviour: never optimised
            for p in [*self.mff.parameters(), *self.dea.parameters()]:
                p.requires_grad_(False)

    def heads(self, x: torch.Tensor) -> dict[str, Any]:
        out = super().heads(x)
        z = out["z"]
        v = self.mff(out["taps"])
        adjusted = [torch.softmax(z[:, k] + self.taus[k] * self.log_pi, dim=1) for k in range(N_GROUPS)]
        u = self.dea(v, adjusted)
        out.update(dea_weights(u, z, self.class_group))
        out["u"] = u
        out["fused"] = (out["w"].unsqueeze(2) * z).sum(dim=1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(x)["fused"]


@register("metaexpert")
class MetaExpert(CPE):
    net_class = MetaExpertNet

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        threshold: float = 0.95,
        lambda_u: float = 1.0,
        taus: Sequence[float] = (0.0, 2.0, 4.0),
        fuse_warmup: int = 0,
        freeze_assignment: bool = False,
        fusion_dim: int = DEFAULT_FUSION_DIM,
        class_counts: Sequence[int] | None = None,
        **rest: Any,
    ):
        if int(fuse_warmup) < 0:
            raise ValueError(f"fuse_warmup must be non-negative, got {fuse_warmup}")
        self.fuse_warmup = int(fuse_warmup)
        self.freeze_assignment = bool(freeze_assignment)
        self.fusion_dim = int(fusion_dim)
        super().__init__(model, num_classes, threshold=threshold, lambda_u=lambda_u, taus=taus,
                         class_counts=class_counts, **rest)  # fmt: skip

    def net_kwargs(self) -> dict[str, Any]:
        return {"fusion_dim": self.fusion_dim, "freeze_assignment": self.freeze_assignment}

    def hyperparams(self) -> dict[str, Any]:
        hp = super().hyperparams()
        hp.pop("predict_expert")
        return {**hp, "fuse_warmup": self.fuse_warmup, "freeze_assignment": self.freeze_assignment,
                "fusion_dim": self.fusion_dim}  # fmt: skip

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x_lb, x_w, x_s = batch["x_lb"], batch["x_ulb_w"], batch["x_ulb_s"]
        y_lb = batch["y_lb"]
        n_lb, n_ulb = len(x_lb), len(x_w)
        out = self.model.heads(torch.cat([x_lb, x_w, x_s]))
        sup, unsup, masks = self.expert_losses(out, y_lb, n_lb, n_ulb)
        loss = sum(sup) + self.lambda_u * sum(unsup)
        u = out["u"]
        group_lb = self.model.class_group[y_lb]
        logs = {"sup_loss": float(sum(sup).detach()), "unsup_loss": float(sum(unsup).detach()),
                "mask_ratio": float(masks[1].mean()),
                "assign_acc_lb": float((u[:n_lb].argmax(dim=1) == group_lb).float().mean())}  # fmt: skip
        if step >= self.fuse_warmup:
            dea_sup = F.cross_entropy(u[:n_lb], group_lb)
            target = u[n_lb : n_lb + n_ulb].detach().argmax(dim=1)
            dea_unsup = F.cross_entropy(u[n_lb + n_ulb :], target)
            loss = loss + dea_sup + self.lambda_u * dea_unsup
            logs["dea_sup_loss"] = float(dea_sup.detach())
            logs["dea_unsup_loss"] = float(dea_unsup.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs

    def eval_outputs(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = cast(MetaExpertNet, model).heads(x)
        return {"pred": out["fused"].argmax(dim=1), "expert_pred": out["z"].argmax(dim=2),
                "assign": out["w"].argmax(dim=1)}  # fmt: skip

    def eval_metrics(self, outputs: dict[str, Any], y: Any) -> dict[str, Any]:
        metrics = super().eval_metrics(outputs, y)
        y = np.asarray(y)
        known = y >= 0
        if known.any():
            true_group = self.groups[y[known]]
            metrics["assign_acc"] = float((outputs["assign"][known] == true_group).mean())
            # the expert of each item's true group: what a perfect assignment would score
            oracle = outputs["expert_pred"][known][np.arange(int(known.sum())), true_group]
            metrics["oracle_assign_acc"] = float((oracle == y[known]).mean())
        return metrics
