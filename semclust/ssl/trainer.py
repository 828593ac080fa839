"""One training loop for every semi-supervised algorithm in :mod:`semclust.ssl.algorithms`.

SGD (nesterov) with the FixMatch cosine decay ``lr * cos(7 pi k / (16 K))`` (``lr_schedule=
"constant"`` keeps ``lr``, as the released long-tailed runs of USB/Meta-Expert do), weight decay
on conv/linear weights only (not batch-norm parameters or biases, as USB), an EMA copy of the
model (constant decay 0.999 as in FixMatch/USB; ``ema_warmup=True`` is our warm-up variant)
used for every evaluation, evaluation every ``eval_every`` steps appended to ``out_dir/log.json``,
and a checkpoint every ``checkpoint_every`` steps in ``out_dir/checkpoint/`` (the checkpoint
of :mod:`semclust.store.checkpoint`, shared with the clustering methods: tensors in safetensors,
the rest as JSON, each written atomically, the JSON last).

All randomness comes from seeded generators whose states are checkpointed: the batch samplers,
the augmentation generator, numpy's generator (for algorithms) and torch's global generator
(dropout). On CPU a run killed and resumed therefore ends with weights identical to an
uninterrupted run.

Under ``torchrun`` (``WORLD_SIZE > 1``) the trainer joins the process group itself
(:func:`semclust.distributed.join_if_launched`: gloo on CPU, nccl on ``cuda:LOCAL_RANK``) and
trains with DistributedDataParallel. Every rank draws the same global batch from its identically
seeded samplers and keeps its contiguous shard of the labelled and of the unlabelled indices
(:func:`rank_batch_indices`), so N ranks together process one batch of ``batch_size`` (plus
``mu * batch_size`` unlabelled images); DDP averages the ranks' gradients of their local mean
losses, which is the gradient of the global mean. Each rank augments only its shard, with a
generator seeded per step from the shared augmentation generator (one draw per step, so that
generator stays identical on every rank and rank 0's checkpoint resumes them all). Batch norm
uses per-rank batch statistics (SyncBatchNorm is not used), so a DDP run is not bit-identical to
one process; parameters, optimiser and EMA stay identical across ranks. Rank 0 alone evaluates
(the result is broadcast so that every rank returns the same metrics) and writes ``log.json``
and checkpoints; logged values are averaged over the ranks. Every rank loads the checkpoint
when resuming, so ``out_dir`` must be visible to all of them (one machine, or a shared disk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from semclust.atomic import read_json, write_json
from semclust.distributed import (
    all_gather_objects,
    barrier,
    broadcast_object,
    join_if_launched,
    wrap_ddp,
)
from semclust.metrics import evaluate
from semclust.ssl.algorithms import get_algorithm
from semclust.ssl.augment import normalize, strong_augment, to_float, weak_augment
from semclust.ssl.data import InfiniteSampler, as_uint8_tensor, labels_tensor
from semclust.ssl.ddp import DDP_ALL_PARAMETERS_USED, DistributedNetworkView, MethodRouter, rank_batch_indices
from semclust.ssl.optim import EMA, param_groups, scheduled_lr
from semclust.ssl.trainer_config import TrainerConfig
from semclust.ssl.trainer_state import capture, restore
from semclust.store.checkpoint import CheckpointError, EpochCheckpoint

CHECKPOINT_DIR = "checkpoint"
FORMAT_VERSION = 2  # 2: the checkpoint of semclust.store.checkpoint
# Settings that must agree between a checkpoint and the run that resumes it.
_RESUME_KEYS = (
    "algorithm", "network", "num_classes", "in_channels", "total_steps", "batch_size", "mu", "lr", "momentum",
    "nesterov", "weight_decay", "ema", "ema_warmup", "seed", "flip", "algo_hyperparams", "lr_schedule",
)  # fmt: skip


class Trainer:
    """Semi-supervised training with algorithm ``algorithm_name`` (e.g. ``"fixmatch"``).

    The keyword settings are the fields of :class:`~semclust.ssl.trainer_config.TrainerConfig`
    (network, steps, batch, optimiser, EMA, evaluation and checkpoint intervals, ``out_dir``,
    device, seed); ``self.settings`` holds them checked and ``self.config`` their record. ``resume=True``
    continues from ``out_dir/checkpoint`` when one exists (the settings must match).
    ``amp=True`` runs the training step under autocast (bfloat16 on CPU; float16 with a gradient
    scaler on CUDA); evaluation stays in float32. Under torchrun ``batch_size`` is the global
    batch, split over the ranks (see the module docstring).
    Extra keyword arguments are the algorithm's hyperparameters (e.g. ``threshold``).
    """

    def __init__(self, algorithm_name: str, **settings: Any) -> None:
        config, algo_hyperparams = TrainerConfig.split(settings)
        self.settings = config
        self.algorithm_cls = get_algorithm(algorithm_name)
        self.total_steps = int(config.total_steps)
        self.eval_every, self.checkpoint_every = config.eval_steps, config.checkpoint_steps
        self.eval_batch_size = int(config.eval_batch_size)
        self.out_dir = None if config.out_dir is None else Path(config.out_dir)
        # Under torchrun: join the process group (a CUDA device becomes cuda:LOCAL_RANK).
        # Alone: no side effect, the device is the one asked for.
        self.dist = join_if_launched(config.device)
        self.device = self.dist.device if self.dist.distributed else torch.device(config.device)
        if self.dist.distributed and int(config.batch_size) % self.dist.world_size:
            # Equal shards make the average of the ranks' local-mean gradients the global mean's.
            raise ValueError(
                f"batch_size {config.batch_size} (the global batch) must be divisible by the "
                f"{self.dist.world_size} processes"
            )
        self.resume, self.amp = bool(config.resume), bool(config.amp)
        world_size = self.dist.world_size if self.dist.distributed else 1
        self.config = config.record(self.algorithm_cls.name, str(self.device), world_size, algo_hyperparams)
        network, num_classes, in_channels = config.network, config.num_classes, config.in_channels
        seed, weight_decay, lr = config.seed, config.weight_decay, config.lr
        self.seed = int(seed)
        torch.manual_seed(self.seed)  # weight init and dropout use torch's global generator
        if isinstance(network, str):
            from semclust.ssl.nets import build_network

            model = build_network(network, num_classes=int(num_classes), in_channels=int(in_channels))
        else:
            model = network(int(num_classes), int(in_channels))
        model = model.to(self.device)
        try:
            self.algorithm = self.algorithm_cls(model, int(num_classes), **algo_hyperparams)
        except TypeError as err:
            raise ValueError(f"{self.algorithm_cls.name}: {err}") from err
        # An algorithm may wrap the network in a module holding its own trainable parts (expert
        # heads, fusion layers): ``algorithm.model`` is what is optimised, EMA-averaged and saved.
        self.model = self.algorithm.model.to(self.device)
        self.ddp_model: nn.Module | None = None
        if self.dist.distributed:
            # DDP broadcasts rank 0's weights; ``self.model`` stays the plain network that is
            # optimised, EMA-averaged and saved, while the algorithm's forward passes go through DDP.
            self.ddp_model = wrap_ddp(
                MethodRouter(self.model),
                self.dist,
                find_unused_parameters=self.algorithm_cls.name not in DDP_ALL_PARAMETERS_USED,
            )
            self.algorithm.model = cast(nn.Module, DistributedNetworkView(self.model, self.ddp_model))
        self.ema = EMA(self.model, config.ema, warmup=config.ema_warmup)
        self.optimizer = torch.optim.SGD(
            param_groups(self.model, weight_decay), lr=lr, momentum=config.momentum, nesterov=config.nesterov
        )
        self.config["algo_hyperparams"] = self.algorithm.hyperparams() or dict(algo_hyperparams)
        # Mixed precision: bfloat16 needs no loss scaling; float16 (CUDA) does.
        self._amp_dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        self.grad_scaler: torch.amp.GradScaler | None = None
        if self.amp and self._amp_dtype == torch.float16:
            self.grad_scaler = torch.amp.GradScaler(self.device.type)
        self.aug_generator = torch.Generator().manual_seed(self.seed + 1)
        self.np_rng = np.random.default_rng(self.seed + 2)  # for algorithms that sample with numpy
        self.step = 0
        self.log: list[dict[str, Any]] = []
        self.last_metrics: dict[str, Any] | None = None
        self.pending_log_sums: dict[str, float] = {}
        self.pending_log_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ data
    @property
    def ema_model(self) -> nn.Module:
        return self.ema.model

    def normalised(self, x_u8: torch.Tensor) -> torch.Tensor:
        """uint8 images as the network reads them: floats normalised by the unlabelled images' statistics."""
        return normalize(to_float(x_u8), self.mean, self.std)

    def _rank_augment_generator(self) -> torch.Generator:
        """The generator for this rank's augmentations in this step (DDP runs only).

        One draw from the shared augmentation generator per step keeps that generator identical on
        every rank (so rank 0's checkpoint resumes them all); adding the rank gives each rank its
        own stream, so that two ranks never augment their images with the same random numbers.
        """
        step_seed = int(torch.randint(0, 2**62, (1,), generator=self.aug_generator))
        return torch.Generator().manual_seed(step_seed + self.dist.rank)

    def _batch(self) -> dict[str, torch.Tensor]:
        idx_lb, idx_ulb = self.lb_sampler.next(), self.ulb_sampler.next()
        flip = self.config["flip"]
        g = self.aug_generator
        if self.dist.distributed:
            idx_lb, idx_ulb = rank_batch_indices(idx_lb, idx_ulb, self.dist)
            g = self._rank_augment_generator()
        x_lb = weak_augment(to_float(self._x_lb[idx_lb]), g, flip=flip)
        x_ulb = to_float(self._x_ulb[idx_ulb])
        x_w = weak_augment(x_ulb, g, flip=flip)
        x_s = strong_augment(x_ulb, g, flip=flip)
        batch = {
            "x_lb": normalize(x_lb, self.mean, self.std).to(self.device),
            "y_lb": self._y_lb[idx_lb].to(self.device),
            "x_ulb_w": normalize(x_w, self.mean, self.std).to(self.device),
            "x_ulb_s": normalize(x_s, self.mean, self.std).to(self.device),
            "idx_ulb": idx_ulb.to(self.device),
        }
        if self._y_ulb is not None:
            batch["y_ulb"] = self._y_ulb[idx_ulb].to(self.device)
        return batch

    # ------------------------------------------------------------- training
    def fit(
        self,
        x_lb: Any,
        y_lb: Any,
        x_ulb: Any,
        x_eval: Any = None,
        y_eval: Any = None,
        y_ulb: Any = None,
        progress: Callable[[int, dict[str, float]], None] | None = None,
    ) -> dict[str, Any]:
        """Train to ``total_steps`` (from the checkpoint when resuming); returns the final metrics.

        Images are uint8 ``[n,H,W]`` or ``[n,H,W,C]`` (numpy or torch). ``y_ulb`` (optional,
        negative = unknown) only feeds monitoring logs such as pseudo-label accuracy.
        ``progress(step, logs)`` is called after every step (``step`` counts from 1).
        """
        self._x_lb = as_uint8_tensor(x_lb, "x_lb")
        self._y_lb = labels_tensor(y_lb, len(self._x_lb), "y_lb")
        self._x_ulb = as_uint8_tensor(x_ulb, "x_ulb")
        self._y_ulb = None if y_ulb is None else labels_tensor(y_ulb, len(self._x_ulb), "y_ulb")
        if len(self._x_lb) == 0 or len(self._x_ulb) == 0:
            raise ValueError("need at least one labelled and one unlabelled image")
        if self._y_lb.min() < 0 or self._y_lb.max() >= self.config["num_classes"]:
            raise ValueError(
                f"y_lb must lie in [0, {self.config['num_classes']}), got {self._y_lb.min()}..{self._y_lb.max()}"
            )
        channels = 1 if self._x_ulb.ndim == 3 else self._x_ulb.shape[-1]
        if channels != self.config["in_channels"] or self._x_lb.shape[1:] != self._x_ulb.shape[1:]:
            raise ValueError(
                f"images have shape {tuple(self._x_ulb.shape[1:])} (labelled {tuple(self._x_lb.shape[1:])}) "
                f"but the network expects {self.config['in_channels']} channel(s)"
            )
        self._x_eval = None if x_eval is None else as_uint8_tensor(x_eval, "x_eval")
        n_eval = len(cast(torch.Tensor, self._x_eval)) if y_eval is not None else 0
        self._y_eval = None if y_eval is None else labels_tensor(y_eval, n_eval, "y_eval")
        # Per-channel statistics of the unlabelled images (deterministic; recomputed on resume).
        flat = to_float(self._x_ulb[:20000]).transpose(0, 1).reshape(channels, -1)
        self.mean = [float(v) for v in flat.mean(dim=1)]
        self.std = [max(float(v), 1e-3) for v in flat.std(dim=1)]
        seed = self.seed
        self.lb_sampler = InfiniteSampler(len(self._x_lb), self.config["batch_size"], seed + 3)
        self.ulb_sampler = InfiniteSampler(len(self._x_ulb), self.config["batch_size"] * self.config["mu"], seed + 4)
        if self.out_dir is not None and not self.resume and self.dist.is_main:
            # A fresh run: earlier evaluations in this directory belong to another run.
            if (self.out_dir / "log.json").exists():
                (self.out_dir / "log.json").unlink()
        # Rank 0 decides whether there is a checkpoint, so that all ranks resume from the same step.
        has_checkpoint = self.resume and self._has_checkpoint()
        if broadcast_object(has_checkpoint, self.dist):
            self.load_checkpoint()
            barrier(self.dist)  # every rank has read the checkpoint before rank 0 may replace it
        self.algorithm.on_train_start(self)

        while self.step < self.total_steps:
            k = self.step
            lr = scheduled_lr(self.config.get("lr_schedule", "cosine"), self.config["lr"], k, self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.model.train()
            batch = self._batch()
            autocast = torch.autocast(self.device.type, dtype=self._amp_dtype) if self.amp else contextlib.nullcontext()
            with autocast:
                loss, logs = self.algorithm.train_step(batch, k)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{self.config['algorithm']}: loss became {float(loss)} at step {k + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            if self.grad_scaler is not None:
                self.grad_scaler.scale(loss).backward()
                self.grad_scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
                self.grad_scaler.update()
            else:
                loss.backward()  # under DDP this all-reduces (averages) the gradients
                self.optimizer.step()
            # DDP gives every rank the same gradients, so the plain network (and its EMA) is
            # identical on every rank.
            self.ema.update(self.model, k)
            self.step = k + 1
            logs = {**logs, "lr": lr}
            for key, value in logs.items():
                self.pending_log_sums[key] = self.pending_log_sums.get(key, 0.0) + float(value)
                self.pending_log_counts[key] = self.pending_log_counts.get(key, 0) + 1
            if progress is not None:
                progress(self.step, logs)
            if self.step % self.eval_every == 0 or self.step == self.total_steps:
                self._evaluate_and_log()
            if self.out_dir is not None and (self.step % self.checkpoint_every == 0 or self.step == self.total_steps):
                self.save_checkpoint()
        if self.last_metrics is None or self.last_metrics.get("step") != self.step:
            self.last_metrics = self._on_main_then_shared(
                lambda: self.evaluate_ema() if self._x_eval is not None else {"step": self.step}
            )
            self.last_metrics["step"] = self.step
        return self.last_metrics

    def _on_main_then_shared(self, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``compute()`` on rank 0, its result on every rank (just ``compute()`` when alone)."""
        if not self.dist.distributed:
            return compute()
        return broadcast_object(compute() if self.dist.is_main else {}, self.dist)

    # ------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict_outputs(self, x: Any, use_ema: bool = True) -> dict[str, np.ndarray]:
        """``algorithm.eval_outputs`` for uint8 images in one pass: ``"pred"`` plus any extras."""
        x = as_uint8_tensor(x, "images")
        model = self.ema.model if use_ema else self.model
        was_training = model.training
        model.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, len(x), self.eval_batch_size):
            chunk = self.normalised(x[start : start + self.eval_batch_size]).to(self.device)
            for key, value in self.algorithm.eval_outputs(model, chunk).items():
                parts.setdefault(key, []).append(value.detach().cpu())
        model.train(was_training)
        if not parts:
            return {"pred": np.zeros(0, dtype=np.int64)}
        return {key: torch.cat(values).numpy() for key, values in parts.items()}

    def predict(self, x: Any, use_ema: bool = True) -> np.ndarray:
        """Class predictions (int64) for uint8 images, by the EMA model unless ``use_ema=False``."""
        return self.predict_outputs(x, use_ema)["pred"]

    def evaluate_ema(self) -> dict[str, Any]:
        """``acc`` = ``top1`` (plain top-1 accuracy: a classifier's predictions are class ids),
        ``acc_matched`` (best one-to-one matching, as clustering runs are scored), ``nmi``, ``ari``,
        ``n``, plus whatever ``algorithm.eval_metrics`` adds (e.g. per-group or per-expert accuracy)."""
        outputs = self.predict_outputs(self._x_eval)
        pred = outputs["pred"]
        y = cast(torch.Tensor, self._y_eval).numpy()
        known = y >= 0
        metrics = evaluate(y, pred)
        metrics["acc_matched"] = metrics["acc"]
        metrics["top1"] = metrics["acc"] = float((pred[known] == y[known]).mean())
        metrics.update(self.algorithm.eval_metrics(outputs, y))
        return metrics

    def _merged_log_sums(self) -> tuple[dict[str, float], dict[str, int]]:
        """The logged sums and counts of every rank added up (this rank's own when alone).

        A collective under DDP: every rank must call it at the same point.
        """
        if not self.dist.distributed:
            return self.pending_log_sums, self.pending_log_counts
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for rank_sums, rank_counts in all_gather_objects((self.pending_log_sums, self.pending_log_counts), self.dist):
            for key, value in rank_sums.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + rank_counts[key]
        return sums, counts

    def _evaluate_and_log(self) -> None:
        log_sums, log_counts = self._merged_log_sums()

        def evaluation() -> dict[str, Any]:
            entry: dict[str, Any] = {"step": self.step}
            if self._x_eval is not None and self._y_eval is not None:
                entry.update(self.evaluate_ema())
            return entry

        entry = self._on_main_then_shared(evaluation)
        # Under DDP: the mean over ranks and steps of what each rank logged.
        entry.update({k: log_sums[k] / log_counts[k] for k in log_sums})
        self.pending_log_sums, self.pending_log_counts = {}, {}
        self.log.append(entry)
        self.last_metrics = entry
        self.algorithm.on_eval(self, self.step, entry)
        if self.out_dir is not None and self.dist.is_main:
            write_json(self.out_dir / "log.json", self.log)

    # ----------------------------------------------------------- checkpoints
    def _checkpoint(self) -> EpochCheckpoint:
        """``out_dir/checkpoint``, identified by the settings a resumed run must share."""
        assert self.out_dir is not None
        identity = {"trainer": FORMAT_VERSION, **{k: self.config.get(k) for k in _RESUME_KEYS}}
        return EpochCheckpoint(self.out_dir / CHECKPOINT_DIR, identity)

    def save_checkpoint(self) -> Path:
        """Write ``out_dir/checkpoint/`` (:func:`semclust.ssl.trainer_state.capture`).

        Under DDP every rank calls this (the logged sums are gathered) and rank 0 alone writes:
        weights, optimiser, samplers and generators are the same on every rank; batch-norm
        statistics are rank 0's. Every rank returns once the checkpoint is complete.
        """
        checkpoint = self._checkpoint()
        log_sums, log_counts = self._merged_log_sums()
        if not self.dist.is_main:
            barrier(self.dist)  # returns once rank 0 has written the checkpoint
            return checkpoint.directory
        checkpoint.save(capture(self, log_sums, log_counts))
        barrier(self.dist)
        return checkpoint.directory

    def _has_checkpoint(self) -> bool:
        return self.out_dir is not None and self._checkpoint().exists()

    def load_checkpoint(self) -> None:
        """Restore everything :meth:`save_checkpoint` wrote (call after the data is set by ``fit``).

        A checkpoint written with other settings is a ValueError naming them.
        """
        try:
            state = self._checkpoint().load()
        except CheckpointError as err:
            raise ValueError(str(err)) from None
        if state is None:
            raise FileNotFoundError(f"no checkpoint in {self.out_dir}")
        restore(self, state)
        # Evaluations logged after this checkpoint belong to the part of the run being redone.
        log_path = cast(Path, self.out_dir) / "log.json"
        self.log = [e for e in read_json(log_path) if e.get("step", 0) <= self.step] if log_path.exists() else []
        self.last_metrics = self.log[-1] if self.log and self.log[-1].get("step") == self.step else None
        if self.dist.is_main:
            write_json(log_path, self.log)
