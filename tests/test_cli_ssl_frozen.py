"""``semclust ssl fixmatch --backbone frozen``: a head on an encoder's features with cached
views, trained with N true labels per class of a seeded unlabelled subset, scored on the test split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import ColourEncoder
from typer.testing import CliRunner

from semclust.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_frozen_fixmatch_on_digits_writes_its_run(tmp_path: Path, monkeypatch) -> None:
    from semclust.encoders import registry

    monkeypatch.setattr(registry, "get_encoder", lambda *args, **kwargs: ColourEncoder(batch_size=256))
    out = tmp_path / "run"
    args = ["ssl", "fixmatch", "--dataset", "digits", "--labels-per-class", "3", "--backbone", "frozen",
            "--steps", "30", "--max-unlabelled", "300", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone"] == "frozen" and metrics["n_labelled"] == 30 and metrics["n_unlabelled"] == 300
    assert metrics["steps"] == 30 and 0.0 <= metrics["acc"] <= 1.0 and metrics["n"] > 0
    run = json.loads((out / "run.json").read_text())
    labelled = np.asarray(run["config"]["labelled_indices"])
    assert len(set(labelled.tolist())) == 30
    again = runner.invoke(app, args, catch_exceptions=False)
    assert again.exit_code != 0 and "already holds a run" in again.output
    bad = runner.invoke(app, [*args[:7], "resnet", *args[8:], "--force"], catch_exceptions=False)
    assert bad.exit_code != 0 and "--backbone must be scratch or frozen" in bad.output
