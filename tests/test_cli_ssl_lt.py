"""``semclust ssl metaexpert|cpe|fixmatch-la`` and ``ssl fixmatch --n1``: tiny long-tailed digits runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.cli.ssl_cmd import register

register(app)

runner = CliRunner()
LT = ["--dataset", "digits", "--n1", "20", "--m1", "30", "--gamma-l", "10", "--steps", "2", "--batch-size", "8",
      "--mu", "2", "--image-size", "8", "--eval-every", "1"]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_metaexpert_on_lt_digits_writes_group_and_expert_metrics(tmp_path):
    from semclust.ssl.experiment import load_train_test as _load
    from semclust.ssl.longtail import split_from_dict

    out = tmp_path / "me"
    result = invoke("ssl", "metaexpert", *LT, "--gamma-u", "-10", "--out", str(out))
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["method"] == "metaexpert" and m["dataset"] == "digits-lt" and m["gamma_u"] == -10
    for key in ("acc", "best_acc", "head_acc", "medium_acc", "tail_acc", "expert1_acc", "expert2_acc", "expert3_acc",
                "assign_acc"):  # fmt: skip
        assert 0.0 <= m[key] <= 1.0, key
    assert m["best_acc"] >= m["acc"] and "final EMA" in m["acc_is"] and "during training" in m["best_acc_is"]
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["algo_hyperparams"]["freeze_assignment"] is False
    split = run["split"]
    head = split["class_order"][0]
    assert split["labelled_counts"][head] == 20 and split["unlabelled_counts"][head] == 3
    _, y_train, *_ = _load("digits", 0, None)
    again = split_from_dict(split, y_train)  # reproducible from run.json
    assert again.labelled.tolist() == split["labelled_indices"] and m["n_labelled"] == len(again.labelled)
    assert sorted(run["config"]["groups"]["head"]) == sorted(np.asarray(split["class_order"][:2]).tolist())


def test_fixmatch_with_n1_and_cpe_run_on_the_same_split(tmp_path):
    r1 = invoke("ssl", "fixmatch", *LT, "--out", str(tmp_path / "fm"))
    assert r1.exit_code == 0, r1.output
    r2 = invoke("ssl", "cpe", *LT, "--out", str(tmp_path / "cpe"))
    assert r2.exit_code == 0, r2.output
    fm = json.loads((tmp_path / "fm" / "metrics.json").read_text())
    cpe = json.loads((tmp_path / "cpe" / "metrics.json").read_text())
    assert fm["method"] == "fixmatch" and {"head_acc", "medium_acc", "tail_acc", "best_acc"} <= set(fm)
    assert "expert2_acc" in cpe
    s1 = json.loads((tmp_path / "fm" / "run.json").read_text())["split"]
    s2 = json.loads((tmp_path / "cpe" / "run.json").read_text())["split"]
    assert s1["labelled_indices"] == s2["labelled_indices"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ssl", "fixmatch-la", *LT, "--n1", "0"], "--n1 must be at least 1"),
        (["ssl", "cpe", *LT, "--taus", "0,2"], "--taus must be three numbers"),
        (["ssl", "metaexpert", *LT, "--taus", "0,x,4"], "--taus must be three numbers like 0,2,4, got '0,x,4'"),
        (["ssl", "metaexpert", *LT, "--n1", "500"], "fewer than"),
        (["ssl", "fixmatch", *LT, "--labels-per-class", "2"], "not both"),
    ],
)
def test_bad_lt_arguments_exit_2(tmp_path, args, message):
    result = invoke(*args, "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and message in result.output, result.output
