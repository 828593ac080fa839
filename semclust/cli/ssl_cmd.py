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

ssl_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Semi-supervised training (FixMatch).")

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
    labels_per_class: int = typer.Option(..., "--labels-per-class", help="True labels kept per class"),
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
    """Train FixMatch with N true labels per class on the train split; score the EMA model on the test split."""
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


def register(app: typer.Typer) -> None:
    """Add the ``ssl`` sub-app (``semclust ssl fixmatch``) to ``app``; registering again does nothing."""
    if any(group.name == "ssl" for group in app.registered_groups):
        return
    ssl_app.command("fixmatch")(fixmatch_cmd)
    app.add_typer(ssl_app, name="ssl", help="Semi-supervised training (FixMatch).")
