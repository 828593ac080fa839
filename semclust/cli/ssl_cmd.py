"""``semclust ssl fixmatch|fixmatch-la|cpe|metaexpert``: semi-supervised training, scored on a test split.

Every command is one option template (:func:`_template`) cut to the options the method uses,
and one runner (:func:`_run`): it checks the options (errors name the flag), prepares the run
directory (:func:`semclust.outputs.run_dir.prepare_run_dir`, kind ``ssl``), builds the data
(a balanced split, a long-tailed split, or the user's folders) and hands it to
:func:`semclust.ssl.experiment.run_ssl`. A new option is one parameter of the template, its
name in :data:`_COMMON` or :data:`_OWN`, and where :func:`_run` passes it on.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer

from semclust.cli.errors import USER_ERRORS, fail
from semclust.cli.interrupt import print_resume, run_progress
from semclust.cli.progress import console
from semclust.ssl.experiment import DEFAULT_STEPS, FALLBACK_STEPS

SSL_HELP = "Semi-supervised training (FixMatch; long-tailed: FixMatch-LA, CPE, Meta-Expert)."
ssl_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, help=SSL_HELP)


def _template(
    dataset: str | None = typer.Option(
        None, help="fashion-mnist or digits (also cifar10/svhn/stl10 with --data-root); or use --labelled"
    ),
    labelled: str | None = typer.Option(
        None, "--labelled", help="Your labelled images: a folder with one subfolder of a few images per class"
    ),
    unlabelled: str | None = typer.Option(
        None, "--unlabelled", help="With --labelled: unlabelled images, a folder or dataset:NAME[:split]"
    ),
    test: str | None = typer.Option(
        None, "--test", help="With --labelled: test images, one subfolder per class (scores the run)"
    ),
    labels_per_class: int | None = typer.Option(
        None, "--labels-per-class", help="Balanced split: true labels kept per class of --dataset"
    ),
    n1: int | None = typer.Option(None, "--n1", help="Long-tailed split: labelled images of the largest class"),
    m1: int | None = typer.Option(None, "--m1", help="Long-tailed split: unlabelled images of the largest class"),
    gamma_l: float = typer.Option(100.0, "--gamma-l", help="Long-tailed split: labelled imbalance ratio N1 / N_C"),
    gamma_u: float | None = typer.Option(
        None, "--gamma-u", help="Long-tailed split: unlabelled ratio (= gamma-l consistent, 1 uniform, <0 reversed)"
    ),
    class_order: str = typer.Option("random", "--class-order", help="Long-tailed split: random, index or '3,1,...'"),
    steps: int | None = typer.Option(None, help="Training steps [default: digits 300, --labelled 1000, others 20000]"),
    network: str = typer.Option("cnn", help="cnn (small, fast) or wrn-28-2"),
    batch_size: int | None = typer.Option(
        None, help="Labelled images per step [default: digits 32, --labelled 16, others 64]"
    ),
    mu: int = typer.Option(7, help="Unlabelled images per labelled image in a step"),
    lr: float = typer.Option(0.03, help="Initial learning rate"),
    lr_schedule: str | None = typer.Option(
        None, "--lr-schedule",
        help="cosine (FixMatch's 7/16 decay) or constant [default: constant for --n1 and the long-tailed methods, "
        "as their released runs; else cosine]",
    ),  # fmt: skip
    threshold: float = typer.Option(0.95, help="Confidence threshold for pseudo-labels"),
    lambda_u: float = typer.Option(1.0, "--lambda-u", help="Weight of the unlabelled loss (0 = supervised only)"),
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
    ),  # fmt: skip
    group_split: str = typer.Option(
        "reference", "--group-split", help="Head/medium/tail sizes: reference (2/2/6 of ten) or thirds (3/3/4)"
    ),
    ema: float = typer.Option(0.999, help="EMA decay of the evaluated model (constant, as FixMatch/USB)"),
    ema_warmup: bool = typer.Option(
        False, "--ema-warmup", help="Our variant: decay min(ema, (1+k)/(10+k)) at step k instead of constant"
    ),
    image_size: int | None = typer.Option(
        None, help="Resize images to this size [default: digits 16, --labelled 32, others native]"
    ),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Horizontal flips [default: off for digits, svhn]"),
    eval_every: int | None = typer.Option(None, help="Evaluate every N steps [default: steps/10]"),
    checkpoint_every: int | None = typer.Option(None, help="Checkpoint every N steps [default: eval-every]"),
    seed: int = typer.Option(0, help="Seed for the split, initialisation, sampling and augmentation"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1"),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (bfloat16 on CPU, float16 on CUDA) for training"),
    data_root: str | None = typer.Option(None, help="Where local CIFAR/SVHN/STL-10 files live"),
    unlabelled_split: str | None = typer.Option(
        None, "--unlabelled-split", help="Long-tailed split: unlabelled images from this split (stl10: unlabeled)"
    ),
    max_unlabelled: int | None = typer.Option(
        None, "--max-unlabelled", help="With --unlabelled-split: a seeded subset of this many images"
    ),
    out: str = typer.Option(..., "--out", help="Directory for metrics.json, log.json, run.json, model/, checkpoint/"),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint"),
    force: bool = typer.Option(False, help="Discard a previous run in --out and start over"),
    backbone: str = typer.Option(
        "scratch", "--backbone",
        help="scratch (train --network on the pixels) or frozen (a head on the offline encoder's visual features, "
        "fed by cached augmented views; with --labels-per-class; unlabelled: a seeded --max-unlabelled subset, "
        "default 10000)",
    ),  # fmt: skip
) -> None:
    """Template holding every ssl option; each command exposes the subset it uses."""


_COMMON = (
    "dataset", "labelled", "unlabelled", "test", "n1", "m1", "gamma_l", "gamma_u", "class_order", "steps",
    "network", "batch_size", "mu", "lr", "lr_schedule", "threshold", "lambda_u", "ema", "ema_warmup", "image_size",
    "flip", "eval_every", "checkpoint_every", "seed", "device", "amp", "data_root", "unlabelled_split",
    "max_unlabelled", "out", "resume", "force",
)  # fmt: skip
_OWN = {
    "fixmatch": ("labels_per_class", "backbone"),
    "fixmatch-la": ("tau",),
    "cpe": ("taus", "predict_expert", "group_split"),
    "metaexpert": ("taus", "fuse_warmup", "freeze_assignment", "fused_losses", "group_split"),
}
# Meta-Expert's released runs draw 2 unlabelled images per labelled one; FixMatch 7.
_MU = {"fixmatch": 7}
_LT_MU = 2
_HELP = {
    "fixmatch": "Train FixMatch with N true labels per class (--labels-per-class), a long-tailed split (--n1) or "
    "your own labelled folder (--labelled); score the EMA model on the test split (or --test).",
    "fixmatch-la": "FixMatch with logit adjustment (tau log prior on the labelled loss) on a long-tailed split "
    "(--n1) or your folders (--labelled).",
    "cpe": "CPE: three logit-adjusted experts (tau 0/2/4) with class-group BN on a long-tailed split or your folders.",
    "metaexpert": "Meta-Expert: CPE experts + trained feature fusion and dynamic expert assignment (long-tailed).",
}
_COUNTS = ("labels_per_class", "n1", "m1", "mu", "batch_size", "steps", "max_unlabelled")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check(method: str, o: dict[str, Any]) -> str:
    """Which data the options ask for (``"balanced"``, ``"longtail"`` or ``"folder"``); a
    ValueError naming the flags when they contradict each other or a value is out of range."""
    if o.get("dataset") is not None and Path(o["dataset"]).expanduser().is_dir():
        raise ValueError(
            f"--dataset {o['dataset']} is a folder: train on your own images with --labelled DIR "
            "(one subfolder per class) and --unlabelled DIR"
        )
    given = [k for k in ("labels_per_class", "n1", "labelled") if o.get(k) is not None]
    if o.get("labels_per_class") is not None and o.get("n1") is not None:
        raise ValueError("pass either --labels-per-class or --n1 (a long-tailed split), not both")
    if o.get("labelled") is not None:
        if len(given) > 1 or o.get("dataset") is not None:
            raise ValueError("--labelled trains on your folders: leave out --dataset, --labels-per-class and --n1")
        for option in ("m1", "gamma_u", "unlabelled_split", "max_unlabelled"):
            if o.get(option) is not None:
                raise ValueError(f"{_flag(option)} belongs to a long-tailed split (--n1), not to --labelled")
    else:
        for option in ("unlabelled", "test"):
            if o.get(option) is not None:
                raise ValueError(f"{_flag(option)} goes with --labelled DIR (your labelled folder)")
        if not given:
            balanced = "--labels-per-class N (balanced labels), " if method == "fixmatch" else ""
            raise ValueError(f"pass {balanced}--n1 N1 (a long-tailed split) or --labelled DIR (your own folders)")
        if o.get("dataset") is None:
            raise ValueError(f"{_flag(given[0])} splits a dataset: pass --dataset NAME (or --labelled DIR instead)")
    if o.get("n1") is not None and o.get("m1") is None and o.get("unlabelled_split") is None:
        raise ValueError("pass --m1 M1 (unlabelled images of the largest class) or --unlabelled-split SPLIT")
    for option in _COUNTS:
        if o.get(option) is not None and o[option] < 1:
            raise ValueError(f"{_flag(option)} must be at least 1, got {o[option]}")
    if o.get("image_size") is not None and o["image_size"] < 8:
        raise ValueError(f"--image-size must be at least 8, got {o['image_size']}")
    if "predict_expert" in o and o["predict_expert"] not in (1, 2, 3):
        raise ValueError(f"--predict-expert must be 1, 2 or 3, got {o['predict_expert']}")
    return "folder" if o.get("labelled") is not None else "longtail" if o.get("n1") is not None else "balanced"


def _data(kind: str, o: dict[str, Any]) -> Any:
    from semclust.ssl.experiment import balanced_data, folder_data, longtail_data

    common = {"image_size": o["image_size"], "data_root": o["data_root"]}
    if kind == "folder":
        return folder_data(o["labelled"], o["unlabelled"], o["test"], **common)
    if kind == "balanced":
        return balanced_data(o["dataset"], o["labels_per_class"], random_state=o["seed"], **common)
    return longtail_data(o["dataset"], o["n1"], o["m1"], o["gamma_l"], o["gamma_u"], o["class_order"],
                         random_state=o["seed"],
                         unlabelled_split=o["unlabelled_split"], max_unlabelled=o["max_unlabelled"],
                         **common)  # fmt: skip


def _hyperparams(o: dict[str, Any]) -> dict[str, Any]:
    """The method's own options, as :func:`semclust.ssl.experiment.run_ssl` takes them."""
    from semclust.ssl.experiment import parse_taus

    extra: dict[str, Any] = {"threshold": o["threshold"], "lambda_u": o["lambda_u"]}
    for key in ("tau", "fuse_warmup", "freeze_assignment", "fused_losses", "group_split"):
        if key in o:
            extra[key] = o[key]
    if "taus" in o:
        try:
            extra["taus"] = parse_taus(o["taus"])
        except ValueError as err:
            raise ValueError(f"--{err}") from None  # named as the flag the user typed
    if "predict_expert" in o:
        extra["predict_expert"] = o["predict_expert"] - 1
    return extra


_TRAINING = ("steps", "network", "batch_size", "mu", "lr", "ema", "ema_warmup", "flip", "eval_every",
             "checkpoint_every", "seed", "device", "amp", "resume")  # fmt: skip


def _run(method: str, o: dict[str, Any]) -> None:
    """Check, prepare ``--out``, build the data, train (:func:`run_ssl`), report."""
    from semclust.distributed import is_main_process
    from semclust.outputs.run_dir import SSL_RUN, prepare_run_dir, remove_if_empty
    from semclust.ssl.experiment import run_ssl

    if o.get("backbone", "scratch") != "scratch":
        _run_frozen(o)
        return
    out_dir = Path(o["out"])
    created = not out_dir.exists()
    try:
        try:
            kind = _check(method, o)
            hyper = _hyperparams(o)
            if is_main_process():  # under torchrun rank 0 prepares --out; every rank reads the checkpoint
                prepare_run_dir(out_dir, o["force"], o["resume"], kind=SSL_RUN)
            if o["resume"]:
                print_resume(out_dir, method, "step")
            data = _data(kind, o)
            schedule = o["lr_schedule"] or ("cosine" if method == "fixmatch" and kind != "longtail" else "constant")
            total = o["steps"] or DEFAULT_STEPS.get(data.defaults, FALLBACK_STEPS)
            restart = "nothing was checkpointed yet: rerun the command (with --force) to start over"
            with run_progress(out_dir, restart) as progress:
                bar, seen = [], [0]

                def on_start(summary: str) -> None:  # the trainer is built: the options were valid
                    console.print(summary, highlight=False, markup=False)
                    bar.append(progress(method, total))

                def on_step(step: int, logs: dict[str, float]) -> None:
                    bar[0](step - seen[0], f"loss {logs['loss']:.3f} mask {logs['mask_ratio']:.2f}")
                    seen[0] = step

                training = {("random_state" if k == "seed" else k): o[k] for k in _TRAINING}
                run = run_ssl(method, data, **training, **hyper, lr_schedule=schedule, out=out_dir,
                              progress=on_step, on_start=on_start)  # fmt: skip
        except USER_ERRORS as err:
            fail(str(err))
    except BaseException:
        if created and is_main_process():
            remove_if_empty(out_dir)  # a failed first run leaves no empty run directory behind
        raise
    if is_main_process():  # under torchrun rank 0 wrote the run files and reports
        _report(method, run.record, out_dir)


def _report(method: str, record: dict[str, Any], out_dir: Path) -> None:
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    if "acc" not in record:
        line = f"{method} {record['dataset']}, {record['steps']} steps: no test images (--test DIR scores the run)"
    elif "head_acc" in record:
        unlabelled = f"{record['unlabelled_split']} split"
        line = (
            f"{method} {record['dataset']} "
            + (f"gamma_u {record['gamma_u']:g}" if record.get("gamma_u") is not None else unlabelled)
            + f", {record['steps']} steps: final EMA acc {fmt(record['acc'])} (best during training "
            f"{fmt(record['best_acc'])} at step {record['best_acc_step']}), head {fmt(record['head_acc'])} "
            f"medium {fmt(record['medium_acc'])} tail {fmt(record['tail_acc'])}"
        )
    else:
        per_class = f" {record['labels_per_class']} labels/class" if "labels_per_class" in record else ""
        line = (
            f"{method} {record['dataset']}{per_class}, {record['steps']} steps: test top-1 acc {record['acc']:.4f} "
            f"(matched {record['acc_matched']:.4f}) NMI {record['nmi']:.4f} ARI {record['ari']:.4f} "
            f"on {record['n']} images"
        )
    console.print(f"{line}, {record['wall_s']:.0f}s", highlight=False, markup=False)
    written = ", ".join(["metrics.json"] * ("acc" in record) + ["log.json", "run.json", "model/", "checkpoint/"])
    console.print(f"wrote {out_dir}/{written}", highlight=False, markup=False)


def _command(method: str) -> Any:
    """A typer command for ``method`` exposing the common options plus its own."""
    keep = set(_COMMON) | set(_OWN[method])
    template = inspect.signature(_template, eval_str=True)
    params = []
    for p in template.parameters.values():
        if p.name not in keep:
            continue
        if p.name == "mu":
            default = _MU.get(method, _LT_MU)
            p = p.replace(default=typer.Option(default, help="Unlabelled images per labelled image in a step"))
        params.append(p)

    def command(**kwargs: Any) -> None:
        _run(method, kwargs)

    command.__signature__ = template.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = _HELP[method]
    command.__name__ = f"{method.replace('-', '_')}_cmd"
    return command


def register(app: typer.Typer) -> None:
    """Add the ``ssl`` sub-app (``semclust ssl fixmatch``) to ``app``; registering again does nothing."""
    if any(group.name == "ssl" for group in app.registered_groups):
        return
    for method in _OWN:
        ssl_app.command(method)(_command(method))
    app.add_typer(ssl_app, name="ssl", help=SSL_HELP)


def _run_frozen(o: dict[str, Any]) -> None:
    """``ssl fixmatch --backbone frozen``: FixMatch as a head on cached views of a balanced split."""
    from semclust.cli.ssl_frozen import run_frozen_fixmatch
    from semclust.ssl.experiment import NO_FLIP

    try:
        if o["backbone"] != "frozen":
            raise ValueError(f"--backbone must be scratch or frozen, got {o['backbone']!r}")
        if o.get("labels_per_class") is None or o.get("dataset") is None:
            raise ValueError("--backbone frozen trains on a balanced split: pass --dataset and --labels-per-class")
        name = o["dataset"].removeprefix("dataset:").strip().lower()
        if (Path(o["out"]) / "metrics.json").exists() and not o["force"]:
            raise ValueError(f"{o['out']} already holds a run (metrics.json); pass --force")
        run_frozen_fixmatch(
            dataset=name, labels_per_class=o["labels_per_class"], steps=o["steps"],
            batch_size=o["batch_size"] or 64, mu=o["mu"] or 7, lr=o["lr"], threshold=o["threshold"],
            lambda_u=o["lambda_u"], ema=o["ema"], flip=(name not in NO_FLIP) if o["flip"] is None else o["flip"],
            seed=o["seed"], device=o["device"], data_root=o["data_root"], max_unlabelled=o["max_unlabelled"],
            out_dir=Path(o["out"]),
        )  # fmt: skip
    except USER_ERRORS as err:
        fail(str(err))
