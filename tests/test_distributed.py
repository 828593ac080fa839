"""The DDP path: 2 CPU processes (gloo) end with the single-process weights."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from semclust.distributed import (
    DistContext,
    all_reduce_mean,
    cleanup,
    init_distributed,
    shard_indices,
    unwrap,
    wrap_ddp,
)

STEPS, BATCH = 5, 16


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(STEPS * BATCH, 6, generator=g), torch.randint(0, 3, (STEPS * BATCH,), generator=g)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _train(ctx: DistContext, seed: int) -> tuple[torch.nn.Module, list[float]]:
    """SGD with momentum on fixed global batches; each rank takes its half of every batch."""
    x, y = _data()
    # Ranks start from different weights on purpose: DDP must broadcast rank 0's.
    model = wrap_ddp(_model(seed), ctx)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for step in range(STEPS):
        rows = shard_indices(np.arange(step * BATCH, (step + 1) * BATCH), ctx)
        loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(all_reduce_mean(loss, ctx)))
    return unwrap(model), losses


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1"}
    )
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    ctx = init_distributed(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend) == (rank, world_size, "gloo")
    model, losses = _train(ctx, seed=rank)
    torch.save({"state": model.state_dict(), "losses": losses}, Path(out) / f"rank{rank}.pt")
    cleanup(ctx)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_on_the_full_batch(tmp_path: Path, monkeypatch) -> None:
    import torch.multiprocessing as mp

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            monkeypatch.delenv(name, raising=False)
        alone = init_distributed(device="cpu")
        assert (alone.world_size, alone.backend, alone.distributed) == (1, None, False)
        reference, ref_losses = _train(alone, seed=0)

        mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, expected in reference.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][name], ranks[1]["state"][name], rtol=0, atol=0)
        torch.testing.assert_close(ranks[0]["state"][name], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ranks[0]["losses"], ref_losses, rtol=1e-5)
    assert ranks[0]["losses"] == ranks[1]["losses"]


def test_alone_the_helpers_change_nothing() -> None:
    ctx = DistContext(0, 1, 0, torch.device("cpu"), None, False)
    model = torch.nn.Linear(2, 2)
    assert wrap_ddp(model, ctx) is model and unwrap(model) is model
    assert shard_indices(np.arange(5), ctx).tolist() == [0, 1, 2, 3, 4]
    assert shard_indices(np.arange(5), DistContext(1, 2, 1, torch.device("cpu"), "gloo", False)).tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match="CUDA") if not torch.cuda.is_available() else _nothing():
        init_distributed(device="cuda")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
