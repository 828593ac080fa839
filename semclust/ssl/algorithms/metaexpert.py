"""Meta-Expert (Hou & Jia, ICML 2025): CPE's three experts plus a dynamic expert assignment.

* MFF (multi-depth feature fusion): two ladders of ``Linear + SiLU`` over the pooled taps
  ``v1..vL`` of the backbone. Row one ``a_1 = f(v_1)``, ``a_i = f(v_i + a_{i-1})``; row two
  ``b_1 = g(a_1)``, ``b_i = g(a_i + b_{i-1})``; each layer maps to the next tap's width and the
  last ones to ``fusion_dim`` (256), giving ``v = b_L``. On WRN-28-2 the taps get their own BNs
  (``tap_bns="own"``, the reference's bn1-bn4); ``"shared"`` reuses the next block's BN.
* DEA (dynamic expert assignment): ``u = MLP([v; softmax(z_k + tau_k log pi), k = 1..3])``
  (``fusion_dim + 3C -> 128 -> 64 -> 3``, SiLU after every layer, the last one included as in
  the reference; ``assignment_silu=False`` drops the last), ``w_hat = softmax(u)``, ``p_k`` = the
  largest probability ``softmax(z_k)`` gives to a class of expert ``k``'s own group, and
  ``w = softmax(p * w_hat)``. Prediction: ``argmax sum_k w_k z_k``.
* Losses: CPE's (per-expert logit-adjusted CE and routed FixMatch consistency) plus, from step
  ``fuse_warmup`` on, the released code's four fused losses (``metaexpert.py`` train_step):

  1. supervised fused: ``CE(sum_k w_k (l_k - min_c l_k), y)`` with ``l_k = z_k + tau_k log pi``,
     class-balanced weights from the effective number ``(1 - b) / (1 - b^n_c)`` (``b = 0.99``,
     normalised to sum to ``C``);
  2. unsupervised fused: for each expert ``j`` the assignment-weighted branch logits
     ``f_j = sum_b w_b (z_{j,b} - min_c z_{j,b})``, ``CE(f_j(strong), argmax f_j(weak))`` (no
     confidence mask), the three summed with mixture weights ``m_j``;
  3. supervised assignment: ``CE(u, group(y))`` with effective-number group weights (``b = 0.99``);
  4. unsupervised assignment: ``CE(u(strong), argmax u(weak))`` (no mask).

  The mixture weights start at 1/3 each and are set once, at ``fuse_warmup``, from the class
  distribution of E2's confident pseudo-labels over the preceding ``estimate_steps`` steps
  (one reference "epoch", 1/256 of training): ``uniform`` when ``max/min < 2``, ``reversed`` when
  the tail half's largest share is over twice the head half's smallest and the head half's
  largest under twice the tail half's smallest, ``consistent`` otherwise (0/1 weights).
  ``fused_losses=False`` keeps only terms 3 and 4 (our earlier variant).

Defaults follow the released code; our variants are options. ``fuse_warmup=None`` is the
released schedule, 20 of 256 "epochs" (est_epoch 18 + 2) = 7.8 % of the steps. Unlike the
released code (whose optimiser is built before the MFF/DEA layers exist), the MFF and DEA layers
are optimised; ``freeze_assignment=True`` reproduces the released behaviour. Groups come from
the labelled class frequencies, not class indices, and the E2 pseudo-label counts are true
counts (the released ``current_mask[pseudo] += mask`` adds at most one per class and step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semclust.ssl.algorithms import register
from semclust.ssl.algorithms.cpe import N_GROUPS, CPEAlgorithm, GroupExpertNet

DEFAULT_FUSION_DIM = 256
CB_BETA = 0.99  # the released beta1 = beta2 of the class-balanced weights
# The released run: 256 "epochs" of 1024 steps, fused losses from epoch est_epoch + 2 = 20.
REFERENCE_EPOCHS = 256
REFERENCE_FUSE_EPOCH = 20
MIXTURES = ("consistent", "uniform", "reversed")
TAP_BN_MODES = ("own", "shared")


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
    """Assignment MLP ``in_dim -> 128 -> 64 -> 3`` (SiLU) giving the logits ``u``.

    ``final_silu=True`` (the reference) ends in ``Linear(64, 3)`` followed by SiLU.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int] = (128, 64), n_experts: int = N_GROUPS,
                 final_silu: bool = True) -> None:  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        d = int(in_dim)
        for h in hidden:
            layers += [nn.Linear(d, int(h)), nn.SiLU()]
            d = int(h)
        layers.append(nn.Linear(d, n_experts))
        if final_silu:
            layers.append(nn.SiLU())
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


def shift_to_zero(logits: torch.Tensor) -> torch.Tensor:
    """``logits - min_c logits`` along the last axis (every row's smallest logit becomes 0)."""
    return logits - logits.min(dim=-1, keepdim=True).values


def class_balanced_weights(counts: Any, beta: float = CB_BETA) -> torch.Tensor:
    """Effective-number weights ``(1 - beta) / (1 - beta^n)``, normalised to sum to ``len(counts)``.

    A count of zero is taken as one (the released code would divide by zero).
    """
    n = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    w = (1.0 - beta) / (1.0 - np.power(beta, n))
    return torch.as_tensor(w / w.sum() * len(n), dtype=torch.float32)


def mixture_weights(class_dist: Any, rank: Any) -> torch.Tensor:
    """Released rule for the unsupervised fused loss: 0/1 weights of (consistent, uniform, reversed).

    ``class_dist`` is the estimated unlabelled class distribution, ``rank`` the classes from the
    most to the least labelled (the released code uses class indices, sorted that way in its
    data); the head half is the first ``C // 2`` of them.
    """
    est = torch.as_tensor(np.asarray(class_dist, dtype=np.float64)[np.asarray(rank)])
    half = len(est) // 2
    head, tail = est[:half], est[half:]
    with np.errstate(divide="ignore", invalid="ignore"):
        reversed_ = bool(tail.max() / head.min() > 2.0) and bool(head.max() / tail.min() < 2.0)
        uniform = bool(est.max() / est.min() < 2.0)
    consistent = (int(reversed_) + int(uniform)) != 1
    return torch.tensor([float(consistent), float(uniform), float(reversed_)])


class MetaExpertNet(GroupExpertNet):
    """:class:`GroupExpertNet` plus MFF and DEA; ``forward`` returns the fused logits ``sum_k w_k z_k``."""

    def __init__(self, backbone: nn.Module, num_classes: int, taus: Sequence[float] = (0.0, 2.0, 4.0),
                 predict_expert: int = 1, fusion_dim: int = DEFAULT_FUSION_DIM,
                 freeze_assignment: bool = False, group_bn: str = "map", tap_bns: str = "own",
                 assignment_silu: bool = True) -> None:  # fmt: skip
        if tap_bns not in TAP_BN_MODES:
            raise ValueError(f"tap_bns must be one of {', '.join(TAP_BN_MODES)}, got {tap_bns!r}")
        if tap_bns == "own" and hasattr(backbone, "enable_own_tap_bns"):
            cast(Any, backbone).enable_own_tap_bns()  # WRN; SmallCNN's taps already follow their block's BN
        super().__init__(backbone, num_classes, taus=taus, predict_expert=predict_expert, group_bn=group_bn)
        tap_dims = getattr(backbone, "tap_dims", None)
        if not tap_dims:
            raise ValueError("Meta-Expert needs a backbone with tap_dims (cnn, wrn-28-2)")
        self.mff = MFF(tap_dims, fusion_dim)
        self.dea = DEA(fusion_dim + N_GROUPS * self.num_classes, final_silu=assignment_silu)
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
        w = out["w"]
        out["fused"] = (w.unsqueeze(2) * z).sum(dim=1)
        adjusted_logits = z + self.taus.view(1, -1, 1) * self.log_pi.view(1, 1, -1)
        out["fused_adjusted"] = (w.unsqueeze(2) * shift_to_zero(adjusted_logits)).sum(dim=1)  # [B, C]
        # expert j's branch b logits, weighted by the assignment of branch b's group: [B, expert, C]
        out["fused_branches"] = (w.view(-1, 1, N_GROUPS, 1) * shift_to_zero(out["branch_logits"])).sum(dim=2)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(x)["fused"]


@register("metaexpert")
class MetaExpertAlgorithm(CPEAlgorithm):
    net_class = MetaExpertNet

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        threshold: float = 0.95,
        lambda_u: float = 1.0,
        taus: Sequence[float] = (0.0, 2.0, 4.0),
        fuse_warmup: int | None = None,
        estimate_steps: int | None = None,
        fused_losses: bool = True,
        freeze_assignment: bool = False,
        fusion_dim: int = DEFAULT_FUSION_DIM,
        tap_bns: str = "own",
        assignment_silu: bool = True,
        class_counts: Sequence[int] | None = None,
        **rest: Any,
    ):
        if fuse_warmup is not None and int(fuse_warmup) < 0:
            raise ValueError(f"fuse_warmup must be non-negative, got {fuse_warmup}")
        if estimate_steps is not None and int(estimate_steps) < 1:
            raise ValueError(f"estimate_steps must be positive, got {estimate_steps}")
        self.fuse_warmup = None if fuse_warmup is None else int(fuse_warmup)
        self.estimate_steps = None if estimate_steps is None else int(estimate_steps)
        self.fused_losses = bool(fused_losses)
        self.freeze_assignment = bool(freeze_assignment)
        self.fusion_dim = int(fusion_dim)
        self.tap_bns, self.assignment_silu = tap_bns, bool(assignment_silu)
        self._warmup_steps = self.fuse_warmup or 0
        self._estimate_steps = self.estimate_steps or 1
        super().__init__(model, num_classes, threshold=threshold, lambda_u=lambda_u, taus=taus,
                         class_counts=class_counts, **rest)  # fmt: skip
        self.pseudo_counts = torch.zeros(self.num_classes, dtype=torch.float64)
        self.mixture = torch.full((N_GROUPS,), 1.0 / N_GROUPS)
        self.mixture_set = False

    def net_kwargs(self) -> dict[str, Any]:
        return {"fusion_dim": self.fusion_dim, "freeze_assignment": self.freeze_assignment,
                "tap_bns": self.tap_bns, "assignment_silu": self.assignment_silu}  # fmt: skip

    def hyperparams(self) -> dict[str, Any]:
        hp = super().hyperparams()
        hp.pop("predict_expert")
        return {**hp, "fuse_warmup": self.fuse_warmup, "estimate_steps": self.estimate_steps,
                "fused_losses": self.fused_losses, "freeze_assignment": self.freeze_assignment,
                "fusion_dim": self.fusion_dim, "tap_bns": self.tap_bns,
                "assignment_silu": self.assignment_silu}  # fmt: skip

    def on_train_start(self, trainer: Any) -> None:
        super().on_train_start(trainer)
        total = int(trainer.total_steps)
        if self.fuse_warmup is None:
            self._warmup_steps = int(round(REFERENCE_FUSE_EPOCH * total / REFERENCE_EPOCHS))
        if self.estimate_steps is None:
            self._estimate_steps = max(1, int(round(total / REFERENCE_EPOCHS)))

    def fused_terms(self, out: dict[str, Any], y_lb: torch.Tensor, n_lb: int, n_ulb: int) -> dict[str, torch.Tensor]:
        """The released code's four fused losses (see the module docstring) for one batch."""
        u, lb, w_sl, s_sl = out["u"], slice(0, n_lb), slice(n_lb, n_lb + n_ulb), slice(n_lb + n_ulb, None)
        group_lb = self.model.class_group[y_lb]
        group_counts = np.bincount(self.groups, weights=self.counts, minlength=N_GROUPS)
        class_w = class_balanced_weights(self.counts).to(u.device)
        group_w = class_balanced_weights(group_counts).to(u.device)
        terms = {
            "dea_sup_loss": F.cross_entropy(u[lb], group_lb, weight=group_w),
            "dea_unsup_loss": F.cross_entropy(u[s_sl], u[w_sl].detach().argmax(dim=1)),
        }
        if self.fused_losses:
            terms["fused_sup_loss"] = F.cross_entropy(out["fused_adjusted"][lb], y_lb, weight=class_w)
            fb = out["fused_branches"]
            per_expert = [F.cross_entropy(fb[s_sl, j], fb[w_sl, j].detach().argmax(dim=1)) for j in range(N_GROUPS)]
            mixture = self.mixture.to(u)
            terms["fused_unsup_loss"] = torch.stack(per_expert).mul(mixture).sum()
        return terms

    def _track_distribution(self, out: dict[str, Any], mask: torch.Tensor, n_lb: int, n_ulb: int, step: int) -> None:
        if self.mixture_set or not self._warmup_steps - self._estimate_steps <= step < self._warmup_steps:
            return
        pseudo = out["z"][n_lb : n_lb + n_ulb, 1].detach().argmax(dim=1)  # E2, the uniform expert
        counts = torch.bincount(pseudo[mask > 0].cpu(), minlength=self.num_classes)
        self.pseudo_counts += counts.double()

    def _set_mixture(self) -> None:
        self.mixture_set = True
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank counted its own shard: all of them decide from the global counts
            counts = self.pseudo_counts.to(self.model.log_pi.device)
            torch.distributed.all_reduce(counts)
            self.pseudo_counts = counts.cpu()
        total = float(self.pseudo_counts.sum())
        if total > 0:
            rank = np.argsort(-np.asarray(self.counts), kind="stable")
            self.mixture = mixture_weights((self.pseudo_counts / total).numpy(), rank)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x_lb, x_w, x_s = batch["x_lb"], batch["x_ulb_w"], batch["x_ulb_s"]
        y_lb = batch["y_lb"]
        n_lb, n_ulb = len(x_lb), len(x_w)
        out = self.model.heads(torch.cat([x_lb, x_w, x_s]))
        sup, unsup, masks = self.expert_losses(out, y_lb, n_lb, n_ulb)
        loss = sum(sup) + self.lambda_u * sum(unsup)
        group_lb = self.model.class_group[y_lb]
        logs = {"sup_loss": float(sum(sup).detach()), "unsup_loss": float(sum(unsup).detach()),
                "mask_ratio": float(masks[1].mean()),
                "assign_acc_lb": float((out["u"][:n_lb].argmax(dim=1) == group_lb).float().mean())}  # fmt: skip
        self._track_distribution(out, masks[1], n_lb, n_ulb, step)
        if step >= self._warmup_steps:
            if not self.mixture_set:
                self._set_mixture()
            terms = self.fused_terms(out, y_lb, n_lb, n_ulb)
            for name, term in terms.items():
                loss = loss + (self.lambda_u * term if "unsup" in name else term)
                logs[name] = float(term.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs

    def state_dict(self) -> dict[str, Any]:
        return {"pseudo_counts": self.pseudo_counts.clone(), "mixture": self.mixture.clone(),
                "mixture_set": self.mixture_set}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"pseudo_counts", "mixture", "mixture_set"}
        if unknown:
            raise ValueError(f"{self.name}: unexpected algorithm state keys {sorted(unknown)}")
        if "pseudo_counts" in state:
            self.pseudo_counts = torch.as_tensor(state["pseudo_counts"], dtype=torch.float64).clone()
            self.mixture = torch.as_tensor(state["mixture"], dtype=torch.float32).clone()
            self.mixture_set = bool(state["mixture_set"])

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
