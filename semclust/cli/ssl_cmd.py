"""``semclust ssl fixmatch``: semi-supervised training with N true labels per class, scored on a test split."""

from __future__ import annotations

import platform
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import typer

from semclust.cli.errors import USER_ERRORS, fail
from semclust.cli.progress import console, progress_factory

SSL_HELP = "Semi-supervised training (FixMatch; long-tailed: FixMatch-LA, CPE, Meta-Expert)."
ssl_app = typer.Typer(add_completion=False, no_args_is_help=True, help=SSL_HELP)

# Per-dataset defaults: digits (8x8) is upsampled to 16 px and never flipped (a mirrored digit is
# another symbol); digits also uses a smaller labelled batch (32, mu 7: 256 unlabelled) and 300
# steps so that the default run finishes in a few minutes on 2 CPU cores.
DEFAULT_STEPS = {"digits": 300}
DEFAULT_BATCH = {"digits": 32}
FALLBACK_STEPS = 20000
DEFAULT_IMAGE_SIZE = {"digits": 16}
NO_FLIP = {"digits", "svhn"}
DIGITS_TEST_FRACTION = 0.3
RUN_FILES = ("metrics.json", "log.json", "run.json")


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("semclust", "torch", "numpy", "safetensors"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _load(dataset: str, seed: int, data_root: str | None) -> tuple[Any, Any, Any, Any, str]:
    """``(x_train, y_train, x_test, y_test, how the test split was made)`` as uint8 arrays + labels."""
    from semclust.data.registry import open_source
    from semclust.ssl.data import holdout_split, source_arrays

    name = dataset.removeprefix("dataset:").strip().lower()
    if name == "digits":
        x, y = source_arrays(open_source("dataset:digits"))
        train, test = holdout_split(len(x), DIGITS_TEST_FRACTION, seed)
        return x[train], y[train], x[test], y[test], f"seeded {DIGITS_TEST_FRACTION:.0%} hold-out (seed {seed})"
    x_train, y_train = source_arrays(open_source(f"dataset:{name}:train", data_root=data_root))
    x_test, y_test = source_arrays(open_source(f"dataset:{name}:test", data_root=data_root))
    if y_train is None or y_test is None:
        raise ValueError(f"dataset {name!r} has no labels on its train/test splits")
    return x_train, y_train, x_test, y_test, "test split"


def fixmatch_cmd(
    dataset: str = typer.Option(..., help="fashion-mnist or digits (also cifar10/svhn with --data-root)"),
    labels_per_class: int | None = typer.Option(
        None, "--labels-per-class", help="True labels kept per class (or a long-tailed split with --n1)"
    ),
    n1: int | None = typer.Option(None, "--n1", help="Long-tailed split: labelled images of the largest class"),
    m1: int | None = typer.Option(None, "--m1", help="Long-tailed split: unlabelled images of the largest class"),
    gamma_l: float = typer.Option(100.0, "--gamma-l", help="Long-tailed split: labelled imbalance ratio"),
    gamma_u: float | None = typer.Option(
        None, "--gamma-u", help="Long-tailed split: unlabelled ratio (= gamma-l consistent, 1 uniform, <0 reversed)"
    ),
    class_order: str = typer.Option("random", "--class-order", help="Long-tailed split: random, index or '3,1,...'"),
    steps: int | None = typer.Option(None, help="Training steps [default: digits 300, others 20000]"),
    network: str = typer.Option("cnn", help="cnn (small, fast) or wrn-28-2"),
    batch_size: int | None = typer.Option(None, help="Labelled images per step [default: digits 32, others 64]"),
    mu: int = typer.Option(7, help="Unlabelled images per labelled image in a step"),
    lr: float = typer.Option(0.03, help="Initial learning rate (cosine decay)"),
    threshold: float = typer.Option(0.95, help="Confidence threshold for pseudo-labels"),
    lambda_u: float = typer.Option(1.0, "--lambda-u", help="Weight of the unlabelled loss (0 = supervised only)"),
    ema: float = typer.Option(0.999, help="EMA decay of the evaluated model"),
    image_size: int | None = typer.Option(None, help="Resize images to this size [default: digits 16, others native]"),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Horizontal flips [default: off for digits]"),
    eval_every: int | None = typer.Option(None, help="Evaluate every N steps [default: steps/10]"),
    checkpoint_every: int | None = typer.Option(None, help="Checkpoint every N steps [default: eval-every]"),
    seed: int = typer.Option(0, help="Seed for the labelled split, initialisation, sampling and augmentation"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1"),
    data_root: str | None = typer.Option(None, help="Where local CIFAR/SVHN files live"),
    out: str = typer.Option(..., "--out", help="Directory for metrics.json, log.json, run.json, checkpoint/"),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint"),
    force: bool = typer.Option(False, help="Discard a previous run in --out and start over"),
) -> None:
    """Train FixMatch with N true labels per class (or a long-tailed split, --n1) on the train split; score the
    EMA model on the test split."""
    if n1 is not None:
        if labels_per_class is not None:
            fail("pass either --labels-per-class or --n1 (a long-tailed split), not both")
        opts = {k: v for k, v in locals().items() if k in _LT_PARAMS}
        _run_lt("fixmatch", opts)
        return
    if labels_per_class is None:
        fail("pass --labels-per-class N (balanced labels) or --n1 N1 (a long-tailed split)")
    from semclust.ssl.data import labels_per_class_split, resize_uint8
    from semclust.ssl.trainer import CHECKPOINT_DIR, Trainer
    from semclust.store.atomic import write_json

    out_dir = Path(out)
    name = dataset.removeprefix("dataset:").strip().lower()
    start = time.perf_counter()
    try:
        batch_size = batch_size or DEFAULT_BATCH.get(name, 64)
        if resume and force:
            raise ValueError("--resume and --force contradict each other; pass one")
        for option, value in (("--labels-per-class", labels_per_class), ("--batch-size", batch_size), ("--mu", mu)):
            if value < 1:
                raise ValueError(f"{option} must be at least 1, got {value}")
        if steps is not None and steps < 1:
            raise ValueError(f"--steps must be at least 1, got {steps}")
        if image_size is not None and image_size < 8:
            raise ValueError(f"--image-size must be at least 8, got {image_size}")
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"output {out_dir} exists and is not a directory")
        previous = [f for f in (CHECKPOINT_DIR, *RUN_FILES) if (out_dir / f).exists()]
        if previous and not (resume or force):
            raise ValueError(f"{out_dir} already holds a run ({', '.join(previous)}); pass --resume or --force")
        if force:
            shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
            for f in RUN_FILES:
                (out_dir / f).unlink(missing_ok=True)
        if resume and not (out_dir / CHECKPOINT_DIR).exists():
            console.print(f"no checkpoint in {out_dir}; starting from step 0", highlight=False, markup=False)
        total_steps = steps or DEFAULT_STEPS.get(name, FALLBACK_STEPS)
        size = image_size or DEFAULT_IMAGE_SIZE.get(name)
        use_flip = (name not in NO_FLIP) if flip is None else flip

        x_train, y_train, x_test, y_test, test_split = _load(name, seed, data_root)
        if size is not None:
            x_train, x_test = resize_uint8(x_train, size), resize_uint8(x_test, size)
        lb, _ = labels_per_class_split(y_train, labels_per_class, seed)
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        in_channels = 1 if x_train.ndim == 3 else x_train.shape[-1]
        trainer = Trainer(
            "fixmatch",
            network=network,
            num_classes=num_classes,
            in_channels=in_channels,
            total_steps=total_steps,
            batch_size=batch_size,
            mu=mu,
            lr=lr,
            ema=ema,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            out_dir=out_dir,
            device=device,
            seed=seed,
            flip=use_flip,
            resume=resume,
            threshold=threshold,
            lambda_u=lambda_u,
        )
        console.print(
            f"fixmatch on {name}: {len(lb)} labelled ({labels_per_class}/class), {len(x_train)} unlabelled, "
            f"{len(x_test)} test ({test_split}), {x_train.shape[1]}x{x_train.shape[2]} px, {network}, "
            f"{total_steps} steps, device {device}",
            highlight=False,
            markup=False,
        )
        with progress_factory() as progress:
            advance = progress("fixmatch", total_steps)
            seen = [0]

            def on_step(step: int, logs: dict[str, float]) -> None:
                info = f"loss {logs['loss']:.3f} mask {logs['mask_ratio']:.2f}"
                advance(step - seen[0], info)
                seen[0] = step

            # Unlabelled data is the whole train split, labelled images included (as in FixMatch).
            metrics = trainer.fit(x_train[lb], y_train[lb], x_train, x_test, y_test, y_ulb=y_train, progress=on_step)
    except USER_ERRORS as err:
        fail(str(err))

    wall = time.perf_counter() - start
    record = {
        "method": "fixmatch",
        "dataset": name,
        "acc": metrics["acc"],
        "top1": metrics["top1"],
        "nmi": metrics["nmi"],
        "ari": metrics["ari"],
        "n": metrics["n"],
        "labels_per_class": labels_per_class,
        "n_labelled": int(len(lb)),
        "steps": total_steps,
        "seed": seed,
    }
    write_json(out_dir / "metrics.json", record)
    write_json(
        out_dir / "run.json",
        {
            "command": "ssl fixmatch",
            "config": {
                **trainer.config,
                "dataset": name,
                "labels_per_class": labels_per_class,
                "image_size": [int(x_train.shape[1]), int(x_train.shape[2])],
                "test_split": test_split,
                "n_labelled": int(len(lb)),
                "n_unlabelled": int(len(x_train)),
                "n_test": int(len(x_test)),
                "labelled_indices": [int(i) for i in lb],
            },
            "seed": seed,
            "resumed": resume,
            "versions": _versions(),
            "wall_time_s": round(wall, 3),
        },
    )
    console.print(
        f"fixmatch {name} {labels_per_class} labels/class, {total_steps} steps: test ACC {record['acc']:.4f} "
        f"(top-1 {record['top1']:.4f}) NMI {record['nmi']:.4f} ARI {record['ari']:.4f} on {record['n']} images, "
        f"{wall:.0f}s",
        highlight=False,
        markup=False,
    )
    console.print(f"wrote {out_dir}/metrics.json, log.json, run.json, checkpoint/", highlight=False, markup=False)


# ------------------------------------------------------------ long-tailed runs
LT_DEFAULT_STEPS = {"digits": 300}
# Meta-Expert's released schedule starts the fused losses at iteration 20 x 1024 of 262,144.
FUSE_WARMUP_FRACTION = 20 * 1024 / 262144


def _lt_template(
    dataset: str = typer.Option(..., help="fashion-mnist or digits (also cifar10/svhn/stl10 with --data-root)"),
    n1: int = typer.Option(..., "--n1", help="Labelled images of the largest class"),
    m1: int = typer.Option(..., "--m1", help="Unlabelled images of the (labelled) largest class"),
    gamma_l: float = typer.Option(100.0, "--gamma-l", help="Labelled imbalance ratio N1 / N_C"),
    gamma_u: float | None = typer.Option(
        None, "--gamma-u", help="Unlabelled ratio: = gamma-l consistent, 1 uniform, < 0 reversed [default: gamma-l]"
    ),
    class_order: str = typer.Option("random", "--class-order", help="Tail order: random (seeded), index, or '3,1,...'"),
    steps: int | None = typer.Option(None, help="Training steps [default: digits 300, others 20000]"),
    network: str = typer.Option("cnn", help="cnn (small, fast) or wrn-28-2"),
    batch_size: int | None = typer.Option(None, help="Labelled images per step [default: digits 32, others 64]"),
    mu: int = typer.Option(2, help="Unlabelled images per labelled image in a step (Meta-Expert uses 2)"),
    lr: float = typer.Option(0.03, help="Initial learning rate (cosine decay)"),
    threshold: float = typer.Option(0.95, help="Confidence threshold for pseudo-labels"),
    lambda_u: float = typer.Option(1.0, "--lambda-u", help="Weight of the unlabelled losses"),
    tau: float = typer.Option(2.0, help="Logit-adjustment strength on the labelled loss (fixmatch-la)"),
    taus: str = typer.Option("0,2,4", help="Logit-adjustment taus of the three experts"),
    predict_expert: int = typer.Option(2, "--predict-expert", help="Expert (1-3) whose logits CPE predicts with"),
    fuse_warmup: int | None = typer.Option(
        None, "--fuse-warmup", help="Step from which the assignment losses apply [default: 7.8% of steps]"
    ),
    freeze_assignment: bool = typer.Option(
        False, "--freeze-assignment", help="Never train MFF/DEA (reproduces the released code, for comparison)"
    ),
    ema: float = typer.Option(0.999, help="EMA decay of the evaluated model"),
    image_size: int | None = typer.Option(None, help="Resize images to this size [default: digits 16, others native]"),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Horizontal flips [default: off for digits]"),
    eval_every: int | None = typer.Option(None, help="Evaluate every N steps [default: steps/10]"),
    checkpoint_every: int | None = typer.Option(None, help="Checkpoint every N steps [default: eval-every]"),
    seed: int = typer.Option(0, help="Seed for the split, initialisation, sampling and augmentation"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1"),
    data_root: str | None = typer.Option(None, help="Where local CIFAR/SVHN/STL-10 files live"),
    out: str = typer.Option(..., "--out", help="Directory for metrics.json, log.json, run.json, checkpoint/"),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint"),
    force: bool = typer.Option(False, help="Discard a previous run in --out and start over"),
) -> None:
    """Template holding every long-tailed option; each command exposes the subset it uses."""


_LT_COMMON = (
    "dataset", "n1", "m1", "gamma_l", "gamma_u", "class_order", "steps", "network", "batch_size", "mu", "lr",
    "threshold", "lambda_u", "ema", "image_size", "flip", "eval_every", "checkpoint_every", "seed", "device",
    "data_root", "out", "resume", "force",
)  # fmt: skip
_LT_PARAMS = set(_LT_COMMON)
_LT_EXTRA = {
    "fixmatch": (),
    "fixmatch-la": ("tau",),
    "cpe": ("taus", "predict_expert"),
    "metaexpert": ("taus", "fuse_warmup", "freeze_assignment"),
}
_LT_HELP = {
    "fixmatch-la": "FixMatch with logit adjustment (tau log prior on the labelled loss) on a long-tailed split.",
    "cpe": "CPE: three logit-adjusted experts (tau 0/2/4) with class-group BN on a long-tailed split.",
    "metaexpert": "Meta-Expert: CPE experts + trained feature fusion and dynamic expert assignment (long-tailed).",
}


def _parse_taus(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"--taus must be three numbers like 0,2,4, got {text!r}") from None
    if len(values) != 3:
        raise ValueError(f"--taus must be three numbers like 0,2,4, got {text!r}")
    return values


def _run_lt(method: str, o: dict[str, Any]) -> None:
    """Train ``method`` on a seeded long-tailed split of the train split; write metrics/log/run."""
    import numpy as np

    from semclust.ssl.data import resize_uint8
    from semclust.ssl.longtail import GROUP_NAMES, group_accuracies, make_longtail_split
    from semclust.ssl.trainer import CHECKPOINT_DIR, Trainer
    from semclust.store.atomic import write_json

    out_dir = Path(o["out"])
    name = o["dataset"].removeprefix("dataset:").strip().lower()
    start = time.perf_counter()
    try:
        batch_size = o["batch_size"] or DEFAULT_BATCH.get(name, 64)
        gamma_u = o["gamma_l"] if o.get("gamma_u") is None else o["gamma_u"]
        if o["resume"] and o["force"]:
            raise ValueError("--resume and --force contradict each other; pass one")
        for option, value in (("--n1", o["n1"]), ("--m1", o["m1"]), ("--batch-size", batch_size), ("--mu", o["mu"])):
            if value is None or value < 1:
                raise ValueError(f"{option} must be at least 1, got {value}")
        if o["gamma_l"] < 1 or abs(gamma_u) < 1:
            raise ValueError(f"--gamma-l must be >= 1 and |--gamma-u| >= 1, got {o['gamma_l']} and {gamma_u}")
        if o["steps"] is not None and o["steps"] < 1:
            raise ValueError(f"--steps must be at least 1, got {o['steps']}")
        if o["image_size"] is not None and o["image_size"] < 8:
            raise ValueError(f"--image-size must be at least 8, got {o['image_size']}")
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"output {out_dir} exists and is not a directory")
        previous = [f for f in (CHECKPOINT_DIR, *RUN_FILES) if (out_dir / f).exists()]
        if previous and not (o["resume"] or o["force"]):
            raise ValueError(f"{out_dir} already holds a run ({', '.join(previous)}); pass --resume or --force")
        if o["force"]:
            shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
            for f in RUN_FILES:
                (out_dir / f).unlink(missing_ok=True)
        total_steps = o["steps"] or LT_DEFAULT_STEPS.get(name, FALLBACK_STEPS)
        size = o["image_size"] or DEFAULT_IMAGE_SIZE.get(name)
        use_flip = (name not in NO_FLIP) if o["flip"] is None else o["flip"]
        hyper: dict[str, Any] = {"threshold": o["threshold"], "lambda_u": o["lambda_u"]}
        if method == "fixmatch-la":
            hyper["tau"] = o["tau"]
        if method in ("cpe", "metaexpert"):
            hyper["taus"] = _parse_taus(o["taus"])
        if method == "cpe":
            if o["predict_expert"] not in (1, 2, 3):
                raise ValueError(f"--predict-expert must be 1, 2 or 3, got {o['predict_expert']}")
            hyper["predict_expert"] = o["predict_expert"] - 1
        if method == "metaexpert":
            warm = o["fuse_warmup"]
            hyper["fuse_warmup"] = int(round(FUSE_WARMUP_FRACTION * total_steps)) if warm is None else warm
            hyper["freeze_assignment"] = bool(o["freeze_assignment"])

        x_train, y_train, x_test, y_test, test_split = _load(name, o["seed"], o["data_root"])
        if size is not None:
            x_train, x_test = resize_uint8(x_train, size), resize_uint8(x_test, size)
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        split = make_longtail_split(y_train, o["n1"], o["m1"], o["gamma_l"], gamma_u, o["seed"],
                                    class_order=o["class_order"], num_classes=num_classes)  # fmt: skip
        lb, ulb = split.labelled, split.unlabelled
        groups = split.groups
        in_channels = 1 if x_train.ndim == 3 else x_train.shape[-1]
        trainer = Trainer(
            method, network=o["network"], num_classes=num_classes, in_channels=in_channels,
            total_steps=total_steps, batch_size=batch_size, mu=o["mu"], lr=o["lr"], ema=o["ema"],
            eval_every=o["eval_every"], checkpoint_every=o["checkpoint_every"], out_dir=out_dir,
            device=o["device"], seed=o["seed"], flip=use_flip, resume=o["resume"], **hyper,
        )  # fmt: skip
        console.print(
            f"{method} on {name}-LT: {len(lb)} labelled (N1 {o['n1']}, gamma_l {o['gamma_l']:g}), {len(ulb)} "
            f"unlabelled (M1 {o['m1']}, gamma_u {gamma_u:g}), {len(x_test)} test ({test_split}), {o['network']}, "
            f"{total_steps} steps, device {o['device']}",
            highlight=False,
            markup=False,
        )
        with progress_factory() as progress:
            advance = progress(method, total_steps)
            seen = [0]

            def on_step(step: int, logs: dict[str, float]) -> None:
                advance(step - seen[0], f"loss {logs['loss']:.3f} mask {logs['mask_ratio']:.2f}")
                seen[0] = step

            metrics = trainer.fit(x_train[lb], y_train[lb], x_train[ulb], x_test, y_test, y_ulb=y_train[ulb],
                                  progress=on_step)  # fmt: skip
    except USER_ERRORS as err:
        fail(str(err))

    wall = time.perf_counter() - start
    if f"{GROUP_NAMES[0]}_acc" not in metrics:  # plain FixMatch: groups from the split's labelled counts
        metrics.update(group_accuracies(y_test, trainer.predict(x_test), groups))
    evals = [e for e in trainer.log if "top1" in e]
    best = max(evals, key=lambda e: e["top1"]) if evals else metrics
    record: dict[str, Any] = {
        "method": method,
        "dataset": f"{name}-lt",
        "n1": o["n1"], "m1": o["m1"], "gamma_l": o["gamma_l"], "gamma_u": gamma_u,
        "acc": metrics["top1"],
        "acc_is": "top-1 accuracy of the final EMA model on the test split",
        "best_acc": best["top1"],
        "best_acc_step": best.get("step"),
        "best_acc_is": f"highest top-1 EMA test accuracy among the {len(evals)} evaluations during training",
        "head_acc": metrics["head_acc"], "medium_acc": metrics["medium_acc"], "tail_acc": metrics["tail_acc"],
        "acc_matched": metrics["acc"], "nmi": metrics["nmi"], "ari": metrics["ari"], "n": metrics["n"],
        "n_labelled": int(len(lb)), "n_unlabelled": int(len(ulb)),
        "steps": total_steps, "seed": o["seed"],
    }  # fmt: skip
    for key in sorted(metrics):
        if key.startswith("expert") or key.startswith(("assign_acc", "oracle_assign_acc")):
            record[key] = metrics[key]
    write_json(out_dir / "metrics.json", record)
    write_json(
        out_dir / "run.json",
        {
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
            "seed": o["seed"],
            "resumed": o["resume"],
            "versions": _versions(),
            "wall_time_s": round(wall, 3),
        },
    )

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    console.print(
        f"{method} {name}-LT gamma_u {gamma_u:g}, {total_steps} steps: final EMA acc {fmt(record['acc'])} "
        f"(best during training {fmt(record['best_acc'])} at step {record['best_acc_step']}), head "
        f"{fmt(record['head_acc'])} medium {fmt(record['medium_acc'])} tail {fmt(record['tail_acc'])}, {wall:.0f}s",
        highlight=False,
        markup=False,
    )
    console.print(f"wrote {out_dir}/metrics.json, log.json, run.json, checkpoint/", highlight=False, markup=False)


def _lt_command(method: str) -> Any:
    """A typer command for ``method`` exposing the common long-tailed options plus its own."""
    import inspect

    keep = set(_LT_COMMON) | set(_LT_EXTRA[method])
    template = inspect.signature(_lt_template, eval_str=True)
    params = [p for p in template.parameters.values() if p.name in keep]

    def command(**kwargs: Any) -> None:
        _run_lt(method, kwargs)

    command.__signature__ = template.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = _LT_HELP[method]
    command.__name__ = f"{method.replace('-', '_')}_cmd"
    return command


def register(app: typer.Typer) -> None:
    """Add the ``ssl`` sub-app (``semclust ssl fixmatch``) to ``app``; registering again does nothing."""
    if any(group.name == "ssl" for group in app.registered_groups):
        return
    ssl_app.command("fixmatch")(fixmatch_cmd)
    for method in ("fixmatch-la", "cpe", "metaexpert"):
        ssl_app.command(method)(_lt_command(method))
    app.add_typer(ssl_app, name="ssl", help=SSL_HELP)
