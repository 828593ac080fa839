"""The settings of one semi-supervised training run, checked once, and the record they leave."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from semclust.ssl.optim import LR_SCHEDULES


@dataclass(frozen=True)
class TrainerConfig:
    """What :class:`semclust.ssl.trainer.Trainer` is built from (every field a keyword of it).

    ``network`` is a name for :func:`semclust.ssl.nets.build_network` or a callable
    ``(num_classes, in_channels) -> nn.Module``. ``eval_every`` / ``checkpoint_every``
    default to a tenth of ``total_steps``; ``out_dir=None`` keeps everything in memory.
    """

    num_classes: int
    in_channels: int
    total_steps: int
    network: str | Callable[[int, int], nn.Module] = "cnn"
    batch_size: int = 64
    mu: int = 7
    lr: float = 0.03
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    ema: float = 0.999
    ema_warmup: bool = False
    lr_schedule: str = "cosine"
    eval_every: int | None = None
    checkpoint_every: int | None = None
    eval_batch_size: int = 512
    out_dir: str | os.PathLike[str] | None = None
    device: Any = "cpu"
    seed: int = 0
    flip: bool = True
    resume: bool = False
    amp: bool = False

    def __post_init__(self) -> None:
        for name in ("total_steps", "batch_size", "mu"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.eval_steps < 1 or self.checkpoint_steps < 1:
            raise ValueError("eval_every and checkpoint_every must be at least 1")

    @classmethod
    def split(cls, settings: Mapping[str, Any]) -> tuple[TrainerConfig, dict[str, Any]]:
        """``(config, algorithm hyperparameters)``: the keys that are fields, and the rest."""
        names = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in settings.items() if k in names})
        return config, {k: v for k, v in settings.items() if k not in names}

    @property
    def eval_steps(self) -> int:
        return int(self.eval_every or max(1, int(self.total_steps) // 10))

    @property
    def checkpoint_steps(self) -> int:
        return int(self.checkpoint_every or self.eval_steps)

    def network_name(self) -> str:
        return self.network if isinstance(self.network, str) else getattr(self.network, "__name__", repr(self.network))

    def record(self, algorithm: str, device: str, world_size: int, algo_hyperparams: dict[str, Any]) -> dict[str, Any]:
        """The run's ``config`` as logged and checkpointed; options away from their defaults
        (schedule, amp, several processes) appear only when used, so plain runs keep their record."""
        record: dict[str, Any] = {
            "algorithm": algorithm,
            "network": self.network_name(),
            "num_classes": int(self.num_classes),
            "in_channels": int(self.in_channels),
            "total_steps": int(self.total_steps),
            "batch_size": int(self.batch_size),
            "mu": int(self.mu),
            "lr": float(self.lr),
            "momentum": float(self.momentum),
            "nesterov": bool(self.nesterov),
            "weight_decay": float(self.weight_decay),
            "ema": float(self.ema),
            "ema_warmup": bool(self.ema_warmup),
            "eval_every": self.eval_steps,
            "checkpoint_every": self.checkpoint_steps,
            "seed": int(self.seed),
            "flip": bool(self.flip),
            "device": device,
            "algo_hyperparams": dict(algo_hyperparams),
        }
        if self.lr_schedule != "cosine":
            record["lr_schedule"] = self.lr_schedule
        if self.amp:
            record["amp"] = True
        if world_size > 1:
            record["world_size"] = world_size
        return record
