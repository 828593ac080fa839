"""What ASD's FixMatch stages train: a network from scratch on the pixels (the paper's setting).

A backbone makes one :class:`~semclust.methods.asd.instance.Stage` per FixMatch stage (an
instance stage with ``n_l`` classes, an SSL stage with K) and classifies the training rows at
the end; the frozen-encoder backbone is in :mod:`semclust.methods.asd.frozen`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semclust.methods.asd.instance import RECORD_CHUNK, Recording, TrainerStage

EVAL_BATCH = 512  # images per forward pass in predict (the trainer's evaluation batch)


class PixelStage(TrainerStage):
    """A :class:`semclust.ssl.trainer.Trainer` (FixMatch on uint8 images ``x``)."""

    def __init__(self, trainer: Any, x: np.ndarray) -> None:
        super().__init__(trainer)
        self.x = x

    def fit(self, lb_idx: np.ndarray, labels: np.ndarray, progress: Callable[[int, dict[str, float]], None]) -> Any:
        return self.trainer.fit(np.ascontiguousarray(self.x[lb_idx]), labels, self.x, progress=progress)

    def logits(self, rows: np.ndarray) -> Any:
        import torch

        trainer, x_rows = self.trainer, self.x[rows]
        model = trainer.model
        was = model.training
        model.eval()
        outs = []
        with torch.no_grad():
            for s in range(0, len(x_rows), RECORD_CHUNK):
                pixels = torch.from_numpy(np.ascontiguousarray(x_rows[s : s + RECORD_CHUNK]))
                chunk = trainer.normalised(pixels)
                outs.append(model(chunk.to(trainer.device)).float().cpu())
        model.train(was)
        return torch.cat(outs)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.trainer.predict(self.x[rows]), dtype=np.int64)


@dataclass
class PixelBackbone:
    """FixMatch stages on the prepared uint8 images ``x`` with a network trained from scratch."""

    # A network from scratch predicts noise early on: transitions are counted over the last half
    # of the instance stage, on up to 5,000 images (each record is a forward pass over them).
    recording = Recording(transition_window=0.5, max_tracked=5000)

    x: np.ndarray
    network: Any
    batch_size: int
    lr: float
    threshold: float
    flip: bool
    device: str
    checkpoint_every: int

    @property
    def in_channels(self) -> int:
        return 1 if self.x.ndim == 3 else int(self.x.shape[-1])

    def stage(self, num_classes: int, steps: int, seed: int, mu: int, out_dir: Path | None = None) -> PixelStage:
        """A FixMatch stage; with ``out_dir`` it checkpoints there and continues from a checkpoint
        it finds (the caller has checked that the directory belongs to this run, or cleared it)."""
        from semclust.ssl.trainer import Trainer

        trainer = Trainer(
            "fixmatch",
            network=self.network,
            num_classes=num_classes,
            in_channels=self.in_channels,
            total_steps=steps,
            batch_size=self.batch_size,
            mu=mu,
            lr=self.lr,
            # ASD's FixMatch stages are a few hundred steps: a constant 0.999 EMA would still be
            # mostly the initial weights, so they keep the warm-up variant.
            ema_warmup=True,
            device=self.device,
            seed=seed,
            flip=bool(self.flip),
            out_dir=out_dir,
            resume=out_dir is not None,
            checkpoint_every=int(self.checkpoint_every),
            threshold=self.threshold,
        )
        return PixelStage(trainer, self.x)


def classify_pixels(model: Any, x: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """argmax of ``model`` on prepared uint8 images, in batches of 512: the same computation as
    :meth:`semclust.ssl.trainer.Trainer.predict` (FixMatch's evaluation)."""
    import torch

    from semclust.ssl.augment import normalize, to_float

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    pixels = torch.from_numpy(np.ascontiguousarray(x))
    out = []
    with torch.no_grad():
        for start in range(0, len(pixels), EVAL_BATCH):
            chunk = normalize(to_float(pixels[start : start + EVAL_BATCH]), mean, std).to(device)
            out.append(model(chunk).argmax(dim=1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, dtype=np.int64)
