"""Semi-supervised classifiers in the scikit-learn style over :class:`~semclust.ssl.trainer.Trainer`.

::

    model = semclust.MetaExpert(steps=1000, random_state=0).fit(x_labelled, y_labelled, x_unlabelled)
    pred = model.predict(x_test)

Images are uint8 arrays ``[n,H,W]`` (grayscale) or ``[n,H,W,C]``. Parameters are stored by
``__init__`` untouched; everything learned ends in ``_`` (``trainer_``, ``classes_``,
``class_counts_``, ``groups_``, ``log_``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semclust.estimator import ParamsMixin
from semclust.ssl.longtail import GROUP_NAMES, class_groups, estimate_class_counts, group_accuracies


class SSLClassifier(ParamsMixin):
    """Base: one registered SSL algorithm (``algorithm``) trained by the shared trainer."""

    algorithm = ""

    def __init__(
        self,
        *,
        steps: int = 1000,
        network: str = "cnn",
        batch_size: int = 64,
        mu: int = 2,
        lr: float = 0.03,
        threshold: float = 0.95,
        lambda_u: float = 1.0,
        ema: float = 0.999,
        ema_warmup: bool = False,
        flip: bool = True,
        eval_every: int | None = None,
        out_dir: str | Path | None = None,
        resume: bool = False,
        device: str = "cpu",
        random_state: int = 0,
    ) -> None:
        self.steps = steps
        self.network = network
        self.batch_size = batch_size
        self.mu = mu
        self.lr = lr
        self.threshold = threshold
        self.lambda_u = lambda_u
        self.ema = ema
        self.ema_warmup = ema_warmup
        self.flip = flip
        self.eval_every = eval_every
        self.out_dir = out_dir
        self.resume = resume
        self.device = device
        self.random_state = random_state

    def _hyperparams(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "lambda_u": self.lambda_u}

    def fit(
        self,
        x_labelled: Any,
        y_labelled: Any,
        x_unlabelled: Any,
        x_eval: Any = None,
        y_eval: Any = None,
        progress: Callable[[int, dict[str, float]], None] | None = None,
    ) -> SSLClassifier:
        """Train on labelled + unlabelled images; ``x_eval``/``y_eval`` are scored during training."""
        from semclust.ssl.trainer import Trainer

        y = np.asarray(y_labelled, dtype=np.int64)
        if y.ndim != 1 or len(y) == 0:
            raise ValueError(f"y_labelled must be a non-empty 1-d array of class ids, got shape {y.shape}")
        x = np.asarray(x_labelled)
        if x.ndim not in (3, 4):
            raise ValueError(f"images must be uint8 [n,H,W] or [n,H,W,C], got shape {x.shape}")
        num_classes = int(max(y.max(), -1 if y_eval is None else np.max(y_eval))) + 1
        self.trainer_ = Trainer(
            self.algorithm,
            network=self.network,
            num_classes=num_classes,
            in_channels=1 if x.ndim == 3 else int(x.shape[-1]),
            total_steps=self.steps,
            batch_size=self.batch_size,
            mu=self.mu,
            lr=self.lr,
            ema=self.ema,
            ema_warmup=self.ema_warmup,
            eval_every=self.eval_every,
            out_dir=self.out_dir,
            device=self.device,
            seed=self.random_state,
            flip=self.flip,
            resume=self.resume,
            **self._hyperparams(),
        )
        self.metrics_ = self.trainer_.fit(x, y, x_unlabelled, x_eval, y_eval, progress=progress)
        self.classes_ = np.arange(num_classes)
        self.class_counts_ = estimate_class_counts(y, num_classes)
        self.groups_ = class_groups(self.class_counts_)
        self.log_ = list(self.trainer_.log)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "trainer_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def predict(self, x: Any) -> np.ndarray:
        """Class ids (int64) for uint8 images, by the EMA model."""
        self._check_fitted()
        return self.trainer_.predict(x)

    def predict_outputs(self, x: Any) -> dict[str, np.ndarray]:
        """Everything the algorithm reports per image (``pred`` plus e.g. each expert's prediction)."""
        self._check_fitted()
        return self.trainer_.predict_outputs(x)

    def score(self, x: Any, y: Any) -> dict[str, float | None]:
        """Top-1 accuracy overall and on the head/medium/tail classes (groups by labelled frequency)."""
        pred = self.predict(x)
        y = np.asarray(y, dtype=np.int64)
        return {"acc": float((pred == y).mean()), **group_accuracies(y, pred, self.groups_)}


class FixMatch(SSLClassifier):
    """FixMatch (Sohn et al. 2020): confidence-thresholded pseudo-labels on weak views train strong views."""

    algorithm = "fixmatch"


class FixMatchLA(SSLClassifier):
    """FixMatch with logit adjustment ``tau * log prior`` on the labelled loss."""

    algorithm = "fixmatch-la"

    def __init__(self, *, tau: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tau = tau

    def _hyperparams(self) -> dict[str, Any]:
        return {**super()._hyperparams(), "tau": self.tau}


class CPE(SSLClassifier):
    """CPE: three logit-adjusted experts (``taus``) with class-group BN; predicts with ``predict_expert``."""

    algorithm = "cpe"

    def __init__(self, *, taus: Sequence[float] = (0.0, 2.0, 4.0), predict_expert: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.taus = taus
        self.predict_expert = predict_expert

    def _hyperparams(self) -> dict[str, Any]:
        return {**super()._hyperparams(), "taus": list(self.taus), "predict_expert": self.predict_expert}


class MetaExpert(SSLClassifier):
    """Meta-Expert (Hou & Jia, ICML 2025): CPE's experts, multi-depth fusion and a trained expert assignment.

    ``fuse_warmup`` is the step from which the fused and assignment losses apply (default: 7.8 %
    of ``steps``, the released schedule's fraction); ``fused_losses=False`` keeps only the two
    assignment losses; ``freeze_assignment=True`` reproduces the released code, whose fusion and
    assignment layers are never optimised.
    """

    algorithm = "metaexpert"

    def __init__(
        self,
        *,
        taus: Sequence[float] = (0.0, 2.0, 4.0),
        fuse_warmup: int | None = None,
        fused_losses: bool = True,
        freeze_assignment: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.taus = taus
        self.fuse_warmup = fuse_warmup
        self.fused_losses = fused_losses
        self.freeze_assignment = freeze_assignment

    def _hyperparams(self) -> dict[str, Any]:
        from semclust.ssl.experiment import FUSE_WARMUP_FRACTION

        warm = int(round(FUSE_WARMUP_FRACTION * self.steps)) if self.fuse_warmup is None else self.fuse_warmup
        return {
            **super()._hyperparams(),
            "taus": list(self.taus),
            "fuse_warmup": warm,
            "fused_losses": self.fused_losses,
            "freeze_assignment": self.freeze_assignment,
        }


__all__ = ["CPE", "GROUP_NAMES", "FixMatch", "FixMatchLA", "MetaExpert", "SSLClassifier"]
