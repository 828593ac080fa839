"""ASD's run state: one round's grouping, an instance stage's records, and the checkpoint
directory that lets a killed fit resume."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from semclust.store.checkpoint import EpochCheckpoint

ASD_STATE_FORMAT = "asd-state/1"
_STAGE_DIR = re.compile(r"round\d+-(instance|ssl)")


@dataclass
class Grouping:
    """What one round's instance stage and grouping produced: enough to skip both on resume."""

    chosen: np.ndarray  # sampled images, int64 [n_l]
    neighbours: np.ndarray  # extra views of each sampled image, int64 [n_l, n_neighbours]
    groups: np.ndarray  # cluster of each sampled image (aligned to the previous round), int64 [n_l]
    transitions: np.ndarray  # T, int64 [n_l, n_l]
    similarity: np.ndarray  # S, float64 [n_l, n_l]
    co_predictions_used: bool
    n_records: int


@dataclass
class Records:
    """Predictions recorded during an instance stage, each with the trainer step it was taken at."""

    steps: list[int] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)  # argmax per tracked image
    top2: list[np.ndarray] = field(default_factory=list)  # two most probable classes per tracked image
    saved_at: int = 0  # the trainer step at which they were last persisted

    def drop_after(self, step: int) -> None:
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.predictions[keep:], self.top2[keep:]


class RunCheckpoint:
    """ASD's checkpoint directory: one trainer directory per stage (``round<r>-instance/``,
    ``round<r>-ssl/``, each checkpointing every ``checkpoint_every`` steps and resumed exactly by
    :class:`semclust.ssl.trainer.Trainer`) beside an :class:`EpochCheckpoint` of ASD's own state
    (``checkpoint.json`` + ``tensors-<n>.safetensors``): each finished round's sample, grouping,
    transitions and similarity, the sampler's RNG state after that round, and the running
    instance stage's recorded predictions. That state carries the run's fingerprint (parameters
    and a digest of the images and features) and is written before any trainer directory, so
    a resume checks it first: a directory written for another run is refused, never mixed in.
    """

    def __init__(self, directory: str | os.PathLike[str], fingerprint: dict[str, Any], resume: bool) -> None:
        from semclust.store.checkpoint import EpochCheckpoint, TrainingState

        self.directory = Path(directory)
        self._store: EpochCheckpoint = EpochCheckpoint(self.directory, fingerprint)
        saved = self._store.load() if resume else None  # CheckpointError: damaged, or another run's
        if saved is not None and saved.values.get("format") != ASD_STATE_FORMAT:
            from semclust.store.checkpoint import CheckpointError

            raise CheckpointError(f"checkpoint in {self.directory} holds no ASD state; start over without resuming")
        if saved is None:
            # A fresh run (as LAIC, TAC and SCAN): whatever an earlier run left here is discarded.
            self.clear()
            saved = TrainingState(epoch=0, values={"format": ASD_STATE_FORMAT, "rounds": []})
            self._store.save(saved)
        self._state = saved

    def clear(self) -> None:
        """Remove what ASD writes (stage directories and its state), nothing else."""
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.is_dir() and _STAGE_DIR.fullmatch(path.name):
                    shutil.rmtree(path)
        self._store.clear()

    def stage_dir(self, round_index: int, stage: str) -> Path:
        return self.directory / f"round{round_index}-{stage}"

    # -------------------------------------------------------------- rounds
    @property
    def n_rounds(self) -> int:
        """How many rounds are grouped (their instance stages are done)."""
        return len(self._state.values["rounds"])

    def grouping(self, round_index: int) -> tuple[Grouping, dict[str, Any]] | None:
        """Round ``round_index``'s grouping and the sampler RNG state after it, if it is saved."""
        if round_index >= self.n_rounds:
            return None
        values = self._state.values["rounds"][round_index]
        arrays = {
            name: self._array(f"round{round_index}.{name}")
            for name in ("chosen", "neighbours", "groups", "transitions", "similarity")
        }
        grouping = Grouping(
            **arrays, co_predictions_used=bool(values["co_predictions_used"]), n_records=int(values["n_records"])
        )
        return grouping, values["sampler_rng"]

    def save_grouping(self, round_index: int, grouping: Grouping, sampler_rng: np.random.Generator) -> None:
        """Save round ``round_index``'s grouping (its recorded predictions are no longer needed),
        then remove the trainer directories nothing reads any more: this round's instance stage,
        and the previous round's SSL stage (only its predictions aligned this round's groups)."""
        import torch

        assert round_index == self.n_rounds, "rounds are saved in order"
        prefix = f"round{round_index}."
        for name in ("chosen", "neighbours", "groups", "transitions", "similarity"):
            self._state.tensors[prefix + name] = torch.from_numpy(np.ascontiguousarray(getattr(grouping, name)))
        self._state.values["rounds"].append(
            {
                "co_predictions_used": bool(grouping.co_predictions_used),
                "n_records": int(grouping.n_records),
                "sampler_rng": sampler_rng.bit_generator.state,
            }
        )
        self._drop_records()
        self._save()
        shutil.rmtree(self.stage_dir(round_index, "instance"), ignore_errors=True)
        if round_index > 0:
            shutil.rmtree(self.stage_dir(round_index - 1, "ssl"), ignore_errors=True)

    # -------------------------------------------------------------- records
    def records(self, round_index: int) -> Records:
        """The running instance stage's saved records (none yet: empty, saved at step 0)."""
        saved = self._state.values.get("records")
        if not saved or saved["round"] != round_index:
            return Records()
        steps = self._array("records.steps")
        predictions, top2 = self._array("records.predictions"), self._array("records.top2")
        return Records(
            steps=[int(s) for s in steps],
            predictions=list(predictions),
            top2=list(top2),
            saved_at=int(saved["saved_at"]),
        )

    def save_records(self, round_index: int, records: Records, step: int, n_tracked: int) -> None:
        import torch

        records.saved_at = int(step)
        stacked = {
            "records.steps": np.asarray(records.steps, dtype=np.int64),
            "records.predictions": np.stack(records.predictions).astype(np.int64)
            if records.predictions
            else np.zeros((0, n_tracked), dtype=np.int64),
            "records.top2": np.stack(records.top2).astype(np.int64)
            if records.top2
            else np.zeros((0, n_tracked, 2), dtype=np.int64),
        }
        for name, array in stacked.items():
            self._state.tensors[name] = torch.from_numpy(np.ascontiguousarray(array))
        self._state.values["records"] = {"round": int(round_index), "saved_at": int(step)}
        self._save()

    def _drop_records(self) -> None:
        self._state.values.pop("records", None)
        for name in ("records.steps", "records.predictions", "records.top2"):
            self._state.tensors.pop(name, None)

    # -------------------------------------------------------------- storage
    def _array(self, name: str) -> np.ndarray:
        from semclust.store.checkpoint import CheckpointError

        if name not in self._state.tensors:
            raise CheckpointError(f"checkpoint in {self.directory} holds no {name!r}")
        return self._state.tensors[name].numpy().copy()

    def _save(self) -> None:
        # A new number every time: the tensor file is named by it, and the JSON (written last)
        # must never name a file that a later save is overwriting.
        self._state.epoch += 1
        self._store.save(self._state)
