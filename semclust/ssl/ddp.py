"""How the semi-supervised trainer runs under torchrun: each rank's part of a global batch, and
the wrapper that sends an algorithm's forward passes (``forward`` or a routed method such as
``heads``) through DistributedDataParallel so their gradients are all-reduced."""

from __future__ import annotations

import functools
from typing import Any, cast

import torch
from torch import nn

from semclust.distributed import DistContext, shard_indices

# Algorithms whose training step is one plain ``model(x)`` that reaches every trainable parameter.
# Under DDP the others (CPE and Meta-Expert call ``model.heads``, which skips the backbone's
# classifier; Meta-Expert's assignment losses start at ``fuse_warmup``) need
# ``find_unused_parameters=True``, which costs one autograd-graph traversal per step.
DDP_ALL_PARAMETERS_USED = frozenset({"fixmatch", "fixmatch-la"})
# Network methods algorithms call to compute their training outputs besides ``forward``. Under DDP
# they run inside the wrapper's forward: DDP prepares its gradient all-reduce only for outputs
# computed through it.
DDP_ROUTED_METHODS = frozenset({"heads"})


class Trainer:
    """Semi-supervised training with algorithm ``algorithm_name`` (e.g. ``"fixmatch"``).

    ``network`` is a name for :func:`semclust.ssl.nets.build_network` or a callable
    ``(num_classes, in_channels) -> nn.Module``. ``eval_every`` / ``checkpoint_every`` default
    to a tenth of ``total_steps``; ``out_dir=None`` keeps everything in memory. ``resume=True``
    continues from ``out_dir/checkpoint`` when one exists (the settings must match).
    ``amp=True`` runs the training step under autocast (bfloat16 on CPU; float16 with a gradient
    scaler on CUDA); evaluation stays in float32. Under torchrun ``batch_size`` is the global
    batch, split over the ranks (see the module docstring).
    Extra keyword arguments are the algorithm's hyperparameters (e.g. ``threshold``).
    """


def rank_batch_indices(
    idx_lb: torch.Tensor, idx_ulb: torch.Tensor, ctx: DistContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's part of one global step: contiguous shards of the labelled and unlabelled indices.

    Every rank draws the same global batch, so the shards of all ranks are disjoint and together
    are exactly the single-process batch. Alone the indices come back unchanged.
    """
    if not ctx.distributed:
        return idx_lb, idx_ulb
    return cast(torch.Tensor, shard_indices(idx_lb, ctx)), cast(torch.Tensor, shard_indices(idx_ulb, ctx))


class MethodRouter(nn.Module):
    """A module whose ``forward`` runs ``network.<routed_method>(...)``, so DDP can wrap any of them."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, *args: Any, routed_method: str = "forward", **kwargs: Any) -> Any:
        call = self.network if routed_method == "forward" else getattr(self.network, routed_method)
        return call(*args, **kwargs)


class DistributedNetworkView:
    """What an algorithm holds as ``self.model`` during a DDP run.

    Calling it, or one of :data:`DDP_ROUTED_METHODS`, goes through the DDP wrapper (so the
    gradients are all-reduced); every other attribute (``class_group``, ``set_prior``,
    ``parameters`` ...) is the network's own.
    """

    def __init__(self, network: nn.Module, ddp_model: nn.Module) -> None:
        self._network = network
        self._ddp_model = ddp_model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ddp_model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("_network", "_ddp_model"):  # not set yet (copy/pickle): avoid recursing
            raise AttributeError(name)
        if name in DDP_ROUTED_METHODS:
            return functools.partial(self._ddp_model, routed_method=name)
        return getattr(self._network, name)
