"""``semclust ssl fixmatch``: a tiny digits run writes metrics.json; bad arguments exit 2 with one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.cli.ssl_cmd import register

register(app)  # no-op once semclust.cli.main registers it itself

runner = CliRunner()
TINY = ["ssl", "fixmatch", "--dataset", "digits", "--labels-per-class", "2", "--steps", "2", "--batch-size", "8",
        "--mu", "2", "--image-size", "8"]  # fmt: skip


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_fixmatch_on_digits_writes_metrics_log_and_run(tmp_path):
    out = tmp_path / "run"
    result = invoke(*TINY, "--out", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels_per_class"] == 2 and metrics["steps"] == 2 and metrics["n_labelled"] == 20
    assert metrics["n"] == 539 and 0.0 <= metrics["acc"] <= 1.0 and {"nmi", "ari", "top1"} <= set(metrics)
    log = json.loads((out / "log.json").read_text())
    assert log[-1]["step"] == 2
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["flip"] is False and run["config"]["algorithm"] == "fixmatch" and run["wall_time_s"] > 0
    assert (out / "checkpoint" / "checkpoint.json").exists()
    assert list((out / "checkpoint").glob("tensors-*.safetensors"))

    again = invoke(*TINY, "--out", str(out))  # an existing run is neither overwritten nor resumed silently
    # one run-directory rule for cluster and ssl runs (outputs/run_dir.prepare_run_dir): both ways out named
    assert again.exit_code == 2 and "--force to overwrite or --resume" in again.output
    resumed = invoke(*TINY, "--out", str(out), "--resume")  # already finished: re-scores the checkpoint
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "metrics.json").read_text())["acc"] == metrics["acc"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--labels-per-class", "0"], "--labels-per-class must be at least 1"),
        (["--labels-per-class", "1000"], "fewer than 1000 labels per class"),
        (["--dataset", "nope"], "unknown dataset"),
        (["--network", "resnet-9000"], "resnet-9000"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--resume", "--force"], "contradict"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    result = invoke(*TINY, *args, "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in result.output, result.output


def test_amp_flag_trains_in_bfloat16_on_cpu_and_is_recorded(tmp_path, monkeypatch):
    import torch

    from semclust.ssl.trainer import Trainer

    dtypes: list[torch.dtype] = []
    original = Trainer.fit

    def spy(self, *args, **kwargs):
        # The first layer's output dtype inside the training step shows whether autocast is on.
        first_conv = next(m for m in self.model.modules() if isinstance(m, torch.nn.Conv2d))
        handle = first_conv.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
        try:
            return original(self, *args, **kwargs)
        finally:
            handle.remove()

    monkeypatch.setattr(Trainer, "fit", spy)
    balanced, long_tailed = tmp_path / "balanced", tmp_path / "lt"
    result = invoke(*TINY, "--amp", "--out", str(balanced))
    assert result.exit_code == 0, result.output
    assert json.loads((balanced / "run.json").read_text())["config"]["amp"] is True
    assert torch.bfloat16 in dtypes
    result = invoke("ssl", "fixmatch", "--dataset", "digits", "--n1", "20", "--m1", "40", "--steps", "2",
                    "--batch-size", "8", "--mu", "2", "--amp", "--out", str(long_tailed))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((long_tailed / "run.json").read_text())["config"]["amp"] is True
    plain = invoke(*TINY, "--out", str(tmp_path / "plain"))
    assert plain.exit_code == 0 and "amp" not in json.loads((tmp_path / "plain" / "run.json").read_text())["config"]
