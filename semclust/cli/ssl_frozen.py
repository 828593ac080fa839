"""``semclust ssl fixmatch --backbone frozen``: FixMatch as a small head on a frozen encoder's
features, fed by cached augmented views (the reference that ASD's frozen backbone is measured
against). The unlabelled set is a seeded subset of the train split (``--max-unlabelled``,
default 10,000: its views are embedded once and cached), the labelled images are drawn from
it, and the EMA head is scored on the test split's features."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from semclust.cli.progress import console, progress_factory

DEFAULT_UNLABELLED = 10000
DEFAULT_HEAD_STEPS = 2000


def run_frozen_fixmatch(
    *,
    dataset: str,
    labels_per_class: int,
    steps: int | None,
    batch_size: int,
    mu: int,
    lr: float,
    threshold: float,
    lambda_u: float,
    ema: float,
    flip: bool,
    seed: int,
    device: str,
    data_root: str | None,
    max_unlabelled: int | None,
    out_dir: Path,
    encoder_spec: str = "offline",
    n_views: int = 2,
) -> dict[str, Any]:
    """Train and score; writes ``metrics.json`` and ``run.json`` in ``out_dir``; returns the metrics."""
    from semclust.atomic import write_json
    from semclust.cache import default_cache_dir
    from semclust.data.base import ArraySource
    from semclust.encoders.registry import get_encoder
    from semclust.metrics import evaluate
    from semclust.ssl.data import labels_per_class_split
    from semclust.ssl.experiment import load_train_test, versions
    from semclust.ssl.feature_head import HeadConfig, HeadTrainer, head_logits
    from semclust.ssl.views import build_views, views_directory
    from semclust.workflow import embed

    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    total_steps = steps or DEFAULT_HEAD_STEPS
    x_train, y_train, x_test, y_test, test_split = load_train_test(dataset, seed, data_root)
    size = min(len(x_train), max_unlabelled or DEFAULT_UNLABELLED)
    sub = np.sort(np.random.default_rng(seed).choice(len(x_train), size=size, replace=False))
    x_u, y_u = x_train[sub], y_train[sub]
    lb, _ = labels_per_class_split(y_u, labels_per_class, seed)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    encoder = get_encoder(encoder_spec, device=device)
    if "visual" not in encoder.view_dims:
        raise ValueError(f"encoder {encoder_spec!r} has no visual view to train a frozen head on")
    train_source = ArraySource(x_u, y_u, name=f"{dataset}-train-{size}-seed{seed}")
    test_source = ArraySource(x_test, y_test, name=f"{dataset}-test-{len(x_test)}-seed{seed}")
    console.print(
        f"fixmatch (frozen {encoder_spec}) on {dataset}: {len(lb)} labelled ({labels_per_class}/class), "
        f"{size} unlabelled, {len(x_test)} test ({test_split}), {n_views}+{n_views} cached views, "
        f"{total_steps} head steps",
        highlight=False,
        markup=False,
    )
    with progress_factory() as progress:
        features = embed(train_source, encoder=encoder, progress=progress).store.load("visual")
        test_features = embed(test_source, encoder=encoder, progress=progress).store.load("visual")
        root = default_cache_dir() / "views"
        directory = views_directory(root, x_u, encoder, seed, flip)
        advance_views = progress(f"embedding {2 * n_views * size} augmented views", 2 * n_views * size)
        views = build_views(
            train_source, encoder, directory, n_weak=n_views, n_strong=n_views, seed=seed, flip=flip,
            on_progress=advance_views,
        )  # fmt: skip
        config = HeadConfig(
            num_classes=num_classes,
            total_steps=total_steps,
            batch_size=batch_size,
            mu=mu,
            lr=lr,
            threshold=threshold,
            lambda_u=lambda_u,
            ema_decay=ema,
            seed=seed,
            device=device,
        )
        advance = progress("fixmatch head", total_steps)
        trainer = HeadTrainer(features, views, config).fit(lb, y_u[lb], progress=lambda step, logs: advance(1))
    pred = head_logits(trainer.ema_model, test_features).argmax(dim=1).numpy()
    scores = evaluate(y_test, pred)
    wall = time.perf_counter() - start
    record = {
        "method": "fixmatch",
        "backbone": "frozen",
        "encoder": encoder_spec,
        "dataset": dataset,
        "acc": float((pred == y_test).mean()),
        "acc_is": "top-1 accuracy of the final EMA head on the test split",
        "top1": float((pred == y_test).mean()),
        "acc_matched": scores["acc"],
        "nmi": scores["nmi"],
        "ari": scores["ari"],
        "n": int(len(y_test)),
        "labels_per_class": labels_per_class,
        "n_labelled": int(len(lb)),
        "n_unlabelled": int(size),
        "steps": total_steps,
        "seed": seed,
    }
    write_json(out_dir / "metrics.json", record)
    config_record = {**vars(config), "dataset": dataset, "n_views": n_views, "flip": flip, "test_split": test_split}
    write_json(
        out_dir / "run.json",
        {
            "command": "ssl fixmatch --backbone frozen",
            "config": {**config_record, "labelled_indices": [int(i) for i in sub[lb]]},
            "seed": seed,
            "versions": versions(),
            "wall_time_s": round(wall, 3),
        },
    )
    console.print(
        f"fixmatch (frozen) {dataset} {labels_per_class} labels/class: test top-1 acc {record['acc']:.4f} "
        f"NMI {record['nmi']:.4f} ARI {record['ari']:.4f} on {record['n']} images, {wall:.0f}s",
        highlight=False,
        markup=False,
    )
    return record
