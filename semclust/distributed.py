"""Multi-process training with torch DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc-per-node N script.py`` starts N processes and gives each ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. A training loop then::

    from semclust.distributed import init_distributed, wrap_ddp, shard_indices, cleanup

    ctx = init_distributed(device="auto")          # nccl on cuda:LOCAL_RANK, else gloo on CPU
    model = wrap_ddp(build_model().to(ctx.device), ctx)
    for step in range(steps):
        rows = shard_indices(batch_indices(step), ctx)  # this rank's part of the global batch
        loss = criterion(model(x[rows]), y[rows])        # mean over the local part
        opt.zero_grad(); loss.backward(); opt.step()     # DDP averages gradients over ranks
    if ctx.is_main:
        save(unwrap(model))
    cleanup(ctx)

With equal local batches, averaging the ranks' gradients of their local mean losses equals
the gradient of the global mean loss, so N processes on a batch split N ways follow the
single-process trajectory (tests/test_distributed.py checks this with 2 gloo processes).
Without torchrun's variables :func:`init_distributed` returns a one-process context and
:func:`wrap_ddp` returns the model unchanged, so the same script runs alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, its ``device`` and ``backend``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    initialized_here: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def init_distributed(device: str = "auto", backend: str | None = None, timeout_s: float = 600.0) -> DistContext:
    """Join the process group torchrun described in the environment (or run alone).

    ``device``: ``"auto"`` (``cuda:LOCAL_RANK`` when CUDA is present, else CPU), ``"cpu"`` or
    ``"cuda"``. ``backend`` defaults to ``nccl`` on CUDA and ``gloo`` on CPU.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for CUDA, but torch sees no GPU")
        torch_device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(torch_device)
    else:
        torch_device = torch.device("cpu")
    backend = backend or ("nccl" if use_cuda else "gloo")
    if world_size <= 1:
        return DistContext(0, 1, 0, torch_device, None, False)
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, torch_device, backend, False)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank, world_size, local_rank, torch_device, backend, True)


def wrap_ddp(model: torch.nn.Module, ctx: DistContext, **ddp_options: object) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several processes, else unchanged.

    The model must already be on ``ctx.device``. DDP broadcasts rank 0's parameters and
    buffers at construction, so every rank starts from the same weights.
    """
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, **ddp_options)  # type: ignore[arg-type]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints should save)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, torch.nn.Module) else model


def shard_indices(indices: np.ndarray | torch.Tensor, ctx: DistContext) -> np.ndarray | torch.Tensor:
    """This rank's contiguous part of a global batch (sizes differ by at most one)."""
    n = len(indices)
    lo = ctx.rank * n // ctx.world_size
    hi = (ctx.rank + 1) * n // ctx.world_size
    return indices[lo:hi]


def all_reduce_mean(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean of ``value`` over the ranks (a copy; unchanged when running alone), e.g. for logging."""
    out = value.detach().clone()
    if ctx.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= ctx.world_size
    return out


def cleanup(ctx: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` created it.

    All ranks meet at a barrier first: a rank that tears down its gloo connections while a peer
    still holds them makes the peer abort ("terminate called without an active exception").
    """
    if ctx.initialized_here and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
