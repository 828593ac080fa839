"""The SSL trainer: splits, sampler, schedule, EMA, checkpoints and exact resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from fakes import TinyNet, band_images, tiny_net
from safetensors.torch import load_file

from semclust.ssl.data import InfiniteSampler, holdout_split, labels_per_class_split, resize_uint8
from semclust.ssl.optim import EMA, cosine_lr, param_groups
from semclust.ssl.trainer import Trainer


def _data(n: int = 60, seed: int = 0):
    return band_images(n, seed)


def _trainer(tmp_path, steps: int, **kw) -> Trainer:
    args = dict(network=tiny_net, num_classes=3, in_channels=1, total_steps=steps, batch_size=4, mu=2,
                eval_every=2, checkpoint_every=3, out_dir=tmp_path, seed=5)  # fmt: skip
    args.update(kw)
    return Trainer("fixmatch", **args)


def _fit(trainer: Trainer):
    x, y = _data()
    lb, _ = labels_per_class_split(y, 2, seed=0)
    return trainer.fit(x[lb], y[lb], x, x_eval=x[:30], y_eval=y[:30], y_ulb=y)


def test_labels_per_class_split_is_exact_seeded_and_disjoint():
    y = np.array([0] * 10 + [1] * 7 + [2] * 5 + [-1] * 3)
    lb, ulb = labels_per_class_split(y, 4, seed=3)
    assert np.bincount(y[lb]).tolist() == [4, 4, 4]
    assert set(lb).isdisjoint(ulb) and len(lb) + len(ulb) == len(y)
    assert np.array_equal(lb, labels_per_class_split(y, 4, seed=3)[0])
    assert not np.array_equal(lb, labels_per_class_split(y, 4, seed=4)[0])
    with pytest.raises(ValueError, match="class 2 has only 5"):
        labels_per_class_split(y, 6, seed=0)
    train, test = holdout_split(100, 0.3, seed=1)
    assert len(test) == 30 and len(np.union1d(train, test)) == 100


def test_infinite_sampler_covers_each_pass_and_restores_exactly():
    s = InfiniteSampler(10, 4, seed=1)
    first = torch.cat([s.next() for _ in range(5)])  # 20 = two full passes
    assert sorted(first[:10].tolist()) == list(range(10)) and sorted(first[10:].tolist()) == list(range(10))
    state = s.state_dict()
    ahead = [s.next() for _ in range(4)]
    t = InfiniteSampler(10, 4, seed=99)
    t.load_state_dict(state)
    assert all(torch.equal(a, t.next()) for a in ahead)
    assert resize_uint8(np.zeros((2, 8, 8), np.uint8), 16).shape == (2, 16, 16)


def test_cosine_schedule_values():
    assert cosine_lr(0.03, 0, 100) == 0.03
    assert cosine_lr(0.03, 50, 100) == pytest.approx(0.03 * math.cos(7 * math.pi / 32))
    assert cosine_lr(0.03, 100, 100) == pytest.approx(0.03 * math.cos(7 * math.pi / 16))


def test_weight_decay_only_on_conv_and_linear_weights():
    groups = param_groups(TinyNet(3, 1), 5e-4)
    assert [p.shape for p in groups[0]["params"]] == [torch.Size([4, 1, 3, 3]), torch.Size([3, 4])]
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0
    assert len(groups[1]["params"]) == 4  # conv bias, bn weight, bn bias, linear bias


def test_ema_update_formula_and_buffers():
    model = TinyNet(3, 1)
    ema = EMA(model, 0.9, warmup=False)
    before = {k: v.clone() for k, v in ema.model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model.bn.running_mean.fill_(2.0)
    ema.update(model, k=0)
    for name, p in model.named_parameters():
        assert torch.allclose(dict(ema.model.named_parameters())[name], 0.9 * before[name] + 0.1 * p)
    assert torch.equal(ema.model.bn.running_mean, model.bn.running_mean)
    assert EMA(model, 0.999).decay_at(0) == 0.999  # the reference's constant decay by default
    warm = EMA(model, 0.999, warmup=True)
    assert warm.decay_at(0) == pytest.approx(0.1) and warm.decay_at(10**6) == 0.999


def test_checkpoint_round_trip_and_log(tmp_path):
    trainer = _trainer(tmp_path, 4)
    metrics = _fit(trainer)
    record = json.loads((tmp_path / "checkpoint" / "checkpoint.json").read_text())
    tensors = load_file(str(tmp_path / "checkpoint" / record["tensors"]))
    state = record["values"]
    assert record["epoch"] == state["step"] == 4 and state["config"]["algorithm"] == "fixmatch"
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(tensors[f"model.{k}"], v)
    for k, v in trainer.ema_model.state_dict().items():
        assert torch.equal(tensors[f"ema.{k}"], v)
    assert any(k.startswith("optim.") and k.endswith("momentum_buffer") for k in tensors)
    assert "rng.torch_global" in tensors and "rng.augment" in tensors and "numpy_rng" in state
    log = json.loads((tmp_path / "log.json").read_text())
    assert [e["step"] for e in log] == [2, 4]
    assert {"acc", "nmi", "ari", "top1", "sup_loss", "unsup_loss", "mask_ratio", "pseudo_acc"} <= set(log[-1])
    assert metrics["step"] == 4 and 0.0 <= metrics["acc"] <= 1.0
    assert not list(tmp_path.glob(".checkpoint*"))


def test_resume_reproduces_uninterrupted_run_exactly(tmp_path):
    straight = _trainer(tmp_path / "a", 8)
    _fit(straight)

    class Killed(Exception):
        pass

    def kill_after_5(step, logs):  # dies after step 5; the last checkpoint is at step 3
        if step == 5:
            raise Killed

    first = _trainer(tmp_path / "b", 8)
    x, y = _data()
    lb, _ = labels_per_class_split(y, 2, seed=0)
    with pytest.raises(Killed):
        first.fit(x[lb], y[lb], x, x_eval=x[:30], y_eval=y[:30], y_ulb=y, progress=kill_after_5)
    torch.manual_seed(12345)  # a resumed process starts with unrelated global RNG state
    resumed = _trainer(tmp_path / "b", 8, resume=True)
    _fit(resumed)
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    for (k, a), (_, b) in zip(straight.ema_model.state_dict().items(), resumed.ema_model.state_dict().items()):
        assert torch.equal(a, b), k
    log_a = json.loads((tmp_path / "a" / "log.json").read_text())
    log_b = json.loads((tmp_path / "b" / "log.json").read_text())
    assert log_a == log_b


def test_resume_refuses_other_settings_and_bad_inputs(tmp_path):
    _fit(_trainer(tmp_path, 3))
    with pytest.raises(ValueError, match="written for another run"):
        _fit(_trainer(tmp_path, 3, resume=True, batch_size=5))
    with pytest.raises(ValueError, match="unknown SSL algorithm"):
        Trainer("nope", network=tiny_net, num_classes=3, in_channels=1, total_steps=2)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        Trainer("fixmatch", network=tiny_net, num_classes=3, in_channels=1, total_steps=2, thresh=0.5)
    x, y = _data()
    with pytest.raises(ValueError, match="channel"):
        _trainer(tmp_path / "c", 2, in_channels=3).fit(x[:6], y[:6], x)
