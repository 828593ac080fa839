"""The SSL trainer under DDP: 2 gloo processes (spawned, or through torchrun).

Batch norm normalises with per-rank batch statistics, so a DDP run cannot equal one process
bit for bit. What is checked instead: the ranks' shards of every step are exactly the
one-process global batch; both ranks end with identical parameters, EMA and metrics; rank 0
alone writes log.json and the checkpoint; a DDP run killed and resumed ends where an
uninterrupted DDP run does; algorithms that call ``model.heads`` (CPE, Meta-Expert, with
parameters unused in some steps) train under DDP too. The single-process behaviour is covered
unchanged by tests/test_ssl_trainer.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fakes import TinyNet, band_images, tiny_net
from torch import nn

import semclust.ssl.trainer as trainer_module
import semclust.store.checkpoint as checkpoint_module
from semclust.distributed import DistContext, leave_process_group
from semclust.ssl.data import InfiniteSampler, labels_per_class_split
from semclust.ssl.ddp import rank_batch_indices
from semclust.ssl.nets import SmallCNN
from semclust.ssl.trainer import Trainer

STEPS = 4
SETTINGS: dict[str, Any] = dict(num_classes=3, in_channels=1, total_steps=STEPS, batch_size=4, mu=2, eval_every=2,
                                checkpoint_every=2, seed=5, threshold=0.5)  # fmt: skip


def small_cnn(num_classes: int, in_channels: int) -> nn.Module:
    return SmallCNN(num_classes, in_channels, width=4)


def _data(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    return band_images(n)


class RecordingSampler(InfiniteSampler):
    """The trainer's sampler, keeping every global batch it hands out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.draws: list[list[int]] = []

    def next(self) -> torch.Tensor:
        out = super().next()
        self.draws.append(out.tolist())
        return out


def _fit(trainer: Trainer, **kw: Any) -> dict[str, Any]:
    x, y = _data()
    lb, _ = labels_per_class_split(y, 2, seed=0)
    return trainer.fit(x[lb], y[lb], x, x_eval=x[:30], y_eval=y[:30], y_ulb=y, **kw)


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


class _Stop(Exception):
    pass


def _stop_at(step: int):
    def progress(k: int, logs: dict[str, float]) -> None:
        if k == step:
            raise _Stop  # after step - 1 was checkpointed, before step is

    return progress


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})  # fmt: skip
    torch.set_num_threads(1)
    root = Path(out)
    # Record what each rank writes and which part of each global batch it takes.
    writes: list[str] = []
    batches: list[tuple[list[int], list[int]]] = []  # per step: (unlabelled indices, labels) trained on
    write_json, atomic_write = trainer_module.write_json, checkpoint_module.atomic_write

    def recording_write_json(path: Any, data: Any) -> None:
        writes.append(Path(path).name)
        write_json(path, data)

    def recording_atomic_write(path: Any, write: Any, mode: str) -> None:
        writes.append(Path(path).name)
        atomic_write(path, write, mode)

    trainer_module.write_json = recording_write_json  # type: ignore[assignment]
    checkpoint_module.atomic_write = recording_atomic_write  # type: ignore[assignment]
    trainer_module.InfiniteSampler = RecordingSampler  # type: ignore[misc]
    result: dict[str, Any] = {}

    full = Trainer("fixmatch", network=tiny_net, out_dir=root / "full", **SETTINGS)
    assert full.ddp_model is not None and full.dist.world_size == world_size
    make_batch = full._batch

    def recording_batch() -> dict[str, torch.Tensor]:
        batch = make_batch()
        batches.append((batch["idx_ulb"].tolist(), batch["y_lb"].tolist()))
        return batch

    full._batch = recording_batch  # type: ignore[method-assign]
    result["metrics"] = _fit(full)
    result["params"], result["ema"] = _params(full.model), _params(full.ema.model)
    result["draws"] = (full.lb_sampler.draws, full.ulb_sampler.draws)  # type: ignore[attr-defined]
    result["batches"], result["writes"] = list(batches), list(writes)

    # Killed after the checkpoint of step 2, then resumed: every rank loads rank 0's checkpoint.
    # Evaluating at step 3 only, the checkpoint of step 2 carries logged sums of steps 1-2.
    interrupted = {**SETTINGS, "eval_every": 3}
    killed = Trainer("fixmatch", network=tiny_net, out_dir=root / "resumed", **interrupted)
    try:
        _fit(killed, progress=_stop_at(3))
    except _Stop:
        pass
    result["killed_state"] = json.loads((root / "resumed" / "checkpoint" / "checkpoint.json").read_text())["values"]
    resumed = Trainer("fixmatch", network=tiny_net, out_dir=root / "resumed", resume=True, **interrupted)
    result["resumed_metrics"] = _fit(resumed)
    result["resumed_params"] = _params(resumed.model)

    # Meta-Expert calls model.heads (routed through DDP); its assignment losses start at step 2,
    # so some parameters get no gradient in the first steps; its backbone classifier never does.
    expert = Trainer("metaexpert", network=small_cnn, **{**SETTINGS, "total_steps": 3, "fuse_warmup": 2})
    before = _params(expert.model)
    result["metaexpert_metrics"] = _fit(expert)
    after = _params(expert.model)
    result["metaexpert_params"] = after
    result["metaexpert_changed"] = sorted(k for k in after if not torch.equal(before[k], after[k]))

    result["all_writes"] = list(writes)  # the killed and resumed runs included
    torch.save(result, root / f"rank{rank}.pt")
    leave_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Both ranks' results of the spawned 2-process runs (one spawn for every check)."""
    import torch.multiprocessing as mp

    root = tmp_path_factory.mktemp("ddp")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mp.spawn(_worker, args=(2, _free_port(), str(root)), nprocs=2, join=True)
    finally:
        torch.set_num_threads(threads)
    return root, [torch.load(root / f"rank{r}.pt") for r in range(2)]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_rank_shards_partition_the_global_batch() -> None:
    idx_lb, idx_ulb = torch.randperm(8), torch.randperm(16)
    alone = DistContext(0, 1, 0, torch.device("cpu"), None, False)
    assert rank_batch_indices(idx_lb, idx_ulb, alone) == (idx_lb, idx_ulb)
    for world in (2, 3):  # 3 does not divide 8: shards differ by one, nothing is lost
        parts = [rank_batch_indices(idx_lb, idx_ulb, DistContext(r, world, r, torch.device("cpu"), "gloo", False))
                 for r in range(world)]  # fmt: skip
        assert torch.equal(torch.cat([p[0] for p in parts]), idx_lb)
        assert torch.equal(torch.cat([p[1] for p in parts]), idx_ulb)
        assert max(len(p[1]) for p in parts) - min(len(p[1]) for p in parts) <= 1


def test_ranks_take_disjoint_shards_of_the_one_process_batches(ranks, tmp_path, monkeypatch) -> None:
    _, results = ranks
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(trainer_module, "InfiniteSampler", RecordingSampler)
    alone = Trainer("fixmatch", network=tiny_net, out_dir=tmp_path, **SETTINGS)
    assert alone.ddp_model is None and "world_size" not in alone.config
    _fit(alone)
    lb_draws, ulb_draws = alone.lb_sampler.draws, alone.ulb_sampler.draws  # type: ignore[attr-defined]
    assert len(ulb_draws) == STEPS
    for r in range(2):  # both ranks drew the one-process global batches
        assert results[r]["draws"] == (lb_draws, ulb_draws)
    x, y = _data()
    y_lb = y[labels_per_class_split(y, 2, seed=0)[0]]
    for step in range(STEPS):  # what each rank trained on: its half of the step's global batch
        (ulb0, labels0), (ulb1, labels1) = results[0]["batches"][step], results[1]["batches"][step]
        assert ulb0 + ulb1 == ulb_draws[step] and len(ulb0) == len(ulb1) == 4
        assert labels0 + labels1 == y_lb[lb_draws[step]].tolist() and len(labels0) == len(labels1) == 2


def test_both_ranks_end_identical_and_only_rank_0_writes(ranks) -> None:
    root, results = ranks
    _assert_same(results[0]["params"], results[1]["params"])
    _assert_same(results[0]["ema"], results[1]["ema"])
    assert results[0]["metrics"] == results[1]["metrics"]
    assert results[0]["metrics"]["step"] == STEPS and "acc" in results[0]["metrics"]
    # rank 0 wrote log.json after every evaluation and a checkpoint at steps 2 and 4; rank 1 nothing
    assert results[0]["writes"].count("log.json") == 2
    assert sum(w.startswith("tensors-") for w in results[0]["writes"]) == 2
    assert results[1]["all_writes"] == [] and "log.json" in results[0]["all_writes"]
    log = json.loads((root / "full" / "log.json").read_text())
    assert [e["step"] for e in log] == [2, 4] and all(np.isfinite(e["loss"]) for e in log)
    state = json.loads((root / "full" / "checkpoint" / "checkpoint.json").read_text())["values"]
    assert state["step"] == STEPS and state["config"]["world_size"] == 2


def test_a_checkpoint_keeps_the_logged_sums_of_every_rank(ranks) -> None:
    root, results = ranks
    state = results[0]["killed_state"]
    assert state["step"] == 2 and set(state["log_counts"].values()) == {4}  # 2 ranks x 2 steps
    log = json.loads((root / "resumed" / "log.json").read_text())
    assert [e["step"] for e in log] == [3, 4] and all(np.isfinite(e["loss"]) for e in log)


def test_a_killed_ddp_run_resumes_to_the_uninterrupted_weights(ranks) -> None:
    _, results = ranks
    for r in range(2):
        _assert_same(results[r]["resumed_params"], results[0]["params"])
        # the same final evaluation (the logged means cover other windows: evaluations at 3, 4)
        for key in ("acc", "top1", "nmi", "ari", "n", "step"):
            assert results[r]["resumed_metrics"][key] == results[0]["metrics"][key]


def test_algorithms_calling_heads_train_under_ddp(ranks) -> None:
    _, results = ranks
    _assert_same(results[0]["metaexpert_params"], results[1]["metaexpert_params"])
    changed = results[0]["metaexpert_changed"]
    assert any(k.startswith("dea.") for k in changed)  # trained from step 2 on, through DDP
    assert not any(k.startswith("backbone.classifier.") for k in changed)  # never in a loss


def test_bfloat16_autocast_on_cpu(tmp_path) -> None:
    seen: list[tuple[bool, torch.dtype]] = []  # (training, conv output dtype); the EMA copy shares the hook

    def build(num_classes: int, in_channels: int) -> nn.Module:
        net = TinyNet(num_classes, in_channels)
        net.conv.register_forward_hook(lambda module, args, output: seen.append((module.training, output.dtype)))
        return net

    plain = Trainer("fixmatch", network=build, out_dir=tmp_path / "fp32", **SETTINGS)
    _fit(plain)
    assert {dtype for _, dtype in seen} == {torch.float32}
    seen.clear()
    mixed = Trainer("fixmatch", network=build, out_dir=tmp_path / "bf16", amp=True, **SETTINGS)
    metrics = _fit(mixed)
    assert {dtype for training, dtype in seen if training} == {torch.bfloat16}
    assert {dtype for training, dtype in seen if not training} == {torch.float32}  # evaluation
    assert mixed.grad_scaler is None and mixed.config["amp"] is True and "amp" not in plain.config
    assert np.isfinite(metrics["acc"])
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())  # master weights stay float32
    assert any(not torch.equal(a, b) for a, b in zip(plain.model.parameters(), mixed.model.parameters()))


def test_torchrun_fixmatch_writes_one_run(tmp_path) -> None:
    """``torchrun --nproc-per-node 2 -m semclust ssl fixmatch`` on CPU (gloo), 6 steps on digits."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
               "-m", "semclust", "ssl", "fixmatch", "--dataset", "digits", "--labels-per-class", "4",
               "--steps", "6", "--batch-size", "8", "--mu", "2", "--eval-every", "3", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 6 and 0.0 <= metrics["acc"] <= 1.0
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["world_size"] == 2
    assert [e["step"] for e in json.loads((out / "log.json").read_text())] == [3, 6]
    assert output.count("wrote ") == 1  # rank 0 reports; rank 1 neither writes nor prints
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(
    "command",
    [
        ["fixmatch", "--labels-per-class", "2"],  # the balanced command writes its run files itself
        ["fixmatch-la", "--n1", "20", "--m1", "30", "--gamma-l", "10"],  # long-tailed: run_longtail writes them
    ],
)
def test_only_the_main_process_writes_the_run_files(command: list[str], tmp_path, monkeypatch) -> None:
    """A rank other than 0 (``is_main_process()`` false) leaves metrics.json and run.json to rank 0."""
    from typer.testing import CliRunner

    import semclust.distributed
    from semclust.cli.main import app

    monkeypatch.setattr(semclust.distributed, "is_main_process", lambda: False)
    tiny = ["--dataset", "digits", "--steps", "2", "--batch-size", "8", "--mu", "2", "--image-size", "8"]
    result = CliRunner().invoke(app, ["ssl", *command, *tiny, "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # this test's trainer runs alone (it is its own rank 0), so it still writes its log
    assert (tmp_path / "log.json").exists()
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "run.json").exists()
    assert "wrote" not in result.output
