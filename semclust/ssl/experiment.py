"""Long-tailed semi-supervised experiments: one function behind ``semclust ssl fixmatch|fixmatch-la|cpe|metaexpert``.

:func:`run_longtail` loads a dataset's train/test splits, draws the seeded long-tailed split,
trains the algorithm with :class:`~semclust.ssl.trainer.Trainer` and returns the metrics record
(the content of ``metrics.json``) together with the run description (``run.json``). The CLI and
the benchmark (``benchmarks/metaexpert.py``) both call it, so they measure the same thing.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import numpy as np

LT_METHODS = ("fixmatch", "fixmatch-la", "cpe", "metaexpert")
# Per-dataset defaults: digits (8x8) is upsampled to 16 px and never flipped (a mirrored digit is
# another symbol); digits also uses a smaller labelled batch so a default run takes minutes on CPU.
DEFAULT_BATCH = {"digits": 32}
DEFAULT_IMAGE_SIZE = {"digits": 16}
NO_FLIP = {"digits", "svhn"}
DIGITS_TEST_FRACTION = 0.3
LT_DEFAULT_STEPS = {"digits": 300}
FALLBACK_STEPS = 20000
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


def load_train_test(dataset: str, seed: int = 0, data_root: str | None = None) -> tuple[Any, Any, Any, Any, str]:
    """``(x_train, y_train, x_test, y_test, how the test split was made)``: uint8 images + int labels.

    digits has no official split: a seeded 30 % hold-out is the test set.
    """
    from semclust.data.registry import open_source
    from semclust.ssl.data import holdout_split, source_arrays

    name = dataset.removeprefix("dataset:").strip().lower()
    if name == "digits":
        x, y = source_arrays(open_source("dataset:digits"))
        y = cast(np.ndarray, y)  # digits always has labels
        train, test = holdout_split(len(x), DIGITS_TEST_FRACTION, seed)
        return x[train], y[train], x[test], y[test], f"seeded {DIGITS_TEST_FRACTION:.0%} hold-out (seed {seed})"
    x_train, y_train = source_arrays(open_source(f"dataset:{name}:train", data_root=data_root))
    x_test, y_test = source_arrays(open_source(f"dataset:{name}:test", data_root=data_root))
    if y_train is None or y_test is None:
        raise ValueError(f"dataset {name!r} has no labels on its train/test splits")
    return x_train, y_train, x_test, y_test, "test split"


def parse_taus(taus: str | Sequence[float]) -> list[float]:
    """Three logit-adjustment strengths from ``"0,2,4"`` or a sequence."""
    try:
        values = [float(t) for t in (taus.replace(",", " ").split() if isinstance(taus, str) else taus)]
    except (TypeError, ValueError):
        raise ValueError(f"taus must be three numbers like 0,2,4, got {taus!r}") from None
    if len(values) != 3:
        raise ValueError(f"taus must be three numbers like 0,2,4, got {taus!r}")
    return values


def load_unlabelled(dataset: str, split: str, data_root: str | None, max_images: int | None, seed: int) -> np.ndarray:
    """uint8 images of ``dataset``'s ``split`` (labels ignored), a seeded subset of ``max_images``."""
    from semclust.data.registry import open_source
    from semclust.ssl.data import source_arrays

    source = open_source(f"dataset:{dataset}:{split}", data_root=data_root)
    if max_images is None or max_images >= len(source):
        return source_arrays(source)[0]
    keep = np.sort(np.random.default_rng(seed + 17).choice(len(source), size=max_images, replace=False))
    return np.stack([np.asarray(source.load(int(i)).convert("RGB"), dtype=np.uint8) for i in keep])


@dataclass
class LongTailRun:
    """What :func:`run_longtail` returns: the metrics record, the run description and the trainer."""

    record: dict[str, Any]
    run_info: dict[str, Any]
    trainer: Any


def run_longtail(
    method: str,
    *,
    dataset: str,
    n1: int,
    m1: int | None,
    gamma_l: float = 100.0,
    gamma_u: float | None = None,
    class_order: Any = "random",
    steps: int | None = None,
    network: str = "cnn",
    batch_size: int | None = None,
    mu: int = 2,
    lr: float = 0.03,
    threshold: float = 0.95,
    lambda_u: float = 1.0,
    tau: float = 2.0,
    taus: str | Sequence[float] = (0.0, 2.0, 4.0),
    predict_expert: int = 1,
    fuse_warmup: int | None = None,
    freeze_assignment: bool = False,
    fused_losses: bool = True,
    group_split: str = "reference",
    lr_schedule: str = "constant",
    ema: float = 0.999,
    ema_warmup: bool = False,
    image_size: int | None = None,
    flip: bool | None = None,
    eval_every: int | None = None,
    checkpoint_every: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    amp: bool = False,
    data_root: str | None = None,
    unlabelled_split: str | None = None,
    max_unlabelled: int | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> LongTailRun:
    """Train ``method`` on a seeded long-tailed split of ``dataset``'s train split; score on its test split.

    ``gamma_u`` defaults to ``gamma_l`` (consistent); ``1`` is uniform and a negative value
    reverses the unlabelled order. ``unlabelled_split`` (e.g. ``"unlabeled"`` for STL-10) takes
    the unlabelled images from that split of the dataset instead (their class distribution is
    unknown: ``m1``/``gamma_u`` do not apply; ``max_unlabelled`` keeps a seeded subset).
    ``predict_expert`` (CPE) is 0-based. ``lr_schedule="constant"`` is the released long-tailed
    training (USB's ``ImbAlgorithmBase.set_optimizer`` builds no scheduler for CIFAR-10, STL-10
    and SVHN); ``"cosine"`` is FixMatch's decay. ``group_split`` sizes head/medium/tail
    (``"reference"`` 2/2/6, ``"thirds"`` 3/3/4). With ``out_dir`` the
    trainer checkpoints there and ``metrics.json``/``run.json`` are written at the end;
    ``resume=True`` continues from its checkpoint. ``on_start`` receives a one-line summary of
    the split before training starts.
    """
    from semclust.atomic import write_json
    from semclust.distributed import is_main_process
    from semclust.ssl.data import resize_uint8
    from semclust.ssl.longtail import GROUP_NAMES, class_groups, group_accuracies, make_longtail_split
    from semclust.ssl.trainer import Trainer

    method = method.strip().lower()
    if method not in LT_METHODS:
        raise ValueError(f"unknown long-tailed method {method!r}; valid: {', '.join(LT_METHODS)}")
    name = dataset.removeprefix("dataset:").strip().lower()
    start = time.perf_counter()
    batch_size = batch_size or DEFAULT_BATCH.get(name, 64)
    if unlabelled_split is not None:
        if m1 is not None or gamma_u is not None:
            raise ValueError(
                f"with unlabelled split {unlabelled_split!r} the unlabelled class counts are unknown: "
                "leave m1 and gamma_u unset (max_unlabelled limits the number of images)"
            )
        if max_unlabelled is not None and max_unlabelled < 1:
            raise ValueError(f"max_unlabelled must be at least 1, got {max_unlabelled}")
        m1, gamma_u = 0, 1.0
    gamma_u = gamma_l if gamma_u is None else gamma_u
    counts_to_check: list[tuple[str, int | None]] = [("n1", n1), ("batch_size", batch_size), ("mu", mu)]
    if unlabelled_split is None:
        counts_to_check.insert(1, ("m1", m1))
    for option, value in counts_to_check:
        if value is None or value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    assert m1 is not None
    if gamma_l < 1 or abs(gamma_u) < 1:
        raise ValueError(f"gamma_l must be >= 1 and |gamma_u| >= 1, got {gamma_l} and {gamma_u}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if image_size is not None and image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    total_steps = steps or LT_DEFAULT_STEPS.get(name, FALLBACK_STEPS)
    size = image_size or DEFAULT_IMAGE_SIZE.get(name)
    use_flip = (name not in NO_FLIP) if flip is None else flip
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

    x_train, y_train, x_test, y_test, test_split = load_train_test(name, seed, data_root)
    x_extra = None
    if unlabelled_split is not None:
        x_extra = load_unlabelled(name, unlabelled_split, data_root, max_unlabelled, seed)
    if size is not None:
        x_train, x_test = resize_uint8(x_train, size), resize_uint8(x_test, size)
        x_extra = None if x_extra is None else resize_uint8(x_extra, size)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    split = make_longtail_split(y_train, n1, m1, gamma_l, gamma_u, seed, class_order=class_order,
                                num_classes=num_classes)  # fmt: skip
    lb, ulb = split.labelled, split.unlabelled
    groups = class_groups(split.labelled_counts, group_split)
    if x_extra is not None:
        if x_extra.shape[1:] != x_train.shape[1:]:
            raise ValueError(
                f"unlabelled split {unlabelled_split!r} images are {x_extra.shape[1:]}, "
                f"train images {x_train.shape[1:]}"
            )
        x_ulb, y_ulb = x_extra, None
    else:
        x_ulb, y_ulb = x_train[ulb], y_train[ulb]
    in_channels = 1 if x_train.ndim == 3 else x_train.shape[-1]
    trainer = Trainer(
        method, network=network, num_classes=num_classes, in_channels=in_channels,
        total_steps=total_steps, batch_size=batch_size, mu=mu, lr=lr, lr_schedule=lr_schedule, ema=ema,
        ema_warmup=ema_warmup,
        eval_every=eval_every, checkpoint_every=checkpoint_every, out_dir=out_dir,
        device=device, seed=seed, flip=use_flip, resume=resume, amp=amp, **hyper,
    )  # fmt: skip
    if on_start is not None:
        on_start(
            f"{method} on {name}-LT: {len(lb)} labelled (N1 {n1}, gamma_l {gamma_l:g}), {len(x_ulb)} unlabelled "
            + (f"(M1 {m1}, gamma_u {gamma_u:g})" if x_extra is None else f"(the {unlabelled_split} split)")
            + f", {len(x_test)} test ({test_split}), {network}, "
            f"{total_steps} steps, device {device}"
        )
    metrics = trainer.fit(x_train[lb], y_train[lb], x_ulb, x_test, y_test, y_ulb=y_ulb, progress=progress)
    wall = time.perf_counter() - start
    if f"{GROUP_NAMES[0]}_acc" not in metrics:  # plain FixMatch: groups from the split's labelled counts
        metrics.update(group_accuracies(y_test, trainer.predict(x_test), groups))
    evals = [e for e in trainer.log if "top1" in e]
    best = max(evals, key=lambda e: e["top1"]) if evals else metrics
    record: dict[str, Any] = {
        "method": method,
        "dataset": f"{name}-lt",
        "n1": n1, "m1": m1 if x_extra is None else None, "gamma_l": gamma_l,
        "gamma_u": gamma_u if x_extra is None else None, "unlabelled_split": unlabelled_split,
        "acc": metrics["top1"],
        "acc_is": "top-1 accuracy of the final EMA model on the test split",
        "best_acc": best["top1"],
        "best_acc_step": best.get("step"),
        "best_acc_is": f"highest top-1 EMA test accuracy among the {len(evals)} evaluations during training",
        "head_acc": metrics["head_acc"], "medium_acc": metrics["medium_acc"], "tail_acc": metrics["tail_acc"],
        "acc_matched": metrics["acc_matched"], "nmi": metrics["nmi"], "ari": metrics["ari"], "n": metrics["n"],
        "n_labelled": int(len(lb)), "n_unlabelled": int(len(x_ulb)),
        "steps": total_steps, "network": network, "batch_size": batch_size, "mu": mu, "seed": seed,
        "wall_s": round(wall, 3),
    }  # fmt: skip
    for key in sorted(metrics):
        if key.startswith("expert") or key.startswith(("assign_acc", "oracle_assign_acc")):
            record[key] = metrics[key]
    run_info = {
        "command": f"ssl {method}",
        "config": {
            **trainer.config,
            "dataset": name,
            "image_size": [int(x_train.shape[1]), int(x_train.shape[2])],
            "test_split": test_split,
            "n_test": int(len(x_test)),
            "groups": {g: [int(c) for c in np.flatnonzero(groups == i)] for i, g in enumerate(GROUP_NAMES)},
        },
        "split": split.to_dict(),
        "seed": seed,
        "resumed": resume,
        "versions": versions(),
        "wall_time_s": round(wall, 3),
    }
    if out_dir is not None and is_main_process():  # under torchrun rank 0 alone writes the run files
        write_json(Path(out_dir) / "metrics.json", record)
        write_json(Path(out_dir) / "run.json", run_info)
    return LongTailRun(record=record, run_info=run_info, trainer=trainer)
