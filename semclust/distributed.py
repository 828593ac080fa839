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

The package's own loops (``semclust.ssl.trainer.Trainer``, ``LAIC._train``) call
:func:`join_if_launched`, which joins only when ``WORLD_SIZE > 1`` and otherwise has no side
effect at all; ``python -m semclust`` (``torchrun -m semclust ...``) leaves the group with
:func:`leave_process_group` when the command ends, and files are written where
:func:`is_main_process` holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


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


def launched_by_torchrun() -> bool:
    """Whether the environment describes several processes (``WORLD_SIZE > 1``, as torchrun sets)."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_main_process() -> bool:
    """Whether this process writes shared files: rank 0 of the group, or the only process.

    Reads the joined group when there is one, else torchrun's ``RANK`` (so it also holds before
    the group is joined, e.g. for a command's checks).
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def local_context(device: str | torch.device = "cpu") -> DistContext:
    """The one-process context on ``device``, with no side effect (no CUDA device is selected).

    ``"auto"`` is CUDA when torch sees a GPU, else the CPU.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return DistContext(0, 1, 0, torch.device(device), None, False)


def join_if_launched(device: str | torch.device = "cpu") -> DistContext:
    """:func:`init_distributed` under torchrun (``WORLD_SIZE > 1``), else :func:`local_context`.

    A loop that must behave exactly as before when run alone calls this rather than
    :func:`init_distributed`, whose ``"cuda"`` handling selects ``cuda:LOCAL_RANK``. Under
    torchrun a CUDA ``device`` becomes ``cuda:LOCAL_RANK`` whatever index it named.
    """
    if not launched_by_torchrun():
        return local_context(device)
    return init_distributed(device=str(device))


def broadcast_object(value: T, ctx: DistContext) -> T:
    """Rank 0's ``value`` on every rank (picklable objects; ``value`` itself when alone).

    Used for what only rank 0 computes, e.g. an evaluation, so that every rank goes on with the
    same metrics.
    """
    if not ctx.distributed:
        return value
    holder: list[Any] = [value if ctx.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather_objects(value: T, ctx: DistContext) -> list[T]:
    """Every rank's ``value``, in rank order (``[value]`` when alone)."""
    if not ctx.distributed:
        return [value]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (nothing when alone)."""
    if ctx.distributed:
        dist.barrier()


def leave_process_group() -> None:
    """Meet every rank at a barrier and destroy the process group, if one is joined.

    ``python -m semclust`` calls this after a command that succeeded: the loops that join the
    group (trainer, LAIC) leave it in place so that the command can still share results.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
