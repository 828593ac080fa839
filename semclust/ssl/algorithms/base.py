"""The interface every semi-supervised algorithm implements for :class:`semclust.ssl.trainer.Trainer`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


class SSLAlgorithm(ABC):
    """One semi-supervised objective.

    The trainer owns data, augmentation, optimiser, EMA, evaluation and checkpoints; an algorithm
    only turns a batch into a loss. ``batch`` holds ``x_lb`` [B,C,H,W], ``y_lb`` [B],
    ``x_ulb_w`` and ``x_ulb_s`` [mu*B,C,H,W] (weak and strong views of the same unlabelled
    images, already augmented, normalised and on the device), ``idx_ulb`` (their indices into the
    unlabelled set) and, only when the unlabelled labels are known, ``y_ulb`` -- for monitoring,
    never for the loss.

    Anything an algorithm keeps across steps beyond the model (queues, counters, class
    statistics) goes in :meth:`state_dict`: tensors are saved in safetensors, the rest as JSON.
    """

    name: str = ""

    def __init__(self, model: nn.Module, num_classes: int, **hyperparams: Any) -> None:
        if hyperparams:
            raise ValueError(
                f"unknown hyperparameter(s) for {self.name or type(self).__name__}: {', '.join(sorted(hyperparams))}"
            )
        self.model = model
        self.num_classes = int(num_classes)

    @abstractmethod
    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss to minimise, {name: float} to log)`` for one batch; ``step`` counts from 0."""

    def hyperparams(self) -> dict[str, Any]:
        """JSON-ready hyperparameters, recorded in checkpoints and run.json."""
        return {}

    def eval_outputs(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image evaluation outputs of ``model`` (the EMA copy) for a normalised batch.

        ``"pred"`` (class predictions) is required; extras (per-expert predictions, ...) are
        concatenated over batches and handed to :meth:`eval_metrics`.
        """
        return {"pred": model(x).argmax(dim=1)}

    def eval_metrics(self, outputs: dict[str, Any], y: Any) -> dict[str, Any]:
        """Extra evaluation metrics from :meth:`eval_outputs` (numpy arrays) and the labels ``y``."""
        return {}

    def on_train_start(self, trainer: Any) -> None:  # noqa: B027 (optional hook)
        """Called once before the first step (also after a resume)."""

    def on_eval(self, trainer: Any, step: int, metrics: dict[str, Any]) -> None:  # noqa: B027
        """Called after each evaluation with its metrics."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{self.name}: unexpected algorithm state keys {sorted(state)}")


def check_pseudo_label_params(threshold: float, lambda_u: float) -> tuple[float, float]:
    """FixMatch-style confidence threshold and unlabelled-loss weight, validated, as floats."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if lambda_u < 0:
        raise ValueError(f"lambda_u must be non-negative, got {lambda_u}")
    return float(threshold), float(lambda_u)
