"""ASD killed in its instance stage, between a records save and the trainer's checkpoint, in its
SSL stage or in a later round resumes from ``checkpoint_dir`` and ends exactly like an
uninterrupted fit with the same seed; a checkpoint of another run is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fakes import band_images

from semclust.methods.asd import ASD
from semclust.ssl import trainer as trainer_module
from semclust.store.checkpoint import STATE_FILE, CheckpointError

# 8 instance steps recorded from step 2 on, 6 SSL steps, a trainer checkpoint every 2 steps.
PARAMS: dict[str, Any] = dict(
    n_labelled=9,
    instance_steps=8,
    ssl_steps=6,
    record_every=1,
    transition_window=0.75,
    batch_size=4,
    mu=2,
    flip=False,
    checkpoint_every=2,
    random_state=3,
)


# Module scope: the reference fits below are module fixtures and must run on one thread too.
@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _bands(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return band_images(n, seed, first_row=1)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _bands()


@pytest.fixture(scope="module")
def reference(data: tuple[np.ndarray, np.ndarray]) -> ASD:
    x, y = data
    return ASD(3, **PARAMS).fit(x, y=y)


@pytest.fixture(scope="module")
def reference_two_rounds(data: tuple[np.ndarray, np.ndarray]) -> ASD:
    x, y = data
    return ASD(3, rounds=2, **PARAMS).fit(x, y=y)


class Killed(Exception):
    """Stands for the process dying at that point."""


class Progress:
    """A progress factory that remembers the stages it was asked for and raises :class:`Killed`
    when the stage whose description contains ``kill_stage`` reaches step ``kill_at``."""

    def __init__(self, kill_stage: str | None = None, kill_at: int = 0) -> None:
        self.kill_stage, self.kill_at = kill_stage, kill_at
        self.stages: list[str] = []

    def __call__(self, description: str, total: int) -> Callable[..., None]:
        self.stages.append(description)
        done = [0]

        def tick(n: int, info: str | None = None) -> None:
            done[0] += n
            if self.kill_stage is not None and self.kill_stage in description and done[0] == self.kill_at:
                raise Killed(f"killed at step {done[0]} of {description}")

        return tick


def trainer_saves(monkeypatch: pytest.MonkeyPatch, kill: tuple[str, int] | None = None) -> list[tuple[str, int]]:
    """``(stage directory, step)`` of every trainer checkpoint written from now on; with ``kill``
    (stage directory, step) the process dies just before that checkpoint is written."""
    saves: list[tuple[str, int]] = []
    original = trainer_module.Trainer.save_checkpoint

    def save(self: Any) -> Path:
        stage = Path(self.out_dir).name
        if kill is not None and (stage, self.step) == kill:
            raise Killed(f"killed before the {stage} checkpoint at step {self.step}")
        saves.append((stage, self.step))
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "save_checkpoint", save)
    return saves


def trainer_step(stage_dir: Path) -> int:
    return int(json.loads((stage_dir / "checkpoint" / "checkpoint.json").read_text())["values"]["step"])


def assert_same_fit(a: ASD, b: ASD) -> None:
    for name in ("labels_", "instance_groups_", "sampled_indices_", "labelled_indices_", "labelled_labels_",
                 "transitions_", "similarity_"):  # fmt: skip
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.n_records_, a.co_predictions_used_) == (b.n_records_, b.co_predictions_used_)
    assert (a.mean_, a.std_) == (b.mean_, b.std_)
    state_a, state_b = a.model_.state_dict(), b.model_.state_dict()
    assert list(state_a) == list(state_b)
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=0, atol=0, msg=key)


def test_checkpointing_does_not_change_the_fit(data, reference: ASD, tmp_path: Path) -> None:
    x, y = data
    assert len(np.unique(reference.labels_)) > 1 and reference.n_records_ == 7  # steps 2..8
    checkpointed = ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=tmp_path / "ckpt")
    assert_same_fit(checkpointed, reference)
    # the instance stage's directory goes once its round is grouped; the last SSL stage stays
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.is_dir()) == ["round0-ssl"]


def test_killed_in_the_instance_stage_resumes_after_its_last_checkpoint(
    data, reference: ASD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = data
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, progress=Progress("instance stage", 5))
    assert trainer_step(ckpt / "round0-instance") == 4
    state = json.loads((ckpt / STATE_FILE).read_text())
    assert state["values"]["records"] == {"round": 0, "saved_at": 4} and state["values"]["rounds"] == []

    saves = trainer_saves(monkeypatch)
    progress = Progress()
    resumed = ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, resume=True, progress=progress)
    # steps 5.. of the instance stage were trained again, not 1..; then the whole SSL stage
    assert saves == [("round0-instance", 6), ("round0-instance", 8)] + [("round0-ssl", s) for s in (2, 4, 6)]
    assert_same_fit(resumed, reference)


def test_records_saved_ahead_of_the_trainer_checkpoint_are_dropped_on_resume(
    data, reference: ASD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trainer reports step 6 (the records are saved) and dies before its step-6 checkpoint.
    x, y = data
    ckpt = tmp_path / "ckpt"
    trainer_saves(monkeypatch, kill=("round0-instance", 6))
    with pytest.raises(Killed):
        ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt)
    monkeypatch.undo()
    assert trainer_step(ckpt / "round0-instance") == 4
    assert json.loads((ckpt / STATE_FILE).read_text())["values"]["records"]["saved_at"] == 6

    resumed = ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, resume=True)
    assert resumed.n_records_ == 7  # the records of steps 5 and 6 were taken once, not twice
    assert_same_fit(resumed, reference)


def test_killed_in_the_ssl_stage_skips_the_instance_stage_on_resume(
    data, reference: ASD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = data
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, progress=Progress("fixmatch", 3))
    assert trainer_step(ckpt / "round0-ssl") == 2
    assert not (ckpt / "round0-instance").exists()  # the grouping is saved: nothing reads it again

    saves = trainer_saves(monkeypatch)
    progress = Progress()
    resumed = ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, resume=True, progress=progress)
    assert progress.stages == ["asd round 1: fixmatch (3 clusters)"]  # no instance stage again
    assert saves == [("round0-ssl", 4), ("round0-ssl", 6)]
    assert_same_fit(resumed, reference)


def test_a_finished_fit_resumes_without_training(
    data, reference: ASD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. killed after fit, while the run's files were being written
    x, y = data
    ckpt = tmp_path / "ckpt"
    ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt)
    saves = trainer_saves(monkeypatch)
    resumed = ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, resume=True)
    assert saves == []
    assert_same_fit(resumed, reference)


@pytest.mark.parametrize(
    ("kill_stage", "expected_saves"),
    [
        # round 1's SSL model is reloaded (no step trained) to align round 2's groups
        (
            "round 2: instance",
            [("round1-instance", 6), ("round1-instance", 8), ("round1-ssl", 2), ("round1-ssl", 4), ("round1-ssl", 6)],
        ),
        # round 2 is grouped: round 1's SSL stage is not needed any more
        ("round 2: fixmatch", [("round1-ssl", 4), ("round1-ssl", 6)]),
    ],
)
def test_two_rounds_resume_in_the_second_round(
    kill_stage: str,
    expected_saves: list[tuple[str, int]],
    data,
    reference_two_rounds: ASD,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = data
    ckpt = tmp_path / "ckpt"
    kill_at = 5 if "instance" in kill_stage else 3
    with pytest.raises(Killed):
        ASD(3, rounds=2, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, progress=Progress(kill_stage, kill_at))
    rounds_saved = json.loads((ckpt / STATE_FILE).read_text())["values"]["rounds"]
    assert len(rounds_saved) == (1 if "instance" in kill_stage else 2)

    saves = trainer_saves(monkeypatch)
    progress = Progress()
    resumed = ASD(3, rounds=2, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, resume=True, progress=progress)
    assert saves == expected_saves
    assert not any("round 1: instance" in stage for stage in progress.stages)
    assert len(np.unique(resumed.sampled_indices_)) == 18  # round 2 sampled new images, as before the kill
    assert_same_fit(resumed, reference_two_rounds)


def test_checkpoint_of_another_run_is_refused(data, reference: ASD, tmp_path: Path) -> None:
    x, y = data
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt, progress=Progress("instance stage", 5))
    with pytest.raises(CheckpointError, match="lr: 0.03 then, 0.05 now"):
        ASD(3, **{**PARAMS, "lr": 0.05}).fit(x, checkpoint_dir=ckpt, resume=True)
    with pytest.raises(CheckpointError, match="other training inputs"):
        ASD(3, **PARAMS).fit(x[::-1].copy(), checkpoint_dir=ckpt, resume=True)
    with pytest.raises(CheckpointError, match="other training inputs"):  # features are inputs too
        ASD(3, **PARAMS).fit(x, features=x.reshape(len(x), -1).astype(np.float32), checkpoint_dir=ckpt, resume=True)
    assert trainer_step(ckpt / "round0-instance") == 4  # a refusal leaves the checkpoint alone
    # how often checkpoints are written does not change the result: a resume may change it
    resumed = ASD(3, **{**PARAMS, "checkpoint_every": 3}).fit(x, y=y, checkpoint_dir=ckpt, resume=True)
    assert_same_fit(resumed, reference)


def test_without_resume_an_old_checkpoint_is_discarded(data, reference: ASD, tmp_path: Path) -> None:
    x, y = data
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Killed):
        ASD(3, **{**PARAMS, "lr": 0.05}).fit(x, checkpoint_dir=ckpt, progress=Progress("fixmatch", 3))
    (ckpt / "unrelated.txt").write_text("not ASD's")
    fresh = ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=ckpt)  # another run's checkpoint: no error
    assert_same_fit(fresh, reference)
    assert (ckpt / "unrelated.txt").exists()  # only what ASD wrote is removed
    # resume with no checkpoint yet starts from scratch
    assert_same_fit(ASD(3, **PARAMS).fit(x, y=y, checkpoint_dir=tmp_path / "none-yet", resume=True), reference)


def test_checkpoint_every_must_be_positive(data) -> None:
    x, _ = data
    with pytest.raises(ValueError, match="checkpoint_every must be at least 1"):
        ASD(3, **{**PARAMS, "checkpoint_every": 0}).fit(x)
