"""Long-tailed SSL on the user's own CIFAR-10 / SVHN / STL-10 files (tiny fakes in the official formats)."""

from __future__ import annotations

import json

from test_cli_ssl_lt import one_thread  # noqa: F401 - autouse: one torch thread per test
from test_data_cifar import _fake_cifar10
from test_data_stl10 import _fake as _fake_stl10
from test_data_svhn import _fake as _fake_svhn
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.cli.ssl_cmd import register

register(app)
runner = CliRunner()
TINY = ["--steps", "2", "--batch-size", "4", "--mu", "1", "--eval-every", "1", "--network", "cnn"]


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_cifar10_lt_split_counts_follow_the_formula(tmp_path):
    _fake_cifar10(tmp_path / "data" / "cifar-10-batches-bin", per_batch=8, n_test=10)  # 4 train images per class
    out = tmp_path / "run"
    result = _run("ssl", "fixmatch-la", "--dataset", "cifar10", "--data-root", str(tmp_path / "data"),
                  "--n1", "2", "--m1", "2", "--gamma-l", "2", "--gamma-u", "-2", *TINY, "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    split = json.loads((out / "run.json").read_text())["split"]
    by_rank_l = [split["labelled_counts"][c] for c in split["class_order"]]
    by_rank_u = [split["unlabelled_counts"][c] for c in split["class_order"]]
    # floor(2 * 2^(-r/9)): 2 for rank 0, then 1; reversed (gamma_u < 0) for the unlabelled counts
    assert by_rank_l == [2] + [1] * 9
    assert by_rank_u == [1] * 9 + [2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "cifar10-lt" and metrics["n_labelled"] == 11 and metrics["n_unlabelled"] == 11


def test_svhn_lt_run(tmp_path):
    _fake_svhn(tmp_path / "svhn", "train", [1 + (k % 10) for k in range(40)])
    _fake_svhn(tmp_path / "svhn", "test", [1 + (k % 10) for k in range(10)])
    out = tmp_path / "run"
    result = _run("ssl", "cpe", "--dataset", "svhn", "--data-root", str(tmp_path), "--n1", "2", "--m1", "2",
                  "--gamma-l", "2", *TINY, "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "svhn-lt" and "expert1_acc" in metrics


def test_stl10_takes_unlabelled_images_from_its_unlabeled_split(tmp_path):
    train_labels = [1 + (k % 10) for k in range(30)]  # stored 1..10, 3 per class
    _fake_stl10(tmp_path / "stl10_binary", {"train": train_labels, "test": list(range(1, 11))}, n_unlabeled=12)
    out = tmp_path / "run"
    result = _run("ssl", "metaexpert", "--dataset", "stl10", "--data-root", str(tmp_path), "--n1", "3",
                  "--gamma-l", "3", "--unlabelled-split", "unlabeled", "--max-unlabelled", "8", "--image-size", "16",
                  *TINY, "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_unlabelled"] == 8 and metrics["unlabelled_split"] == "unlabeled"
    assert metrics["m1"] is None and metrics["gamma_u"] is None
    # m1 and an unlabelled split contradict each other; neither is an error naming the options
    both = _run("ssl", "cpe", "--dataset", "stl10", "--data-root", str(tmp_path), "--n1", "3", "--m1", "1",
                "--unlabelled-split", "unlabeled", *TINY, "--out", str(tmp_path / "x"))  # fmt: skip
    assert both.exit_code == 2 and "leave m1 and gamma_u unset" in both.output
    neither = _run("ssl", "cpe", "--dataset", "stl10", "--data-root", str(tmp_path), "--n1", "3", *TINY,
                   "--out", str(tmp_path / "y"))  # fmt: skip
    assert neither.exit_code == 2 and "--unlabelled-split" in neither.output
