"""Ctrl-C prints one line naming where the run stopped and exits 130; ``--resume`` says where it
continues and ``run.json`` records it. The interrupt is simulated: ``KeyboardInterrupt`` raised
right after a checkpoint is written, or inside a training step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fakes import ColourEncoder, colour_images
from typer.testing import CliRunner

from semclust import workflow
from semclust.cli.main import app
from semclust.data.base import ArraySource
from semclust.ssl.trainer import Trainer
from semclust.store import checkpoint

runner = CliRunner()
SSL = ["ssl", "fixmatch", "--dataset", "digits", "--labels-per-class", "2", "--steps", "6", "--batch-size", "8",
       "--mu", "2", "--image-size", "8", "--eval-every", "1", "--checkpoint-every", "2"]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def interrupted_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("interrupted")]


def interrupt_after_saves(monkeypatch: pytest.MonkeyPatch, n: int) -> list[int]:
    """Ctrl-C right after the ``n``-th checkpoint is written; returns the epochs saved."""
    saves: list[int] = []
    original = checkpoint.EpochCheckpoint.save

    def save_then_interrupt(self: checkpoint.EpochCheckpoint, state: checkpoint.TrainingState) -> None:
        original(self, state)
        saves.append(state.epoch)
        if len(saves) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.EpochCheckpoint, "save", save_then_interrupt)
    return saves


def interrupt_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Ctrl-C during the evaluation after training step ``step`` (before that step's checkpoint)."""
    original = Trainer._evaluate_and_log

    def evaluate_or_interrupt(self: Trainer) -> None:
        if self.step == step:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(Trainer, "_evaluate_and_log", evaluate_or_interrupt)


def test_ssl_interrupt_names_the_step_and_resume_says_and_records_it(tmp_path: Path, monkeypatch) -> None:
    reference = tmp_path / "whole"
    assert runner.invoke(app, [*SSL, "--out", str(reference)], catch_exceptions=False).exit_code == 0

    out = tmp_path / "run"
    saves = interrupt_after_saves(monkeypatch, 2)
    stopped = runner.invoke(app, [*SSL, "--out", str(out)], catch_exceptions=False)
    monkeypatch.undo()
    assert saves == [2, 4] and stopped.exit_code == 130
    assert interrupted_lines(stopped.output) == ["interrupted after step 4 of 6; rerun with --resume"]
    assert "Traceback" not in stopped.output and not (out / "run.json").exists()

    resumed = runner.invoke(app, [*SSL, "--out", str(out), "--resume"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming fixmatch from step 4" in resumed.output
    run = json.loads((out / "run.json").read_text())
    assert run["resumed"] is True and run["resumed_from"] == {"step": 4}
    # continued, not restarted: the metrics of the uninterrupted run
    assert json.loads((out / "metrics.json").read_text())["acc"] == json.loads(
        (reference / "metrics.json").read_text()
    )["acc"]
    assert "resumed_from" not in json.loads((reference / "run.json").read_text())


def test_ssl_interrupt_past_a_checkpoint_names_both(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    interrupt_at_step(monkeypatch, 3)
    stopped = runner.invoke(app, [*SSL, "--out", str(out)], catch_exceptions=False)
    assert stopped.exit_code == 130
    assert interrupted_lines(stopped.output) == [
        "interrupted at step 3 of 6; rerun with --resume to continue from its last checkpoint, step 2"
    ]


def test_ssl_interrupt_before_any_checkpoint_leaves_no_directory(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    interrupt_at_step(monkeypatch, 1)
    stopped = runner.invoke(app, [*SSL, "--out", str(out)], catch_exceptions=False)
    assert stopped.exit_code == 130
    (line,) = interrupted_lines(stopped.output)
    assert line.startswith("interrupted during fixmatch") and "(1 of 6)" in line and "start over" in line
    assert not out.exists()


def test_resume_without_a_checkpoint_says_it_starts_from_the_beginning(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, [*SSL, "--out", str(out), "--resume"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"no checkpoint in {out}; fixmatch starts from step 0" in result.output
    assert "resumed_from" not in json.loads((out / "run.json").read_text())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, labels = colour_images(45, seed=2)
    out = tmp_path_factory.mktemp("interrupt") / "store"
    workflow.embed(ArraySource(images, labels, name="colours"), encoder=ColourEncoder(), out=out)
    return out


def cluster_args(store: Path, out: Path) -> list[str]:
    args = ["cluster", str(store), "--method", "scan", "--k", "3", "--seed", "5", "--out", str(out), "--no-names"]
    for p in ["epochs=6", "n_heads=2", "n_neighbours=5", "batch_size=16", "lr=0.01"]:
        args += ["--param", p]
    return args


def test_cluster_interrupt_names_the_epoch_and_resume_says_and_records_it(
    store: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "run"
    saves = interrupt_after_saves(monkeypatch, 2)
    stopped = runner.invoke(app, cluster_args(store, out), catch_exceptions=False)
    monkeypatch.undo()
    assert saves == [1, 2] and stopped.exit_code == 130
    assert interrupted_lines(stopped.output) == ["interrupted after epoch 2 of 6; rerun with --resume"]

    resumed = runner.invoke(app, [*cluster_args(store, out), "--resume"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming scan from epoch 2" in resumed.output
    assert json.loads((out / "run.json").read_text())["resumed_from"] == {"epoch": 2}
    finished = runner.invoke(app, [*cluster_args(store, out), "--resume"])
    assert finished.exit_code == 2 and "finished run" in finished.output and "no checkpoint" not in finished.output
