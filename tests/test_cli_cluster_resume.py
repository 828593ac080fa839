"""`semclust cluster ... --resume` continues a training run killed after an epoch and writes the
assignments an uninterrupted run writes."""

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
from semclust.store import checkpoint

runner = CliRunner()
EPOCHS, KILL_AFTER = 6, 2


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, labels = colour_images(45, seed=2)
    out = tmp_path_factory.mktemp("resume") / "store"
    workflow.embed(ArraySource(images, labels, name="colours"), encoder=ColourEncoder(), out=out)
    return out


def cluster_args(store: Path, out: Path) -> list[str]:
    params = [f"epochs={EPOCHS}", "n_heads=2", "n_neighbours=5", "batch_size=16", "lr=0.01"]
    args = ["cluster", str(store), "--method", "scan", "--k", "3", "--seed", "5", "--out", str(out), "--no-names"]
    for p in params:
        args += ["--param", p]
    return args


def test_killed_cluster_run_resumes_with_identical_assignments(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "uninterrupted"
    result = runner.invoke(app, cluster_args(store, reference), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not (reference / "checkpoint").exists()  # removed once the run is written

    # Ctrl-C right after the KILL_AFTER-th epoch checkpoint is written
    saves: list[int] = []
    original = checkpoint.EpochCheckpoint.save

    def save_then_interrupt(self: checkpoint.EpochCheckpoint, state: checkpoint.TrainingState) -> None:
        original(self, state)
        saves.append(state.epoch)
        if len(saves) == KILL_AFTER:
            raise KeyboardInterrupt

    killed = tmp_path / "killed"
    monkeypatch.setattr(checkpoint.EpochCheckpoint, "save", save_then_interrupt)
    interrupted = runner.invoke(app, cluster_args(store, killed))
    monkeypatch.undo()
    assert interrupted.exit_code != 0 and saves == [1, 2]
    assert json.loads((killed / "checkpoint" / "checkpoint.json").read_text())["epoch"] == KILL_AFTER
    assert not (killed / "run.json").exists()

    # the directory is not silently overwritten: it needs --resume (or --force)
    refused = runner.invoke(app, cluster_args(store, killed))
    assert refused.exit_code == 2
    assert "--resume" in refused.output

    trained: list[int] = []

    def save_and_count(self: checkpoint.EpochCheckpoint, state: checkpoint.TrainingState) -> None:
        original(self, state)
        trained.append(state.epoch)

    monkeypatch.setattr(checkpoint.EpochCheckpoint, "save", save_and_count)
    resumed = runner.invoke(app, [*cluster_args(store, killed), "--resume"], catch_exceptions=False)
    monkeypatch.undo()
    assert resumed.exit_code == 0, resumed.output
    assert trained == list(range(KILL_AFTER + 1, EPOCHS + 1))  # continued, not restarted
    assert (killed / "assignments.csv").read_bytes() == (reference / "assignments.csv").read_bytes()
    assert (killed / "clusters.json").read_bytes() == (reference / "clusters.json").read_bytes()
    assert not (killed / "checkpoint").exists()

    # a finished run has nothing to resume; --resume with --force is a contradiction
    again = runner.invoke(app, [*cluster_args(store, killed), "--resume"])
    assert again.exit_code == 2 and "finished run" in again.output
    both = runner.invoke(app, [*cluster_args(store, killed), "--resume", "--force"])
    assert both.exit_code == 2 and "contradict" in both.output
