"""ASD's instance stage: a classifier with one class per sampled image, whose predictions on
the unlabelled images are recorded during training and counted into the similarity of the
instance classes (class transitions, with co-predictions when transitions are sparse)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from semclust.methods.asd.similarity import count_co_predictions, count_transitions, transition_similarity
from semclust.methods.asd.state import Records, RunCheckpoint

RECORD_CHUNK = 1024  # tracked images per forward pass when recording


@dataclass(frozen=True)
class Recording:
    """Which predictions the instance stage records, where ASD's ``transition_window`` and
    ``max_tracked`` are left at None: each backbone declares its own (``recording``)."""

    transition_window: float  # the last fraction of the instance steps
    max_tracked: int | None  # None: every image


def resolve_recording(est: Any, default: Recording) -> Recording:
    """``default`` with the estimator's ``transition_window`` / ``max_tracked`` where they are set."""
    window = default.transition_window if est.transition_window is None else float(est.transition_window)
    tracked = default.max_tracked if est.max_tracked is None else int(est.max_tracked)
    return Recording(window, tracked)


class Stage(Protocol):
    """One FixMatch stage on a backbone (:mod:`semclust.methods.asd.backbones`)."""

    checkpoint_every: int

    def fit(self, lb_idx: np.ndarray, labels: np.ndarray, progress: Callable[[int, dict[str, float]], None]) -> Any: ...

    def logits(self, rows: np.ndarray) -> Any:
        """Logits of the live (non-EMA) model on training rows ``rows``, a float CPU tensor."""
        ...

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """EMA model's argmax on training rows ``rows``."""
        ...


class TrainerStage:
    """What every stage takes from its trainer (the pixel ``Trainer`` or the feature ``HeadTrainer``):
    how often it checkpoints and its EMA model. The subclasses add fit, logits and predict."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    @property
    def checkpoint_every(self) -> int:
        return int(self.trainer.checkpoint_every)

    @property
    def ema_model(self) -> Any:
        return self.trainer.ema_model


class StageTicks:
    """Advances one stage's progress bar by a step per trainer step. A resumed trainer reports
    only the steps it trains, so the steps done before the kill are added first (at its first
    report, or at the end when it had finished), and the bar still ends full."""

    def __init__(self, tick: Callable[..., None] | None, total: int) -> None:
        self.tick, self.total, self.done = tick, int(total), 0

    def step(self, step: int, info: str) -> None:
        if self.tick is None:
            return
        if step - 1 > self.done:
            self.tick(step - 1 - self.done, "(resumed)")
        self.tick(1, info)
        self.done = step

    def fixmatch_step(self, step: int, logs: dict[str, float]) -> None:
        self.step(step, f"loss {logs['loss']:.3f} mask {logs['mask_ratio']:.2f}")

    def finish(self) -> None:
        if self.tick is not None and self.done < self.total:
            self.tick(self.total - self.done, "(resumed)")
            self.done = self.total


@dataclass(frozen=True)
class InstanceResult:
    transitions: np.ndarray  # T, int64 [n_l, n_l]
    similarity: np.ndarray  # S, float64 [n_l, n_l]
    co_predictions: np.ndarray | None  # C, when used
    n_records: int


def run_instance_stage(
    stage: Stage,
    n: int,
    lb_idx: np.ndarray,
    lb_inst: np.ndarray,
    n_inst: int,
    *,
    steps: int,
    seed: int,
    record_every: int,
    transition_window: float,
    max_tracked: int | None,
    co_prediction: bool | str,
    ticks: StageTicks,
    checkpoint: RunCheckpoint | None = None,
    round_index: int = 0,
) -> InstanceResult:
    """Train the instance classifier ``stage`` on ``n`` images; ``(T, S, C or None)`` from its
    recorded predictions.

    With ``checkpoint`` the stage's trainer checkpoints in ``round<r>-instance/`` and the records
    are saved with it, so a killed stage continues from the trainer's last checkpoint.
    """
    import torch

    rng = np.random.default_rng(seed + 7)
    if max_tracked is None or n <= max_tracked:
        tracked = np.arange(n)
    else:
        tracked = np.sort(rng.choice(n, max_tracked, replace=False))
    start = int(math.floor((1.0 - float(transition_window)) * steps))
    records = checkpoint.records(round_index) if checkpoint is not None else Records()
    first_step: list[int] = []

    @torch.no_grad()
    def record(step: int) -> None:
        logits = stage.logits(tracked)
        records.steps.append(step)
        records.predictions.append(logits.argmax(dim=1).numpy())
        records.top2.append(logits.topk(2, dim=1).indices.numpy())

    def on_step(step: int, logs: dict[str, float]) -> None:
        if not first_step:
            first_step.append(step)
            continue_records(records, step - 1, checkpoint)
        ticks.step(step, f"instance loss {logs['loss']:.3f}")
        if step >= start and (step - start) % int(record_every) == 0:
            record(step)
        if checkpoint is not None and (step % stage.checkpoint_every == 0 or step == steps):
            # progress() runs before the trainer saves its checkpoint at this step: the saved
            # records are never behind it (at most ahead, which a resume drops).
            checkpoint.save_records(round_index, records, step, len(tracked))

    stage.fit(lb_idx, lb_inst, on_step)
    if not first_step:  # the trainer had finished before the kill: every record is saved
        continue_records(records, steps, checkpoint)
    ticks.finish()
    t = count_transitions(records.predictions, n_inst)
    use_co = co_prediction is True or (co_prediction == "auto" and t.sum() < n_inst)
    c = count_co_predictions(records.top2, n_inst) if use_co else None
    return InstanceResult(t, transition_similarity(t, c), c, len(records.predictions))


def continue_records(records: Records, trainer_step: int, checkpoint: RunCheckpoint | None) -> None:
    """Keep the records up to the step the trainer continues from: it redoes the later steps
    and records them again (identically on CPU)."""
    if records.saved_at < trainer_step:
        from semclust.store.checkpoint import CheckpointError

        where = checkpoint.directory if checkpoint is not None else "memory"
        raise CheckpointError(
            f"checkpoint in {where}: the instance stage's predictions were saved up to step "
            f"{records.saved_at} but its trainer continues from step {trainer_step}; start over without resuming"
        )
    records.drop_after(trainer_step)
