"""``semclust ssl fixmatch``: semi-supervised training with N true labels per class, scored on a test split."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import typer

from semclust.cli.errors import USER_ERRORS, fail
from semclust.cli.progress import console, progress_factory
from semclust.ssl.experiment import (
    DEFAULT_BATCH,
    DEFAULT_IMAGE_SIZE,
    FALLBACK_STEPS,
    LT_DEFAULT_STEPS,
    NO_FLIP,
    load_train_test,
    versions,
)

SSL_HELP = "Semi-supervised training (FixMatch; long-tailed: FixMatch-LA, CPE, Meta-Expert)."
ssl_app = typer.Typer(add_completion=False, no_args_is_help=True, help=SSL_HELP)

# digits: 300 steps by default so that a first run finishes in a few minutes on 2 CPU cores.
DEFAULT_STEPS = {"digits": 300}
RUN_FILES = ("metrics.json", "log.json", "run.json")


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
    lr: float = typer.Option(0.03, help="Initial learning rate"),
    lr_schedule: str | None = typer.Option(
        None, "--lr-schedule",
        help="cosine (FixMatch's 7/16 decay) or constant [default: cosine; constant with --n1, as the released "
        "long-tailed runs]",
    ),  # fmt: skip
    threshold: float = typer.Option(0.95, help="Confidence threshold for pseudo-labels"),
    lambda_u: float = typer.Option(1.0, "--lambda-u", help="Weight of the unlabelled loss (0 = supervised only)"),
    ema: float = typer.Option(0.999, help="EMA decay of the evaluated model (constant, as FixMatch/USB)"),
    ema_warmup: bool = typer.Option(
        False, "--ema-warmup", help="Our variant: decay min(ema, (1+k)/(10+k)) at step k instead of constant"
    ),
    image_size: int | None = typer.Option(None, help="Resize images to this size [default: digits 16, others native]"),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Horizontal flips [default: off for digits]"),
    eval_every: int | None = typer.Option(None, help="Evaluate every N steps [default: steps/10]"),
    checkpoint_every: int | None = typer.Option(None, help="Checkpoint every N steps [default: eval-every]"),
    seed: int = typer.Option(0, help="Seed for the labelled split, initialisation, sampling and augmentation"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1"),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (bfloat16 on CPU, float16 on CUDA) for training"),
    data_root: str | None = typer.Option(None, help="Where local CIFAR/SVHN files live"),
    unlabelled_split: str | None = typer.Option(
        None, "--unlabelled-split", help="Long-tailed split: unlabelled images from this split (stl10: unlabeled)"
    ),
    max_unlabelled: int | None = typer.Option(
        None, "--max-unlabelled", help="With --unlabelled-split: a seeded subset of this many images"
    ),
    out: str = typer.Option(..., "--out", help="Directory for metrics.json, log.json, run.json, checkpoint/"),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint"),
    force: bool = typer.Option(False, help="Discard a previous run in --out and start over"),
    backbone: str = typer.Option(
        "scratch", "--backbone",
        help="scratch (train --network on the pixels) or frozen (a head on the offline encoder's visual features, "
        "fed by cached augmented views; unlabelled: a seeded --max-unlabelled subset, default 10000)",
    ),  # fmt: skip
) -> None:
    """Train FixMatch with N true labels per class (or a long-tailed split, --n1) on the train split; score the
    EMA model on the test split."""
    if n1 is not None:
        if labels_per_class is not None:
            fail("pass either --labels-per-class or --n1 (a long-tailed split), not both")
        opts = {k: v for k, v in locals().items() if k in _LT_PARAMS}
        opts["lr_schedule"] = lr_schedule or "constant"
        _run_lt("fixmatch", opts)
        return
    if labels_per_class is None:
        fail("pass --labels-per-class N (balanced labels) or --n1 N1 (a long-tailed split)")
    if backbone != "scratch":
        _fixmatch_frozen(backbone, locals())
        return
    from semclust.distributed import is_main_process
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

        x_train, y_train, x_test, y_test, test_split = load_train_test(name, seed, data_root)
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
            lr_schedule=lr_schedule or "cosine",
            ema=ema,
            ema_warmup=ema_warmup,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            out_dir=out_dir,
            device=device,
            seed=seed,
            flip=use_flip,
            resume=resume,
            threshold=threshold,
            lambda_u=lambda_u,
            amp=amp,
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
    if not is_main_process():
        return  # under torchrun rank 0 writes the run files and reports
    record = {
        "method": "fixmatch",
        "dataset": name,
        "acc": metrics["top1"],
        "acc_is": "top-1 accuracy of the final EMA model on the test split",
        "top1": metrics["top1"],
        "acc_matched": metrics["acc_matched"],
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
            "versions": versions(),
            "wall_time_s": round(wall, 3),
        },
    )
    console.print(
        f"fixmatch {name} {labels_per_class} labels/class, {total_steps} steps: test top-1 acc {record['acc']:.4f} "
        f"(matched {record['acc_matched']:.4f}) NMI {record['nmi']:.4f} ARI {record['ari']:.4f} "
        f"on {record['n']} images, {wall:.0f}s",
        highlight=False,
        markup=False,
    )
    console.print(f"wrote {out_dir}/metrics.json, log.json, run.json, checkpoint/", highlight=False, markup=False)


def _fixmatch_frozen(backbone: str, o: dict[str, Any]) -> None:
    from semclust.cli.ssl_frozen import run_frozen_fixmatch

    try:
        if backbone != "frozen":
            raise ValueError(f"--backbone must be scratch or frozen, got {backbone!r}")
        name = o["dataset"].removeprefix("dataset:").strip().lower()
        if (Path(o["out"]) / "metrics.json").exists() and not o["force"]:
            raise ValueError(f"{o['out']} already holds a run (metrics.json); pass --force")
        run_frozen_fixmatch(
            dataset=name, labels_per_class=o["labels_per_class"], steps=o["steps"],
            batch_size=o["batch_size"] or 64, mu=o["mu"], lr=o["lr"], threshold=o["threshold"],
            lambda_u=o["lambda_u"], ema=o["ema"], flip=(name not in NO_FLIP) if o["flip"] is None else o["flip"],
            seed=o["seed"], device=o["device"], data_root=o["data_root"], max_unlabelled=o["max_unlabelled"],
            out_dir=Path(o["out"]),
        )  # fmt: skip
    except USER_ERRORS as err:
        fail(str(err))


# ------------------------------------------------------------ long-tailed runs


def _lt_template(
    dataset: str = typer.Option(..., help="fashion-mnist or digits (also cifar10/svhn/stl10 with --data-root)"),
    n1: int = typer.Option(..., "--n1", help="Labelled images of the largest class"),
    m1: int | None = typer.Option(None, "--m1", help="Unlabelled images of the (labelled) largest class"),
    gamma_l: float = typer.Option(100.0, "--gamma-l", help="Labelled imbalance ratio N1 / N_C"),
    gamma_u: float | None = typer.Option(
        None, "--gamma-u", help="Unlabelled ratio: = gamma-l consistent, 1 uniform, < 0 reversed [default: gamma-l]"
    ),
    class_order: str = typer.Option("random", "--class-order", help="Tail order: random (seeded), index, or '3,1,...'"),
    steps: int | None = typer.Option(None, help="Training steps [default: digits 300, others 20000]"),
    network: str = typer.Option("cnn", help="cnn (small, fast) or wrn-28-2"),
    batch_size: int | None = typer.Option(None, help="Labelled images per step [default: digits 32, others 64]"),
    mu: int = typer.Option(2, help="Unlabelled images per labelled image in a step (Meta-Expert uses 2)"),
    lr: float = typer.Option(0.03, help="Learning rate"),
    lr_schedule: str = typer.Option(
        "constant", "--lr-schedule", help="constant (the released long-tailed runs) or cosine (FixMatch's decay)"
    ),
    threshold: float = typer.Option(0.95, help="Confidence threshold for pseudo-labels"),
    lambda_u: float = typer.Option(1.0, "--lambda-u", help="Weight of the unlabelled losses"),
    tau: float = typer.Option(2.0, help="Logit-adjustment strength on the labelled loss (fixmatch-la)"),
    taus: str = typer.Option("0,2,4", help="Logit-adjustment taus of the three experts"),
    predict_expert: int = typer.Option(2, "--predict-expert", help="Expert (1-3) whose logits CPE predicts with"),
    fuse_warmup: int | None = typer.Option(
        None, "--fuse-warmup", help="Step from which the fused and assignment losses apply [default: 7.8% of steps]"
    ),
    freeze_assignment: bool = typer.Option(
        False, "--freeze-assignment", help="Never train MFF/DEA (reproduces the released code, for comparison)"
    ),
    fused_losses: bool = typer.Option(
        True, "--fused-losses/--assignment-losses-only",
        help="The released code's fused CE/consistency losses besides the assignment ones",
    ),
    group_split: str = typer.Option(
        "reference", "--group-split", help="Head/medium/tail sizes: reference (2/2/6 of ten) or thirds (3/3/4)"
    ),
    ema: float = typer.Option(0.999, help="EMA decay of the evaluated model (constant, as FixMatch/USB)"),
    ema_warmup: bool = typer.Option(
        False, "--ema-warmup", help="Our variant: decay min(ema, (1+k)/(10+k)) at step k instead of constant"
    ),
    image_size: int | None = typer.Option(None, help="Resize images to this size [default: digits 16, others native]"),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Horizontal flips [default: off for digits]"),
    eval_every: int | None = typer.Option(None, help="Evaluate every N steps [default: steps/10]"),
    checkpoint_every: int | None = typer.Option(None, help="Checkpoint every N steps [default: eval-every]"),
    seed: int = typer.Option(0, help="Seed for the split, initialisation, sampling and augmentation"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1"),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (bfloat16 on CPU, float16 on CUDA) for training"),
    data_root: str | None = typer.Option(None, help="Where local CIFAR/SVHN/STL-10 files live"),
    unlabelled_split: str | None = typer.Option(
        None, "--unlabelled-split", help="Take unlabelled images from this split (stl10: unlabeled) instead of --m1"
    ),
    max_unlabelled: int | None = typer.Option(
        None, "--max-unlabelled", help="With --unlabelled-split: a seeded subset of this many images"
    ),
    out: str = typer.Option(..., "--out", help="Directory for metrics.json, log.json, run.json, checkpoint/"),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint"),
    force: bool = typer.Option(False, help="Discard a previous run in --out and start over"),
) -> None:
    """Template holding every long-tailed option; each command exposes the subset it uses."""


_LT_COMMON = (
    "dataset", "n1", "m1", "gamma_l", "gamma_u", "class_order", "steps", "network", "batch_size", "mu", "lr",
    "lr_schedule", "threshold", "lambda_u", "ema", "ema_warmup", "image_size", "flip", "eval_every",
    "checkpoint_every", "seed", "device",
    "amp", "data_root", "unlabelled_split", "max_unlabelled", "out", "resume", "force",
)  # fmt: skip
_LT_PARAMS = set(_LT_COMMON)
_LT_EXTRA = {
    "fixmatch": (),
    "fixmatch-la": ("tau",),
    "cpe": ("taus", "predict_expert", "group_split"),
    "metaexpert": ("taus", "fuse_warmup", "freeze_assignment", "fused_losses", "group_split"),
}
_LT_HELP = {
    "fixmatch-la": "FixMatch with logit adjustment (tau log prior on the labelled loss) on a long-tailed split.",
    "cpe": "CPE: three logit-adjusted experts (tau 0/2/4) with class-group BN on a long-tailed split.",
    "metaexpert": "Meta-Expert: CPE experts + trained feature fusion and dynamic expert assignment (long-tailed).",
}


def _parse_taus(text: str) -> list[float]:
    from semclust.ssl.experiment import parse_taus

    try:
        return parse_taus(text)
    except ValueError as err:
        raise ValueError(f"--{err}") from None  # named as the flag the user typed


def _run_lt(method: str, o: dict[str, Any]) -> None:
    """Train ``method`` on a seeded long-tailed split of the train split; write metrics/log/run."""
    from semclust.distributed import is_main_process
    from semclust.ssl.experiment import run_longtail
    from semclust.ssl.trainer import CHECKPOINT_DIR

    out_dir = Path(o["out"])
    try:
        if o["resume"] and o["force"]:
            raise ValueError("--resume and --force contradict each other; pass one")
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"output {out_dir} exists and is not a directory")
        previous = [f for f in (CHECKPOINT_DIR, *RUN_FILES) if (out_dir / f).exists()]
        if previous and not (o["resume"] or o["force"]):
            raise ValueError(f"{out_dir} already holds a run ({', '.join(previous)}); pass --resume or --force")
        if o["force"]:
            shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
            for f in RUN_FILES:
                (out_dir / f).unlink(missing_ok=True)
        if o.get("m1") is None and o.get("unlabelled_split") is None:
            raise ValueError("pass --m1 M1 (unlabelled images of the largest class) or --unlabelled-split SPLIT")
        for option in ("n1", "m1", "mu", "batch_size", "steps", "max_unlabelled"):
            if o.get(option) is not None and o[option] < 1:
                raise ValueError(f"--{option.replace('_', '-')} must be at least 1, got {o[option]}")
        extra: dict[str, Any] = {}
        if "tau" in o:
            extra["tau"] = o["tau"]
        if "taus" in o:
            extra["taus"] = _parse_taus(o["taus"])
        if "predict_expert" in o:
            if o["predict_expert"] not in (1, 2, 3):
                raise ValueError(f"--predict-expert must be 1, 2 or 3, got {o['predict_expert']}")
            extra["predict_expert"] = o["predict_expert"] - 1
        for key in ("fuse_warmup", "freeze_assignment", "fused_losses", "group_split"):
            if key in o:
                extra[key] = o[key]
        with progress_factory() as progress:
            advance = progress(method, o["steps"] or LT_DEFAULT_STEPS.get(o["dataset"].lower(), FALLBACK_STEPS))
            seen = [0]

            def on_start(summary: str) -> None:
                console.print(summary, highlight=False, markup=False)

            def on_step(step: int, logs: dict[str, float]) -> None:
                advance(step - seen[0], f"loss {logs['loss']:.3f} mask {logs['mask_ratio']:.2f}")
                seen[0] = step

            options = {k: o[k] for k in _LT_COMMON if k not in ("out", "force") and k in o}
            run = run_longtail(method, **options, **extra, out_dir=out_dir, progress=on_step, on_start=on_start)
    except USER_ERRORS as err:
        fail(str(err))
    if not is_main_process():
        return  # under torchrun rank 0 wrote the run files and reports
    record = run.record

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    console.print(
        f"{method} {record['dataset']} "
        + (f"gamma_u {record['gamma_u']:g}" if record["gamma_u"] is not None else f"{record['unlabelled_split']} split")
        + f", {record['steps']} steps: final EMA acc "
        f"{fmt(record['acc'])} (best during training {fmt(record['best_acc'])} at step {record['best_acc_step']}), "
        f"head {fmt(record['head_acc'])} medium {fmt(record['medium_acc'])} tail {fmt(record['tail_acc'])}, "
        f"{record['wall_s']:.0f}s",
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
