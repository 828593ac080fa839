"""CPE (Ma et al., AAAI 2024): three complementary logit-adjusted experts with class-group BN.

On the backbone's last feature map ``h`` sit three batch-norm branches (head, medium, tail)
and three experts ``E_k = Linear(feature_dim, C)`` (xavier-normal weights, zero bias, as the
reference WRN initialises its classifiers). Expert ``k``'s logit on branch ``b`` is
``E_k(GAP(BN2d_b(h)))`` and its logit ``z_k`` is the mean over the branches. The BNs on the
feature map before pooling are the reference's (``wrn_cpe.py`` / ``wrn_metaexpert.py``
``BNH/BNM/BNT``); ``group_bn="vector"`` keeps our earlier BatchNorm1d on the pooled vector. Expert ``k`` is trained
with ``CE(z_k + tau_k log pi, y)`` (``tau = (0, 2, 4)``: E1 fits a long-tailed, E2 a uniform
and E3 an inverse long-tailed class distribution) plus a FixMatch consistency loss whose
strong-view terms are routed through the branches as in the CPE code: the head branch for
every confident pseudo-label, the medium branch for pseudo-labels of medium or tail classes,
the tail branch for tail classes, averaged over the terms used. Groups come from the labelled
class frequencies (not from class indices, our improvement), sized as the reference's cut
points 2 and 4 (2/2/6 of ten classes) unless ``group_split="thirds"`` (3/3/4). Prediction uses
expert ``predict_expert`` (default E2, the uniform one: test sets are balanced).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semclust.ssl.algorithms import register
from semclust.ssl.algorithms.base import SSLAlgorithm, check_pseudo_label_params
from semclust.ssl.algorithms.fixmatch_la import PriorMixin, logit_adjusted_ce
from semclust.ssl.longtail import GROUP_SPLITS, group_accuracies

N_GROUPS = 3
GROUP_BN_MODES = ("map", "vector")


class GroupExpertNet(nn.Module):
    """A backbone with three class-group BN branches and three linear experts on its last feature.

    Buffers ``log_pi`` (log labelled class frequencies), ``class_group`` (0/1/2 per class) and
    ``taus`` travel with checkpoints and the EMA copy. ``forward`` returns the logits of expert
    ``predict_expert``; :meth:`heads` returns everything.
    """

    backbone: Any  # duck-typed: needs forward_features() and feature_dim (cnn, wrn-28-2)
    log_pi: torch.Tensor
    class_group: torch.Tensor
    taus: torch.Tensor

    def __init__(self, backbone: nn.Module, num_classes: int, taus: Sequence[float] = (0.0, 2.0, 4.0),
                 predict_expert: int = 1, group_bn: str = "map") -> None:  # fmt: skip
        super().__init__()
        if len(taus) != N_GROUPS:
            raise ValueError(f"need {N_GROUPS} logit-adjustment taus (one per expert), got {list(taus)}")
        if not 0 <= int(predict_expert) < N_GROUPS:
            raise ValueError(f"predict_expert must be 0, 1 or 2, got {predict_expert}")
        if group_bn not in GROUP_BN_MODES:
            raise ValueError(f"group_bn must be one of {', '.join(GROUP_BN_MODES)}, got {group_bn!r}")
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.predict_expert = int(predict_expert)
        self.group_bn = group_bn
        d = int(cast(Any, backbone).feature_dim)
        bn = nn.BatchNorm2d if group_bn == "map" else nn.BatchNorm1d
        self.group_bns = nn.ModuleList([bn(d) for _ in range(N_GROUPS)])
        experts = [nn.Linear(d, self.num_classes) for _ in range(N_GROUPS)]
        for expert in experts:
            nn.init.xavier_normal_(expert.weight)
            nn.init.zeros_(expert.bias)
        self.experts = nn.ModuleList(experts)
        self.register_buffer("log_pi", torch.full((self.num_classes,), -float(np.log(self.num_classes))))
        self.register_buffer("class_group", torch.zeros(self.num_classes, dtype=torch.int64))
        self.register_buffer("taus", torch.tensor([float(t) for t in taus]))

    @torch.no_grad()
    def set_prior(self, log_pi: torch.Tensor, groups: Any) -> None:
        self.log_pi.copy_(torch.as_tensor(log_pi, dtype=torch.float32))
        self.class_group.copy_(torch.as_tensor(np.asarray(groups), dtype=torch.int64))

    def heads(self, x: torch.Tensor) -> dict[str, Any]:
        """``taps``, ``branch_logits`` [B, expert, branch, C] and ``z`` [B, expert, C] (branch mean)."""
        out = self.backbone.forward_features(x)
        if self.group_bn == "map":
            if "feature_map" not in out:
                raise ValueError("group_bn='map' needs a backbone whose forward_features returns feature_map")
            branches = [bn(out["feature_map"]).mean(dim=(2, 3)) for bn in self.group_bns]
        else:
            branches = [bn(out["features"]) for bn in self.group_bns]
        branch_logits = torch.stack([torch.stack([e(h) for h in branches], dim=1) for e in self.experts], dim=1)
        return {"taps": out["taps"], "branch_logits": branch_logits, "z": branch_logits.mean(dim=2)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(x)["z"][:, self.predict_expert]


def routed_consistency(
    logits_w: torch.Tensor, branch_logits_s: torch.Tensor, class_group: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CPE's branch-routed FixMatch loss for one expert; returns ``(loss, mask, pseudo)``.

    ``logits_w`` [N, C] (weak view, detached here), ``branch_logits_s`` [N, G, C] (strong view on
    each BN branch). A confident pseudo-label ``y`` of group ``g`` contributes
    ``CE(branch_b(strong), y)`` for every branch ``b <= g``; the loss is the mean over the
    contributing terms (0 when none).
    """
    probs = torch.softmax(logits_w.detach().float(), dim=1)
    max_prob, pseudo = probs.max(dim=1)
    mask = (max_prob >= threshold).float()
    n, g, c = branch_logits_s.shape
    route = (class_group[pseudo].unsqueeze(1) >= torch.arange(g, device=pseudo.device).unsqueeze(0)).float()
    weights = route * mask.unsqueeze(1)
    ce = F.cross_entropy(branch_logits_s.reshape(n * g, c), pseudo.repeat_interleave(g), reduction="none")
    loss = (ce.view(n, g) * weights).sum() / (weights.sum() + 1e-12)
    return loss, mask, pseudo


@register("cpe")
class CPEAlgorithm(PriorMixin, SSLAlgorithm):
    model: GroupExpertNet
    net_class: type[GroupExpertNet] = GroupExpertNet

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        threshold: float = 0.95,
        lambda_u: float = 1.0,
        taus: Sequence[float] = (0.0, 2.0, 4.0),
        predict_expert: int = 1,
        class_counts: Sequence[int] | None = None,
        group_split: str = "reference",
        group_bn: str = "map",
        **rest: Any,
    ):
        super().__init__(model, num_classes, **rest)
        if group_split not in GROUP_SPLITS:
            raise ValueError(f"group_split must be one of {', '.join(GROUP_SPLITS)}, got {group_split!r}")
        self.group_split, self.group_bn = group_split, group_bn
        threshold, lambda_u = check_pseudo_label_params(threshold, lambda_u)
        if not hasattr(model, "forward_features") or not hasattr(model, "feature_dim"):
            raise ValueError(f"{self.name}: the network needs forward_features() and feature_dim (cnn, wrn-28-2)")
        self.threshold, self.lambda_u = float(threshold), float(lambda_u)
        self.taus = [float(t) for t in taus]
        self.predict_expert = int(predict_expert)
        self._init_prior(class_counts)
        self.model = self.net_class(model, num_classes, taus=self.taus, predict_expert=self.predict_expert,
                                    group_bn=group_bn, **self.net_kwargs())  # fmt: skip
        self.model.set_prior(self.log_pi, self.groups)

    def net_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``net_class`` (subclasses)."""
        return {}

    def hyperparams(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "lambda_u": self.lambda_u, "taus": self.taus,
                "predict_expert": self.predict_expert, "class_counts": self.class_counts,
                "group_split": self.group_split, "group_bn": self.group_bn}  # fmt: skip

    def on_train_start(self, trainer: Any) -> None:
        self._prior_from_trainer(trainer)
        for net in (self.model, trainer.ema.model):
            net.set_prior(self.log_pi, self.groups)

    def expert_losses(self, out: dict[str, Any], y_lb: torch.Tensor, n_lb: int, n_ulb: int):
        """Per-expert supervised (logit-adjusted) and routed consistency losses, and the E2 mask."""
        z, bl = out["z"], out["branch_logits"]
        group = self.model.class_group
        sup, unsup, masks = [], [], []
        for k, tau in enumerate(self.taus):
            sup.append(logit_adjusted_ce(z[:n_lb, k], y_lb, self.model.log_pi, tau))
            loss_u, mask, _ = routed_consistency(
                z[n_lb : n_lb + n_ulb, k], bl[n_lb + n_ulb :, k], group, self.threshold
            )
            unsup.append(loss_u)
            masks.append(mask)
        return sup, unsup, masks

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x_lb, x_w, x_s = batch["x_lb"], batch["x_ulb_w"], batch["x_ulb_s"]
        n_lb, n_ulb = len(x_lb), len(x_w)
        out = self.model.heads(torch.cat([x_lb, x_w, x_s]))
        sup, unsup, masks = self.expert_losses(out, batch["y_lb"], n_lb, n_ulb)
        loss = sum(sup) + self.lambda_u * sum(unsup)
        logs = {"loss": float(loss.detach()), "sup_loss": float(sum(sup).detach()),
                "unsup_loss": float(sum(unsup).detach()), "mask_ratio": float(masks[1].mean())}  # fmt: skip
        return loss, logs

    # ---------------------------------------------------------------- evaluation
    def eval_outputs(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = cast(GroupExpertNet, model).heads(x)["z"]
        out = {"pred": z[:, self.predict_expert].argmax(dim=1)}
        out["expert_pred"] = z.argmax(dim=2)  # [B, 3]
        return out

    def eval_metrics(self, outputs: dict[str, Any], y: Any) -> dict[str, Any]:
        y = np.asarray(y)
        known = y >= 0
        metrics: dict[str, Any] = dict(group_accuracies(y, outputs["pred"], self.groups))
        expert_pred = outputs["expert_pred"]
        for k in range(expert_pred.shape[1]):
            pk = expert_pred[:, k]
            metrics[f"expert{k + 1}_acc"] = float((pk[known] == y[known]).mean()) if known.any() else None
            metrics.update(group_accuracies(y, pk, self.groups, prefix=f"expert{k + 1}_"))
        return metrics
