"""FixMatch on a frozen backbone: a small head trained on cached features of augmented views.

The backbone (a pretrained encoder) never changes, so each image's weak and strong views are
embedded once (:mod:`semclust.ssl.views`) and a step only gathers rows and runs the head:
``loss = CE(head(weak_lb), y) + lambda_u * mean(1[max q >= threshold] CE(head(strong_u), argmax q))``
with ``q = softmax(head(weak_u))``, the weak and strong view of every image drawn at random
among its cached ones. SGD (nesterov 0.9), FixMatch's cosine schedule, weight decay on the
weights, an EMA of the head (with warm-up) that predicts.

A stage is cheap (a few seconds), so it is not checkpointed part-way: a resumed run retrains an
unfinished stage from its seed, which gives the same head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from semclust.ssl.data import InfiniteSampler
from semclust.ssl.optim import EMA, cosine_lr, param_groups
from semclust.ssl.views import CachedViews

EVAL_BATCH = 4096  # feature rows per forward pass when predicting


class FeatureHead(nn.Module):
    """``Linear(d, hidden) -> ReLU -> Linear(hidden, C)`` (``hidden=0``: one linear layer) on
    features centred by the training features' mean and scaled by their overall spread (buffers,
    so a saved head carries them)."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 0) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(int(in_dim)))
        self.register_buffer("std", torch.ones(int(in_dim)))
        self.num_classes = int(num_classes)
        layers: list[nn.Module] = (
            [nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
            if hidden > 0
            else [nn.Linear(in_dim, num_classes)]
        )
        self.net = nn.Sequential(*layers)

    def set_standardisation(self, features: np.ndarray) -> None:
        """Centre per dimension, scale by one number (the root mean square of the per-dimension
        standard deviations): a per-dimension scale blew near-constant dimensions of the
        training features up in augmented views, and FixMatch's loss diverged (digits)."""
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        self.mean.copy_(x.mean(dim=0))
        scale = float(x.var(dim=0).mean().sqrt()) if len(x) > 1 else 1.0
        self.std.fill_(max(scale, 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


@dataclass
class HeadConfig:
    num_classes: int
    total_steps: int = 1000
    # A linear head by default: with 10 true labels per class on Fashion-MNIST (offline visual
    # features, 300 steps) it reached 0.72 train-subset accuracy, a 512-unit MLP 0.47.
    hidden: int = 0
    batch_size: int = 64
    mu: int = 7
    lr: float = 0.03
    weight_decay: float = 5e-4
    threshold: float = 0.95
    lambda_u: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    device: str = "cpu"


class HeadTrainer:
    """FixMatch with labelled rows ``lb_idx`` of ``features`` and every row unlabelled, on the
    cached ``views`` (rows aligned with ``features``)."""

    checkpoint_every = 1 << 62  # never part-way (see the module docstring)

    def __init__(self, features: np.ndarray, views: CachedViews, config: HeadConfig) -> None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != views.n or features.shape[1] != views.dim:
            raise ValueError(f"features {features.shape} do not match the cached views ({views.n} x {views.dim})")
        for name in ("total_steps", "batch_size", "mu", "num_classes"):
            if int(getattr(config, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
        self.config = config
        self.device = torch.device(config.device)
        self.features = torch.from_numpy(features)
        self.weak = torch.from_numpy(np.ascontiguousarray(views.weak))
        self.strong = torch.from_numpy(np.ascontiguousarray(views.strong))
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, the global RNG untouched
            torch.manual_seed(int(config.seed))
            self.model = FeatureHead(features.shape[1], int(config.num_classes), int(config.hidden))
        self.model.set_standardisation(features)
        self.model.to(self.device)
        self.ema = EMA(self.model, config.ema_decay, warmup=True)
        self.optimizer = torch.optim.SGD(
            param_groups(self.model, config.weight_decay), lr=config.lr, momentum=0.9, nesterov=True
        )
        self.generator = torch.Generator().manual_seed(int(config.seed) + 1)
        self.step = 0

    @property
    def ema_model(self) -> nn.Module:
        return self.ema.model

    def _rows(self, bank: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        view = torch.randint(0, bank.shape[0], (len(idx),), generator=self.generator)
        return bank[view, idx].to(torch.float32).to(self.device)

    def fit(
        self,
        lb_idx: Any,
        y_lb: Any,
        progress: Callable[[int, dict[str, float]], None] | None = None,
    ) -> HeadTrainer:
        """Train ``total_steps`` steps; ``progress(step, {"loss", "mask_ratio"})`` after each."""
        cfg = self.config
        lb = torch.as_tensor(np.asarray(lb_idx, dtype=np.int64))
        y = torch.as_tensor(np.asarray(y_lb, dtype=np.int64)).to(self.device)
        if len(lb) != len(y) or len(lb) < 1:
            raise ValueError(f"need one label per labelled row, got {len(lb)} rows and {len(y)} labels")
        if int(y.min()) < 0 or int(y.max()) >= cfg.num_classes:
            raise ValueError(f"labels must lie in [0, {cfg.num_classes}), got {int(y.min())}..{int(y.max())}")
        lb_sampler = InfiniteSampler(len(lb), cfg.batch_size, cfg.seed + 3)
        ulb_sampler = InfiniteSampler(len(self.features), cfg.batch_size * cfg.mu, cfg.seed + 4)
        self.model.train()
        for step in range(1, cfg.total_steps + 1):
            pick = lb_sampler.next()
            x_lb = self._rows(self.weak, lb[pick])
            u = ulb_sampler.next()
            x_w, x_s = self._rows(self.weak, u), self._rows(self.strong, u)
            logits = self.model(torch.cat([x_lb, x_w, x_s]))
            z_lb, z_w, z_s = logits.split([len(x_lb), len(x_w), len(x_s)])
            with torch.no_grad():
                confidence, pseudo = F.softmax(z_w.detach(), dim=1).max(dim=1)
                mask = (confidence >= cfg.threshold).float()
            loss_u = (F.cross_entropy(z_s, pseudo, reduction="none") * mask).mean()
            loss = F.cross_entropy(z_lb, y[pick.to(self.device)]) + cfg.lambda_u * loss_u
            for group in self.optimizer.param_groups:
                group["lr"] = cosine_lr(cfg.lr, step - 1, cfg.total_steps)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.ema.update(self.model, step - 1)
            self.step = step
            if progress is not None:
                progress(step, {"loss": float(loss.detach()), "mask_ratio": float(mask.mean())})
        return self

    @torch.no_grad()
    def logits(self, rows: Any, use_ema: bool = False) -> torch.Tensor:
        """Logits of the live head (or the EMA head) on training rows ``rows``, float CPU."""
        return head_logits(self.ema_model if use_ema else self.model, self.features[torch.as_tensor(rows)])

    def predict(self, rows: Any) -> np.ndarray:
        """EMA head's argmax on training rows ``rows``."""
        return self.logits(rows, use_ema=True).argmax(dim=1).numpy().astype(np.int64)


@torch.no_grad()
def head_logits(model: nn.Module, features: Any) -> torch.Tensor:
    """``model``'s logits on feature rows, in batches, in eval mode (float CPU tensor)."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32)) if not isinstance(features, torch.Tensor) else features
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out = [
        model(x[s : s + EVAL_BATCH].to(torch.float32).to(device)).float().cpu() for s in range(0, len(x), EVAL_BATCH)
    ]
    model.train(was)
    if not out:
        return torch.zeros((0, int(getattr(model, "num_classes", 0))))
    return torch.cat(out)
