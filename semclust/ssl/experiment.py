"""Semi-supervised runs: one function, :func:`run_ssl`, behind ``semclust ssl fixmatch|fixmatch-la|cpe|metaexpert``.

The data comes from one of three builders, each returning an :class:`SSLData`:
:func:`balanced_data` (N true labels per class of a dataset's train split),
:func:`longtail_data` (a seeded long-tailed split) and :func:`folder_data` (the user's own
labelled folder, unlabelled folder or dataset, optional test folder). :func:`run_ssl` builds the
:class:`~semclust.ssl.trainer.Trainer`, fits, scores the EMA model on the test images and, with
``out``, writes ``metrics.json`` (when there is a test set), ``run.json`` and the saved model
(``model/``, :mod:`semclust.ssl.saved_model`). :func:`run_longtail` is ``longtail_data`` +
``run_ssl``: the benchmark (``benchmarks/metaexpert.py``) and the CLI measure the same thing.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from semclust.deprecated import renamed_keywords
from semclust.ssl.run_data import (  # noqa: F401 - the data builders, importable from here as before
    DEFAULT_BATCH,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_STEPS,
    DIGITS_TEST_FRACTION,
    FALLBACK_STEPS,
    LT_DEFAULT_STEPS,
    NO_FLIP,
    SSLData,
    balanced_data,
    folder_data,
    load_train_test,
    load_unlabelled,
    longtail_data,
)

LT_METHODS = ("fixmatch", "fixmatch-la", "cpe", "metaexpert")
# Meta-Expert's released schedule starts the fused losses at iteration 20 x 1024 of 262,144.
FUSE_WARMUP_FRACTION = 20 * 1024 / 262144


def versions() -> dict[str, str]:
    """Versions of Python and the packages a training run's numbers depend on."""
    found = {"python": platform.python_version()}
    for package in ("semclust", "torch", "numpy", "safetensors"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def parse_taus(taus: str | Sequence[float]) -> list[float]:
    """Three logit-adjustment strengths from ``"0,2,4"`` or a sequence."""
    try:
        values = [float(t) for t in (taus.replace(",", " ").split() if isinstance(taus, str) else taus)]
    except (TypeError, ValueError):
        raise ValueError(f"taus must be three numbers like 0,2,4, got {taus!r}") from None
    if len(values) != 3:
        raise ValueError(f"taus must be three numbers like 0,2,4, got {taus!r}")
    return values


@dataclass
class SSLRun:
    """What :func:`run_ssl` returns: the metrics record, the run description and the trainer."""

    record: dict[str, Any]
    run_info: dict[str, Any]
    trainer: Any
    data: SSLData | None = None


LongTailRun = SSLRun  # the name run_longtail's callers know


def algorithm_hyperparams(
    method: str,
    total_steps: int,
    *,
    threshold: float = 0.95,
    lambda_u: float = 1.0,
    tau: float = 2.0,
    taus: str | Sequence[float] = (0.0, 2.0, 4.0),
    predict_expert: int = 1,
    fuse_warmup: int | None = None,
    freeze_assignment: bool = False,
    fused_losses: bool = True,
    group_split: str = "reference",
) -> dict[str, Any]:
    """The trainer's keyword hyperparameters of ``method`` (each method takes only its own)."""
    method = method.strip().lower()
    if method not in LT_METHODS:
        raise ValueError(f"unknown semi-supervised method {method!r}; valid: {', '.join(LT_METHODS)}")
    hyper: dict[str, Any] = {"threshold": threshold, "lambda_u": lambda_u}
    if method == "fixmatch-la":
        hyper["tau"] = tau
    if method in ("cpe", "metaexpert"):
        hyper["taus"] = parse_taus(taus)
        hyper["group_split"] = group_split
    if method == "cpe":
        if predict_expert not in (0, 1, 2):
            raise ValueError(f"predict_expert must be 0, 1 or 2 (0-based), got {predict_expert}")
        hyper["predict_expert"] = predict_expert
    if method == "metaexpert":
        hyper["fuse_warmup"] = int(round(FUSE_WARMUP_FRACTION * total_steps)) if fuse_warmup is None else fuse_warmup
        hyper["freeze_assignment"] = bool(freeze_assignment)
        hyper["fused_losses"] = bool(fused_losses)
    return hyper


@renamed_keywords({"seed": "random_state", "out_dir": "out"})
def run_ssl(
    method: str,
    data: SSLData,
    *,
    steps: int | None = None,
    network: str = "cnn",
    batch_size: int | None = None,
    mu: int = 7,
    lr: float = 0.03,
    lr_schedule: str = "cosine",
    ema: float = 0.999,
    ema_warmup: bool = False,
    flip: bool | None = None,
    eval_every: int | None = None,
    checkpoint_every: int | None = None,
    random_state: int = 0,
    device: str = "cpu",
    amp: bool = False,
    group_split: str = "reference",
    out: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    **hyperparams: Any,
) -> SSLRun:
    """Train ``method`` on ``data``, score the final EMA model on its test images, write the run.

    ``hyperparams`` are :func:`algorithm_hyperparams`' keywords. With ``out`` (prepared by
    the caller, e.g. :func:`semclust.outputs.run_dir.prepare_run_dir`) the trainer checkpoints
    in ``out/checkpoint`` and logs to ``log.json``; at the end ``metrics.json`` (when there
    are test images), ``run.json`` and ``model/`` are written by the main process.
    ``resume=True`` continues from the checkpoint; ``run.json`` then records the step it resumed
    from (``"resumed_from": {"step": n}``). ``on_start`` receives a one-line summary before
    training starts.
    """
    seed, out_dir = random_state, out  # the CLI's --seed and --out
    from semclust.atomic import write_json
    from semclust.distributed import is_main_process
    from semclust.ssl.longtail import GROUP_NAMES, class_groups, group_accuracies
    from semclust.ssl.saved_model import save_ssl_model
    from semclust.ssl.trainer import CHECKPOINT_DIR, Trainer
    from semclust.store.checkpoint import saved_position

    method = method.strip().lower()
    start = time.perf_counter()
    key = data.defaults
    batch_size = batch_size or DEFAULT_BATCH.get(key, 64)
    for option, value in (("batch_size", batch_size), ("mu", mu)):
        if value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    total_steps = steps or DEFAULT_STEPS.get(key, FALLBACK_STEPS)
    use_flip = (key not in NO_FLIP) if flip is None else flip
    if method in ("cpe", "metaexpert"):
        hyperparams["group_split"] = group_split
    hyper = algorithm_hyperparams(method, total_steps, **hyperparams)
    groups = class_groups(data.labelled_counts, group_split) if data.long_tailed else None
    in_channels = 1 if data.x_lb.ndim == 3 else data.x_lb.shape[-1]
    trainer = Trainer(
        method, network=network, num_classes=data.num_classes, in_channels=in_channels,
        total_steps=total_steps, batch_size=batch_size, mu=mu, lr=lr, lr_schedule=lr_schedule, ema=ema,
        ema_warmup=ema_warmup, eval_every=eval_every, checkpoint_every=checkpoint_every, out_dir=out_dir,
        device=device, seed=seed, flip=use_flip, resume=resume, amp=amp, **hyper,
    )  # fmt: skip
    resumed_from = saved_position(Path(out_dir) / CHECKPOINT_DIR) if resume and out_dir is not None else None
    if on_start is not None:
        on_start(f"{method} on {data.summary}, {network}, {total_steps} steps, device {device}")
    metrics = trainer.fit(data.x_lb, data.y_lb, data.x_ulb, data.x_test, data.y_test, y_ulb=data.y_ulb,
                          progress=progress)  # fmt: skip
    wall = time.perf_counter() - start
    scored = data.x_test is not None and data.y_test is not None
    record: dict[str, Any] = {"method": method, "dataset": data.name, **data.record}
    if scored:
        if groups is not None and f"{GROUP_NAMES[0]}_acc" not in metrics:  # plain FixMatch on a long-tailed split
            metrics.update(group_accuracies(data.y_test, trainer.predict(data.x_test), groups))
        evals = [e for e in trainer.log if "top1" in e]
        best = max(evals, key=lambda e: e["top1"]) if evals else metrics
        record.update({
            "acc": metrics["top1"], "acc_is": "top-1 accuracy of the final EMA model on the test split",
            "top1": metrics["top1"], "best_acc": best["top1"], "best_acc_step": best.get("step"),
            "best_acc_is": f"highest top-1 EMA test accuracy among the {len(evals)} evaluations during training",
        })  # fmt: skip
        if groups is not None:
            record.update({f"{g}_acc": metrics[f"{g}_acc"] for g in GROUP_NAMES})
        record.update({k: metrics[k] for k in ("acc_matched", "nmi", "ari", "n")})
        for name in sorted(metrics):
            if name.startswith(("expert", "assign_acc", "oracle_assign_acc")):
                record[name] = metrics[name]
    record.update({"steps": total_steps, "network": network, "batch_size": batch_size, "mu": mu, "seed": seed,
                   "wall_s": round(wall, 3)})  # fmt: skip
    config = {**trainer.config, **data.config}
    if groups is not None:
        config["groups"] = {g: [int(c) for c in np.flatnonzero(groups == i)] for i, g in enumerate(GROUP_NAMES)}
    run_info: dict[str, Any] = {"command": f"ssl {method}", "config": config, **data.extra, "seed": seed,
                                "resumed": resume}  # fmt: skip
    if resumed_from is not None:
        run_info["resumed_from"] = resumed_from
    run_info.update({"versions": versions(), "wall_time_s": round(wall, 3)})
    if out_dir is not None and is_main_process():  # under torchrun rank 0 alone writes the run files
        out = Path(out_dir)
        if isinstance(network, str):
            save_ssl_model(out / "model", trainer, data.class_names, data.x_lb.shape[1:])
        if scored:
            write_json(out / "metrics.json", record)
        write_json(out / "run.json", run_info)
    return SSLRun(record=record, run_info=run_info, trainer=trainer, data=data)


@renamed_keywords({"seed": "random_state"})
def run_longtail(
    method: str,
    *,
    dataset: str,
    n1: int,
    m1: int | None,
    gamma_l: float = 100.0,
    gamma_u: float | None = None,
    class_order: Any = "random",
    image_size: int | None = None,
    data_root: str | None = None,
    unlabelled_split: str | None = None,
    max_unlabelled: int | None = None,
    random_state: int = 0,
    mu: int = 2,
    lr_schedule: str = "constant",
    predict_expert: int = 1,
    **options: Any,
) -> SSLRun:
    """Train ``method`` on a seeded long-tailed split of ``dataset``'s train split; score on its test split.

    ``gamma_u`` defaults to ``gamma_l`` (consistent); ``1`` is uniform and a negative value
    reverses the unlabelled order. ``unlabelled_split`` (e.g. ``"unlabeled"`` for STL-10) takes
    the unlabelled images from that split of the dataset instead (their class distribution is
    unknown: ``m1``/``gamma_u`` do not apply; ``max_unlabelled`` keeps a seeded subset).
    ``predict_expert`` (CPE) is 0-based. ``lr_schedule="constant"`` is the released long-tailed
    training (USB's ``ImbAlgorithmBase.set_optimizer`` builds no scheduler for CIFAR-10, STL-10
    and SVHN); ``"cosine"`` is FixMatch's decay. ``group_split`` sizes head/medium/tail
    (``"reference"`` 2/2/6, ``"thirds"`` 3/3/4). The other ``options`` are :func:`run_ssl`'s.
    """
    seed = random_state  # the CLI's --seed
    method = method.strip().lower()
    if method not in LT_METHODS:
        raise ValueError(f"unknown long-tailed method {method!r}; valid: {', '.join(LT_METHODS)}")
    data = longtail_data(dataset, n1, m1, gamma_l, gamma_u, class_order, random_state=seed, data_root=data_root,
                         image_size=image_size, unlabelled_split=unlabelled_split,
                         max_unlabelled=max_unlabelled)  # fmt: skip
    if method == "cpe":
        options["predict_expert"] = predict_expert
    return run_ssl(method, data, random_state=seed, mu=mu, lr_schedule=lr_schedule, **options)
