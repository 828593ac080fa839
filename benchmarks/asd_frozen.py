"""The frozen-backbone rows of the ASD benchmark (imported by ``benchmarks/asd.py``).

Every method here reads the offline encoder's visual features: ``asd-frozen`` (ASD with every
stage a head over the features and their cached augmented views), ``fixmatch-truth-frozen``
(the same head and SSL stage, given the true labels of the same number of images, ``n_l / K``
per class), ``kmeans-offline`` and ``scan`` on the features of the scored split.

Fashion-MNIST: learn on a seeded 10k train subset (one subset, seed 0, for every seed: its cached
views are embedded once), score on the test split (predict). Emoji groups (``dataset:emoji``,
1,870 emoji in 9 groups): learn and score on the whole set (transductive).
``wall_s`` is the method alone; the embedding of the features and views (cached) is recorded
once per dataset as ``views_wall_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semclust.cache import default_cache_dir
from semclust.data.base import ArraySource
from semclust.data.registry import open_source
from semclust.encoders.registry import get_encoder
from semclust.methods.asd import ASD, default_n_labelled
from semclust.methods.kmeans import KMeans
from semclust.methods.scan import SCAN
from semclust.metrics import evaluate
from semclust.ssl.data import labels_per_class_split, source_arrays
from semclust.ssl.feature_head import HeadConfig, HeadTrainer, head_logits
from semclust.ssl.views import CachedViews, build_views
from semclust.workflow import embed

FROZEN_METHODS = ("asd-frozen", "fixmatch-truth-frozen", "kmeans-offline", "scan")


def _subset(n: int, size: int, seed: int) -> np.ndarray:
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def prepare(
    dataset: str, n_train: int, n_weak: int, n_strong: int, threads: int
) -> tuple[dict[str, Any], float]:
    """Features and cached views of the learning set, features of the scored set."""
    start = time.perf_counter()
    encoder = get_encoder("offline", threads=threads)
    if dataset == "fashion-mnist":
        x_train, y_train = source_arrays(open_source("dataset:fashion-mnist:train"))
        sub = _subset(len(x_train), n_train, 0)
        learn = ArraySource(x_train[sub], y_train[sub], name=f"fashion-mnist-train-{len(sub)}-seed0")
        test = embed("dataset:fashion-mnist:test", encoder=encoder).store
        flip = True
    else:
        source = open_source("dataset:emoji")
        store = embed(source, encoder=encoder).store
        images, labels = source_arrays(source)
        learn = ArraySource(images, labels, name="emoji-all")
        test = store
        flip = True
    feats = embed(learn, encoder=encoder).store.load("visual")
    views = build_views(
        learn,
        encoder,
        default_cache_dir() / "views" / f"bench-{learn.name}",
        n_weak=n_weak,
        n_strong=n_strong,
        seed=0,
        flip=flip,
    )
    data = {
        "x": learn.pixels,
        "y": np.asarray(learn.labels),
        "features": feats,
        "views": views,
        "test_features": test.load("visual"),
        "test_labels": np.asarray(test.labels),
        "n_clusters": int(len(np.unique(learn.labels))),
        "transductive": dataset != "fashion-mnist",
    }
    return data, time.perf_counter() - start


def _recording(asd: ASD) -> str:
    """What the instance stage recorded: the estimator's settings or the frozen backbone's default."""
    from semclust.methods.asd.frozen import FrozenBackbone
    from semclust.methods.asd.instance import resolve_recording

    used = resolve_recording(asd, FrozenBackbone.recording)
    images = "every image" if used.max_tracked is None else f"up to {used.max_tracked} images"
    return f"last {used.transition_window:g} of the instance stage, {images}"


def run(
    dataset: str,
    data: dict[str, Any],
    methods: list[str],
    seeds: list[int],
    settings: dict[str, Any],
    add: Callable[..., None],
) -> None:
    """One record per (method, seed) through ``add(method, dataset, seed, metrics, wall, **extra)``."""
    k = data["n_clusters"]
    xs, ys, feats, views = data["x"], data["y"], data["features"], data["views"]
    test_x, test_y = data["test_features"], data["test_labels"]
    views_: CachedViews = views
    n_l = default_n_labelled(len(feats), k)
    n_l = int(np.ceil(n_l / k) * k)
    head = {k_: settings[k_] for k_ in ("hidden", "batch_size", "mu", "lr", "threshold")}
    common = {
        **head,
        "n_train": int(len(feats)),
        "n_labelled": n_l,
        "n_weak_views": int(views_.weak.shape[0]),
        "n_strong_views": int(views_.strong.shape[0]),
        "features": "offline encoder, visual view (frozen)",
        "scored_on": "the same images (fit labels)" if data["transductive"] else "test split (predict)",
    }
    for seed in seeds:
        if "kmeans-offline" in methods:
            start = time.perf_counter()
            pred = KMeans(n_clusters=k, random_state=seed).fit(test_x).labels_
            add("kmeans-offline", dataset, seed, evaluate(test_y, pred), time.perf_counter() - start,
                features="offline encoder, visual view", fitted_on="scored split's features (transductive)",
                scored_on="scored split (fit labels)")  # fmt: skip
        if "scan" in methods:
            start = time.perf_counter()
            pred = SCAN(n_clusters=k, random_state=seed, torch_threads=settings["threads"]).fit(test_x).labels_
            add("scan", dataset, seed, evaluate(test_y, pred), time.perf_counter() - start,
                features="offline encoder, visual view", fitted_on="scored split's features (transductive)",
                scored_on="scored split (fit labels)", scan="defaults (50 epochs, 20 neighbours)")  # fmt: skip
        for rounds in settings["rounds"]:
            if "asd-frozen" not in methods:
                break
            start = time.perf_counter()
            asd = ASD(
                n_clusters=k,
                n_labelled=n_l,
                backbone="frozen",
                instance_steps=settings["instance_steps"],
                ssl_steps=settings["ssl_steps"],
                rounds=rounds,
                random_state=seed,
                **head,
            )
            asd.fit(xs, y=ys, features=feats, views=views_)  # y only measures purity; never trained on
            pred = asd.labels_ if data["transductive"] else asd.predict(test_x)
            wall = time.perf_counter() - start
            add("asd-frozen", dataset, seed, evaluate(test_y, pred), wall, **common, rounds=rounds,
                instance_steps=settings["instance_steps"], ssl_steps=settings["ssl_steps"],
                coverage_probability=asd.coverage_probability_, pseudo_label_purity=asd.pseudo_label_purity_,
                labelled_purity=asd.labelled_purity_, classes_covered=asd.classes_covered_,
                n_labelled_used=int(len(asd.labelled_indices_)), co_predictions_used=bool(asd.co_predictions_used_),
                transitions_counted=int(asd.transitions_.sum()),
                recording=_recording(asd),
                train_acc=evaluate(ys, asd.labels_)["acc"])  # fmt: skip
        if "fixmatch-truth-frozen" in methods:
            start = time.perf_counter()
            lb, _ = labels_per_class_split(ys, n_l // k, seed)
            config = HeadConfig(num_classes=k, total_steps=settings["ssl_steps"], seed=seed + 1, **head)
            trainer = HeadTrainer(feats, views_, config).fit(lb, ys[lb])
            pred = head_logits(trainer.ema_model, test_x).argmax(dim=1).numpy()
            add("fixmatch-truth-frozen", dataset, seed, evaluate(test_y, pred), time.perf_counter() - start,
                **common, steps=settings["ssl_steps"], labels_per_class=n_l // k,
                top1=float((pred == test_y).mean()))  # fmt: skip


def views_record(dataset: str, seconds: float, data: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    return {"dataset": dataset, "views_wall_s": seconds, "n": int(len(data["features"]))}
