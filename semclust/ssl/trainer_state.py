"""What a semi-supervised trainer's checkpoint holds, and putting it back.

:func:`capture` turns a :class:`~semclust.ssl.trainer.Trainer` into one
:class:`~semclust.store.checkpoint.TrainingState` (its epoch is the step): the network and its
EMA, the optimiser, every generator (augmentation, torch's global one, CUDA's, numpy's), both
samplers, the algorithm's state, the gradient scaler and the logged sums since the last
evaluation. :func:`restore` sets all of it back, so a resumed run continues bit for bit (CPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from semclust.store.checkpoint import TrainingState

if TYPE_CHECKING:
    from semclust.ssl.trainer import Trainer


def capture(trainer: Trainer, log_sums: dict[str, float], log_counts: dict[str, int]) -> TrainingState:
    state = TrainingState(epoch=trainer.step)
    state.values.update({"step": trainer.step, "config": trainer.config})
    state.values.update({"log_sums": log_sums, "log_counts": log_counts})
    state.put_module("model", trainer.model)
    state.put_module("ema", trainer.ema.model)
    state.put_optimizer("optim", trainer.optimizer)
    state.put_generator("rng.augment", trainer.aug_generator)
    state.put_torch_global_rng()
    if trainer.device.type == "cuda":
        state.tensors["rng.cuda"] = torch.cuda.get_rng_state(trainer.device).clone()
    state.put_numpy_rng("numpy_rng", trainer.np_rng)
    for name, sampler in (("lb", trainer.lb_sampler), ("ulb", trainer.ulb_sampler)):
        saved = sampler.state_dict()
        state.tensors[f"sampler.{name}.generator"] = saved["generator"]
        state.tensors[f"sampler.{name}.perm"] = saved["perm"]
        state.values[f"sampler_{name}_pos"] = saved["pos"]
    algo_values = {}
    for key, value in trainer.algorithm.state_dict().items():
        if isinstance(value, torch.Tensor):
            state.tensors[f"algo.{key}"] = value.detach().to("cpu").contiguous().clone()
        else:
            algo_values[key] = value
    state.values["algorithm"] = algo_values
    if trainer.grad_scaler is not None:
        state.values["grad_scaler"] = trainer.grad_scaler.state_dict()
    return state


def restore(trainer: Trainer, state: TrainingState) -> None:
    state.load_module("model", trainer.model)
    state.load_module("ema", trainer.ema.model)
    state.load_optimizer("optim", trainer.optimizer)
    state.load_generator("rng.augment", trainer.aug_generator)
    state.load_torch_global_rng()
    if trainer.device.type == "cuda" and "rng.cuda" in state.tensors:
        torch.cuda.set_rng_state(state.tensors["rng.cuda"], trainer.device)
    state.load_numpy_rng("numpy_rng", trainer.np_rng)
    for name, sampler in (("lb", trainer.lb_sampler), ("ulb", trainer.ulb_sampler)):
        sampler.load_state_dict(
            {
                "generator": state.tensors[f"sampler.{name}.generator"],
                "perm": state.tensors[f"sampler.{name}.perm"],
                "pos": state.values[f"sampler_{name}_pos"],
            }
        )
    algo_tensors = {k[len("algo.") :]: v for k, v in state.tensors.items() if k.startswith("algo.")}
    trainer.algorithm.load_state_dict({**state.values.get("algorithm", {}), **algo_tensors})
    if trainer.grad_scaler is not None and "grad_scaler" in state.values:
        trainer.grad_scaler.load_state_dict(state.values["grad_scaler"])
    # The saved sums are already those of all ranks: under DDP rank 0 alone carries them on.
    if trainer.dist.is_main:
        trainer.pending_log_sums = {k: float(v) for k, v in state.values.get("log_sums", {}).items()}
        trainer.pending_log_counts = {k: int(v) for k, v in state.values.get("log_counts", {}).items()}
    else:
        trainer.pending_log_sums, trainer.pending_log_counts = {}, {}
    trainer.step = int(state.values["step"])
